"""Export the RL parts of a split as verl parquet: `python -m tools.sr.export rl` (`make rl` runs
it).

One row per labelled line of `rl_train` (-> train.parquet) and `rl_val` (-> val.parquet), in
the hermes protocol that verl's tool agent loop parses. The prompt is `SpeakerEnv.prompt(line)`,
the same as SFT and evaluation; `reward_model.ground_truth` carries what rewards/speaker_rec.py
judges against; `extra_info.tools_kwargs` carries what the verl tool adapter sends to the tool
server. The columns are one fixed pyarrow schema (`SCHEMA`), so every series writes the same
schema whatever tools it offers, and tools.sr.rl checks parquet files against it before a run.

Lines without ground truth are dropped and counted; both files and rl.report.json are written
only when both parts convert, each through a temp file and a rename.
"""

import logging
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from plugins.speaker_rec.correctness import is_judged, is_open_truth
from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import LabelFile
from plugins.speaker_rec.protocol import PROTOCOLS, TOOL_NAMES
from plugins.speaker_rec.rules import RuleConfig
from plugins.speaker_rec.series import Series, SeriesError
from tools.common.fileio import Report, atomic_write_bytes, atomic_write_json
from tools.common.series_args import add_series_args, load_series_and_labels
from tools.sr.split_manifest import part_contains, read_split

logger = logging.getLogger(__name__)

DATA_SOURCE = "dramakit/speaker_rec"
ABILITY = "speaker_recognition"
PROTOCOL = "hermes"
AGENT_NAME = "tool_agent"
# split part -> (file stem, extra_info.split)
PARTS = {"rl_train": "train", "rl_val": "val"}
REPORT_NAME = "rl.report.json"

_CREATE_KWARGS = pa.struct(
    [
        (
            "create_kwargs",
            pa.struct([("series", pa.string()), ("line", pa.int64()), ("protocol", pa.string())]),
        )
    ]
)
SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct(
                [
                    ("style", pa.string()),
                    (
                        "ground_truth",
                        pa.struct(
                            [
                                ("truth", pa.string()),
                                ("candidates", pa.list_(pa.string())),
                                ("other", pa.string()),
                                ("open_set", pa.bool_()),
                            ]
                        ),
                    ),
                ]
            ),
        ),
        (
            "extra_info",
            pa.struct(
                [
                    ("series", pa.string()),
                    ("line", pa.int64()),
                    ("index", pa.int64()),
                    ("episode", pa.int64()),
                    ("split", pa.string()),
                    ("sample_type", pa.string()),
                    ("protocol", pa.string()),
                    ("language", pa.string()),
                    ("max_turns", pa.int64()),
                    ("tool_selection", pa.list_(pa.string())),
                    # Every tool, offered or not: a struct's fields are part of the schema.
                    ("tools_kwargs", pa.struct([(name, _CREATE_KWARGS) for name in TOOL_NAMES])),
                    ("agent_name", pa.string()),
                ]
            ),
        ),
        # verl 0.9.1 picks the agent loop from this top-level column (extra_info's copy is for
        # readers).
        ("agent_name", pa.string()),
    ]
)


class ExportError(Exception):
    """An input as a whole cannot be exported (empty part, split and labels disagree).

    The command prints it, exits 2 and writes nothing."""


def row(env: SpeakerEnv, labels: LabelFile, index: int, split: str) -> dict:
    """The parquet row of labelled line `index` (which has a ground truth)."""
    line = env.series.lines[index]
    label = env.labels[index]
    create = {"create_kwargs": {"series": env.series.name, "line": index, "protocol": PROTOCOL}}
    return {
        "data_source": DATA_SOURCE,
        "prompt": env.prompt(index),
        "ability": ABILITY,
        "reward_model": {
            "style": "rule",
            "ground_truth": {
                "truth": line.speaker or env.other,
                "candidates": label.names,
                "other": env.other,
                "open_set": is_open_truth(line.speaker, line.kind, labels.characters),
            },
        },
        "extra_info": {
            "series": env.series.name,
            "line": index,
            "index": index,
            "episode": line.episode,
            "split": split,
            "sample_type": label.sample_type,
            "protocol": PROTOCOL,
            "language": env.language,
            "max_turns": env.rules.max_turns,
            "tool_selection": list(env.toolset.available),
            "tools_kwargs": {name: create for name in TOOL_NAMES},
            "agent_name": AGENT_NAME,
        },
        "agent_name": AGENT_NAME,
    }


def convert_part(
    env: SpeakerEnv,
    labels: LabelFile,
    manifest: dict,
    part: str,
    *,
    labels_path: Path,
    split_path: Path,
    seed: int | None,
) -> tuple[list[dict], Report]:
    """Rows of one split part and its report (in: every labelled line of the labels file; out: rows;
    dropped: lines of other parts, lines without ground truth). Rows are in line order, or in a
    seeded shuffled order when `seed` is given."""
    report = Report(source=str(labels_path))
    rows = []
    for index in tqdm(sorted(labels.lines), desc=f"export rl {part}", unit="line", mininterval=1.0):
        report.seen()
        where = f"{labels_path}: line {index}"
        if not part_contains(manifest, part, index):
            report.drop(f"not in split part {part}", where)
        elif not is_judged(env.series.lines[index].kind):
            report.drop("no ground truth", where)
        else:
            rows.append(row(env, labels, index, PARTS[part]))
            report.keep()
    in_part = report.records_out + report.dropped["no ground truth"]
    if in_part != manifest["parts"][part]["lines"]:
        raise ExportError(
            f"{split_path}: the split has {manifest['parts'][part]['lines']} lines in "
            f"{part} but the labels "
            f"file has {in_part} of them: were the split and labels made from the same run?"
        )
    if not rows:
        raise ExportError(
            f"{split_path}: split part {part} has no line to export ({report.summary_line()}); "
            "give it a share with tools.sr.split --ratios (and --block-lines for few episodes)"
        )
    if seed is not None:
        random.Random(seed).shuffle(rows)
    report.extra.update({"part": part, "file": f"{PARTS[part]}.parquet", "seed": seed})
    return rows, report


def write_parquet(path: Path, rows: list[dict]) -> None:
    """Write `rows` with SCHEMA atomically (a reader never sees half a file)."""
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer)
    atomic_write_bytes(path, buffer.getvalue().to_pybytes())


def export(
    series: Series,
    labels: LabelFile,
    manifest: dict,
    out_dir: Path,
    *,
    labels_path: Path,
    split_path: Path,
    language: str | None,
    max_turns: int,
    seed: int | None,
) -> dict:
    """Convert both RL parts, then write train.parquet, val.parquet and rl.report.json into
    `out_dir`; returns the report. Raises ExportError (nothing written) when a part is empty."""
    if manifest["series"] != series.name:
        raise ExportError(
            f"{split_path}: split of series {manifest['series']!r}, not {series.name!r}"
        )
    env = SpeakerEnv(
        series,
        labels.lines,
        protocol=PROTOCOL,
        language=language,
        rules=RuleConfig(max_turns=max_turns),
        known=labels.characters,
    )
    converted = {
        part: convert_part(
            env, labels, manifest, part, labels_path=labels_path, split_path=split_path, seed=seed
        )
        for part in PARTS
    }
    for part, (rows, _) in converted.items():
        write_parquet(out_dir / f"{PARTS[part]}.parquet", rows)
    report = {
        "series": series.name,
        "protocol": PROTOCOL,
        "language": env.language,
        "max_turns": max_turns,
        "tool_selection": list(env.toolset.available),
        "split": {"file": str(split_path), "seed": manifest["seed"]},
        **{PARTS[part]: part_report.as_dict() for part, (_, part_report) in converted.items()},
    }
    atomic_write_json(out_dir / REPORT_NAME, report)
    for part, (rows, part_report) in converted.items():
        logger.info(
            "%s -> %s (%d rows)",
            part_report.summary_line(),
            out_dir / f"{PARTS[part]}.parquet",
            len(rows),
        )
    return report


def add_parser(commands) -> None:
    """Add the `rl` subcommand to tools.sr.export's subparsers."""
    rl = commands.add_parser(
        "rl",
        help="verl parquet (train/val) from the rl_train and rl_val split parts",
        description="Write one verl row per labelled line of the rl_train and rl_val parts "
        "(hermes protocol) as OUT_DIR/train.parquet and OUT_DIR/val.parquet, with "
        f"OUT_DIR/{REPORT_NAME} (counts in, out, dropped per reason).",
    )
    add_series_args(rl, labels=True)
    rl.add_argument(
        "--split", required=True, type=Path, help="split manifest written by tools.sr.split"
    )
    rl.add_argument(
        "--out-dir", required=True, type=Path, help="where train.parquet and val.parquet go"
    )
    rl.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=PROTOCOL,
        help="only hermes: verl's tool agent loop parses hermes tool calls",
    )
    rl.add_argument(
        "--language", choices=("zh", "en"), help="prompt language (default: the series')"
    )
    rl.add_argument(
        "--max-turns",
        type=int,
        default=RuleConfig.max_turns,
        help="assistant turns per trajectory, stated in the prompt (default: %(default)s)",
    )
    rl.add_argument(
        "--seed",
        type=int,
        default=None,
        help="write rows in this seeded shuffled order (default: line order); verl's own "
        "data.shuffle still applies, but data.train_max_samples without shuffling takes "
        "the first rows",
    )


def run(args) -> int:
    """Run `tools.sr.export rl` with parsed arguments; 0, or 2 with the reason on stderr."""
    if args.protocol != PROTOCOL:
        print(
            f"error: --protocol {args.protocol}: RL uses verl's tool agent loop, which "
            "parses hermes tool calls only; export with --protocol hermes",
            file=sys.stderr,
        )
        return 2
    if args.max_turns < 1:
        print("error: --max-turns must be at least 1", file=sys.stderr)
        return 2
    try:
        manifest = read_split(args.split)
        series, labels = load_series_and_labels(args)
        export(
            series,
            labels,
            manifest,
            args.out_dir,
            labels_path=args.labels,
            split_path=args.split,
            language=args.language,
            max_turns=args.max_turns,
            seed=args.seed,
        )
    except (ExportError, SeriesError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
