"""Extract a character's dialogue from novels or fan fiction into a multi-turn ShareGPT dataset.

    python -m tools.roleplay.dialogue --inputs ../shared/data/novels/shuihuzhuan.txt \\
        --assistant 武松 --assistant-alias 武二郎,武二,武都头,武行者 \\
        --user 宋江 --user-alias 宋公明,宋押司 --out-dir runs/dialogue --name wusong_dialogue

Reads plain UTF-8 text (LF or CRLF): `Name：line` scripts and prose with quoted speech
(tools/roleplay/dialogue_parse.py), builds alternating human/gpt conversations for the assistant
character
(tools/roleplay/dialogue_build.py), drops NSFW lines (tools/roleplay/nsfw_filter.py,
data/nsfw_keywords.txt) and
exact or near-duplicate samples (tools/roleplay/near_duplicates.py). Writes OUT_DIR/NAME.json
registered in
OUT_DIR/dataset_info.json, or merges into an existing ShareGPT file (`--merge-existing`, with a
timestamped backup). Every input gets a JSON report of lines in, out and dropped per reason.
Bad input (unreadable, not UTF-8, empty, names that match nothing) exits 2 and writes nothing.
"""

import argparse
import collections
import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from tools.common import text_input
from tools.common.fileio import EXAMPLES_PER_REASON, Report, atomic_write_json
from tools.common.llamafactory_dataset import (
    ConversionError,
    DatasetOutput,
    dataset_entry,
    dataset_name_arg,
    publish,
)
from tools.roleplay.dialogue_build import (
    LEADING_ASSISTANT_MODES,
    THIRD_PARTY_MODES,
    BuildOptions,
    Cast,
    DialogueBuilder,
    Sample,
    where,
)
from tools.roleplay.dialogue_parse import (
    OTHER,
    Character,
    Speakers,
    Utterance,
    find_text_speakers,
    is_script,
    normalize_newlines,
    parse_text,
)
from tools.roleplay.near_duplicates import DuplicateIndex
from tools.roleplay.nsfw_filter import DEFAULT_KEYWORDS, KeywordFilter

logger = logging.getLogger(__name__)

# Character names and aliases: words, never paths or lists.
NAME = re.compile(r"^[^\s/\\：:，,;；\"'“”「」.]{1,20}$")


def read_text(path: Path) -> str:
    """The file as text with LF newlines; ConversionError when it is missing, not UTF-8 or empty."""
    try:
        text = text_input.read_text(path)
    except text_input.NotTextError as e:
        raise ConversionError(path, str(e).removeprefix(f"{path}: ")) from None
    text = normalize_newlines(text)
    if not text.strip():
        raise ConversionError(path, "empty (no text)")
    return text


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def build_cast(
    assistant: str,
    assistant_aliases: list[str],
    users: list[str],
    user_aliases: list[str],
    narrator: str | None,
) -> Cast:
    """The cast from the command line. `user_aliases` items are `NAME=A,B` or, with one user,
    plain `A,B`. Raises ValueError on a name that is not a word, an alias for someone who is not
    a --user, or one alias given to two characters."""
    user_alias_map: dict[str, list[str]] = {u: [] for u in users}
    for spec in user_aliases:
        owner, sep, names = spec.partition("=")
        if not sep:
            if len(users) != 1:
                raise ValueError(
                    f"--user-alias {spec!r}: with {len(users)} users write NAME=ALIAS,ALIAS"
                )
            owner, names = users[0], spec
        if owner not in user_alias_map:
            raise ValueError(
                f"--user-alias {spec!r}: {owner!r} is not a --user (users: {users or 'none'})"
            )
        user_alias_map[owner] += _names(names)
    characters = [
        Character(
            assistant, tuple(dict.fromkeys(a for spec in assistant_aliases for a in _names(spec)))
        )
    ]
    characters += [Character(u, tuple(dict.fromkeys(user_alias_map[u]))) for u in users]
    owner_of: dict[str, str] = {}
    for character in characters:
        for form in character.all_names:
            if not NAME.match(form):
                raise ValueError(
                    f"name {form!r} is not a single word (no spaces, slashes, commas or quotes)"
                )
            if owner_of.setdefault(form, character.name) != character.name:
                raise ValueError(f"{form!r} is given to both {owner_of[form]} and {character.name}")
    if narrator is not None and not NAME.match(narrator):
        raise ValueError(f"--narrator {narrator!r} is not a single word")
    return Cast(characters[0], tuple(characters[1:]), narrator)


def attribute(
    text: str, cast: Cast, progress: bool = False, label: str = ""
) -> tuple[list[Utterance], bool]:
    """Every line of `text` with its speaker or drop reason, and whether the text is a script."""
    speakers = Speakers(
        cast.characters,
        narrator=cast.narrator,
        text_speakers=find_text_speakers(text, cast.characters),
    )
    script_mode = is_script(text, cast.characters)
    return parse_text(
        text, speakers, script_mode=script_mode, progress=progress, label=label
    ), script_mode


def extract(
    path: Path, text: str, cast: Cast, options: BuildOptions, progress: bool = False
) -> tuple[list[Sample], Report]:
    """Samples of one text and its report (before duplicate removal)."""
    report = Report(source=str(path))
    utterances, script_mode = attribute(text, cast, progress=progress, label=path.name)
    samples = DialogueBuilder(cast, options, report, str(path)).build(utterances)
    attributed = collections.Counter(
        u.speaker for u in utterances if u.drop is None and u.speaker != OTHER
    )
    others = collections.Counter(
        u.hint for u in utterances if u.drop is None and u.speaker == OTHER
    )
    malformed = collections.Counter(u.malformed for u in utterances if u.malformed)
    speech_lines = {u.line for u in utterances}
    report.extra.update(
        {
            "unit": "line = one quote or script line",
            "script_mode": script_mode,
            # Script lines that had to be repaired: two speakers glued on one line (split), or text
            # after the closing bracket (kept out of the line).
            "malformed_script_lines": dict(sorted(malformed.items())),
            "malformed_examples": [where(str(path), u) for u in utterances if u.malformed][
                :EXAMPLES_PER_REASON
            ],
            # Lines of the file that hold no quote or script line (narration, profiles, headings).
            "lines_without_speech": sum(
                1
                for i, line in enumerate(text.split("\n"), 1)
                if line.strip() and i not in speech_lines
            ),
            "attributed_lines": {c.name: attributed.get(c.name, 0) for c in cast.characters},
            # How speakers were found (script, before/after the quote, continuation, pronoun,
            # narrator).
            "attributed_by_rule": dict(
                sorted(collections.Counter(u.rule for u in utterances if u.drop is None).items())
            ),
            "unconfigured_speaker_lines": sum(others.values()),
            # The most frequent speakers nobody configured: candidates for --user or an alias.
            "top_unconfigured_speakers": dict(others.most_common(15)),
        }
    )
    return samples, report


def extract_source(path: Path, cast: Cast, options: BuildOptions) -> tuple[list[Sample], Report]:
    """Samples and report of one input: a text file, or a folder whose *.txt files (in name order)
    are scenes of one source: every file ends its conversations, the report covers them all."""
    if not path.is_dir():
        return extract(path, read_text(path), cast, options, progress=True)
    files = sorted(p for p in path.iterdir() if p.suffix == ".txt" and p.is_file())
    if not files:
        raise ConversionError(path, "folder holds no .txt files")
    samples, reports, empty = [], [], []
    for file in tqdm(files, desc=path.name, unit="file"):
        try:
            text = read_text(file)
        except ConversionError as e:
            if "empty (no text)" not in str(e):
                raise
            empty.append(str(file))
            continue
        file_samples, report = extract(file, text, cast, options)
        samples += file_samples
        reports.append(report)
    total = Report(source=str(path))
    for report in reports:
        total.records_in += report.records_in
        total.dropped.update(report.dropped)
        for reason, examples in report.examples.items():
            total.examples[reason].extend(
                examples[: EXAMPLES_PER_REASON - len(total.examples[reason])]
            )
        for key, value in report.extra.items():
            if isinstance(value, dict):
                merged = collections.Counter(total.extra.get(key, {}))
                merged.update(value)
                total.extra[key] = dict(sorted(merged.items()))
            elif isinstance(value, bool):
                total.extra[key] = total.extra.get(key, False) or value
            elif isinstance(value, int):
                total.extra[key] = total.extra.get(key, 0) + value
            elif isinstance(value, list):
                total.extra[key] = (total.extra.get(key, []) + value)[:EXAMPLES_PER_REASON]
            else:
                total.extra[key] = value
    others = collections.Counter(total.extra.get("top_unconfigured_speakers", {}))
    total.extra["top_unconfigured_speakers"] = dict(others.most_common(15))
    total.extra.update({"files": len(files), "empty_files": empty})
    return samples, total


def load_existing(path: Path) -> list[dict]:
    """Records of the ShareGPT JSON file to merge into; ConversionError naming the problem."""
    if not path.is_file():
        raise ConversionError(path, "--merge-existing needs an existing ShareGPT JSON file")
    try:
        records = json.loads(text_input.read_text(path))
    except text_input.NotTextError as e:
        raise ConversionError(path, str(e).removeprefix(f"{path}: ")) from None
    except json.JSONDecodeError as e:
        raise ConversionError(
            path, f"broken JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(records, list):
        raise ConversionError(path, "not a JSON list of ShareGPT records")
    for i, record in enumerate(records):
        turns = record.get("conversations") if isinstance(record, dict) else None
        well_formed = isinstance(turns, list) and all(
            isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns
        )
        if not well_formed:
            raise ConversionError(
                path, f"record {i} has no 'conversations' list of {{from, value}} turns"
            )
    return records


def remove_duplicates(
    per_file: list[tuple[list[Sample], Report]], existing: list[dict], index: DuplicateIndex
) -> list[Sample]:
    """Keep the first of every group of duplicates, in input order, after the existing records
    (which are kept whatever they hold). Counts kept and dropped lines in each file's report."""
    for record in existing:
        index.add("\n".join(turn["value"] for turn in record["conversations"]))
    kept: list[Sample] = []
    for samples, report in per_file:
        n_kept = n_turns = 0
        ended_by = collections.Counter()
        for sample in samples:
            duplicate = index.check(sample.text())
            if duplicate:
                for u in sample.utterances:
                    report.drop(f"duplicate_{duplicate}", where(report.source, u))
                continue
            index.add(sample.text())
            kept.append(sample)
            report.keep(len(sample.utterances))
            n_kept += 1
            ended_by[sample.ended_by] += 1
            n_turns += len(sample.conversations)
        report.extra["samples"] = n_kept
        report.extra["turns"] = n_turns
        # Why each kept sample ended (scene break, third speaker, addressee change, ...).
        report.extra["samples_ended_by"] = dict(sorted(ended_by.items()))
    return kept


def combine(reports: list[Report], source: str) -> Report:
    """One report summing several (the dataset's own report)."""
    total = Report(source=source)
    for report in reports:
        total.records_in += report.records_in
        total.records_out += report.records_out
        total.dropped.update(report.dropped)
        for reason, examples in report.examples.items():
            room = EXAMPLES_PER_REASON - len(total.examples[reason])
            total.examples[reason].extend(examples[:room])
    total.extra["samples"] = sum(r.extra.get("samples", 0) for r in reports)
    total.extra["turns"] = sum(r.extra.get("turns", 0) for r in reports)
    total.extra["per_input"] = {
        r.source: {"in": r.records_in, "out": r.records_out, "samples": r.extra.get("samples", 0)}
        for r in reports
    }
    return total


def backup_path(path: Path) -> Path:
    """`FILE.<YYYYmmdd-HHMMSS>.bak` next to FILE, numbered when that name is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
        n += 1
    return candidate


def convert_all(args: argparse.Namespace, cast: Cast) -> tuple[list[Report], Report, Path]:
    """Do the whole job; nothing is written until every input has been read and converted.
    Returns the per-input reports, the combined report and the dataset file written."""
    stems = collections.Counter(p.stem for p in args.inputs)
    if clashing := [s for s, n in stems.items() if n > 1]:
        raise ConversionError(
            args.inputs[0], f"several inputs are named {clashing}; their reports would collide"
        )
    nsfw = None
    if args.nsfw == "drop":
        try:
            nsfw = KeywordFilter.from_file(args.nsfw_keywords)
        except ValueError as e:
            raise ConversionError(
                args.nsfw_keywords, str(e).removeprefix(f"{args.nsfw_keywords}: ")
            ) from e
    options = BuildOptions(
        system=args.system.replace("{assistant}", cast.assistant.name),
        third_party=args.third_party,
        leading_assistant=args.leading_assistant,
        max_turns=args.max_turns,
        max_turn_chars=args.max_turn_chars,
        max_sample_chars=args.max_sample_chars,
        max_gap_chars=args.max_gap_chars,
        nsfw=nsfw,
    )
    existing = load_existing(args.merge_existing) if args.merge_existing else []
    per_file = [extract_source(path, cast, options) for path in args.inputs]
    for _, report in per_file:
        if not report.extra["attributed_lines"][cast.assistant.name]:
            logger.warning(
                "%s: no line is attributed to %s; it adds no sample",
                report.source,
                cast.assistant.name,
            )
    for character in (cast.assistant, *cast.users):
        if not any(report.extra["attributed_lines"][character.name] for _, report in per_file):
            names = ", ".join(character.all_names)
            raise ConversionError(
                ", ".join(map(str, args.inputs)),
                f"no line is attributed to {character.name} (names tried: {names}); "
                f"check the name and its aliases",
            )
    threshold = args.near_dup_threshold if args.near_dup_threshold > 0 else 1.0
    kept = remove_duplicates(
        per_file, existing, DuplicateIndex(threshold=threshold, seed=args.seed)
    )
    reports = [report for _, report in per_file]
    for report in reports:
        report.extra.update(
            {
                "assistant": cast.assistant.name,
                "users": [u.name for u in cast.users] or "anyone else",
                "narrator": cast.narrator,
                "nsfw": args.nsfw,
                "seed": args.seed,
            }
        )
    if not kept:
        raise ConversionError(
            ", ".join(map(str, args.inputs)),
            "no sample left: " + "; ".join(r.summary_line() for r in reports),
        )
    records = [s.record() for s in kept]
    total = combine(reports, ", ".join(map(str, args.inputs)))
    if args.merge_existing:
        target = args.merge_existing
        backup = backup_path(target)
        shutil.copy2(target, backup)
        total.extra.update(
            {
                "merged_into": str(target),
                "existing_records": len(existing),
                "backup": str(backup),
                "dataset_info_entry": {target.stem: dataset_entry(target.name, "sharegpt")},
            }
        )
        atomic_write_json(target, existing + records)
        report_dir, report_stem = target.parent, target.stem
        atomic_write_json(report_dir / f"{report_stem}.report.json", total.as_dict(), indent=2)
    else:
        # publish() writes NAME.json and the combined report, then registers NAME.
        publish(args.out_dir, [DatasetOutput(args.name, records, total)], "sharegpt")
        target = args.out_dir / f"{args.name}.json"
        report_dir, report_stem = args.out_dir, args.name
    for report, path in zip(reports, args.inputs, strict=True):
        atomic_write_json(
            report_dir / f"{report_stem}.{path.stem}.report.json", report.as_dict(), indent=2
        )
    return reports, total, target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.dialogue",
        description="Extract one character's dialogue from novels / fan fiction (UTF-8 text: "
        "`Name：line` "
        "scripts or prose with quoted speech) into multi-turn ShareGPT for LLaMA-Factory. Writes "
        "OUT_DIR/NAME.json registered in OUT_DIR/dataset_info.json, or merges into an "
        "existing file; a report per input counts lines in, out and dropped per reason.",
    )
    parser.add_argument(
        "--inputs",
        type=Path,
        nargs="+",
        required=True,
        help="UTF-8 text files (LF or CRLF), or folders of scene files (*.txt, one scene each)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--out-dir", type=Path, help="output folder (dataset_dir for LLaMA-Factory); needs --name"
    )
    target.add_argument(
        "--merge-existing",
        type=Path,
        metavar="FILE",
        help="merge into this ShareGPT JSON file (atomic, after a FILE.<time>.bak backup), "
        "skipping samples that duplicate its records",
    )
    parser.add_argument(
        "--name",
        type=dataset_name_arg,
        help="dataset name with --out-dir, an identifier (e.g. wusong_dialogue)",
    )
    parser.add_argument(
        "--assistant", required=True, help="the character the model plays (gpt turns)"
    )
    parser.add_argument(
        "--assistant-alias",
        action="append",
        default=[],
        metavar="A,B",
        help="other names of the assistant in the text, comma-separated (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME",
        help="a character whose lines become human turns (repeatable); "
        "none given: every other recognised speaker",
    )
    parser.add_argument(
        "--user-alias",
        action="append",
        default=[],
        metavar="[NAME=]A,B",
        help="other names of a user: NAME=A,B, or A,B when there is one --user (repeatable)",
    )
    parser.add_argument(
        "--narrator", help="the character first-person narration (我道：“…”) belongs to"
    )
    parser.add_argument(
        "--system",
        default="",
        help="system prompt of every sample; {assistant} becomes the assistant's name "
        "(default: none)",
    )
    parser.add_argument(
        "--third-party",
        choices=THIRD_PARTY_MODES,
        default="break",
        help="a line by someone else ends the dialogue (break) or joins the human turn "
        "under its speaker's name (fold) (default: %(default)s)",
    )
    parser.add_argument(
        "--leading-assistant",
        choices=LEADING_ASSISTANT_MODES,
        default="drop",
        help="an assistant line that opens a dialogue is dropped, or kept as "
        "'NAME：line' in the system prompt (default: %(default)s)",
    )
    parser.add_argument(
        "--max-turns",
        type=int,
        default=16,
        help="messages per sample; longer dialogues are cut into windows that do not "
        "overlap (default: %(default)s)",
    )
    parser.add_argument(
        "--max-turn-chars",
        type=int,
        default=1000,
        help="a longer turn is dropped and splits its dialogue (default: %(default)s)",
    )
    parser.add_argument(
        "--max-sample-chars",
        type=int,
        default=4000,
        help="characters per sample, all turns together (default: %(default)s)",
    )
    parser.add_argument(
        "--max-gap-chars",
        type=int,
        default=200,
        help="more narration than this between two lines ends the dialogue (default: %(default)s)",
    )
    parser.add_argument(
        "--nsfw",
        choices=("drop", "keep"),
        default="drop",
        help="drop lines matching the NSFW keyword list, ending their dialogue (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--nsfw-keywords",
        type=Path,
        default=DEFAULT_KEYWORDS,
        help="keyword list, one per line (default: %(default)s)",
    )
    parser.add_argument(
        "--near-dup-threshold",
        type=float,
        default=0.8,
        help="drop a sample whose character-trigram Jaccard similarity to a kept one is at "
        "least this; 0 keeps near duplicates (exact ones are always dropped) (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the MinHash permutations of near-duplicate search (default: %(default)s)",
    )
    return parser


def _cast(args: argparse.Namespace) -> Cast:
    return build_cast(
        args.assistant, args.assistant_alias, args.user, args.user_alias, args.narrator
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 0 with a summary line per input, or 2 with `file: reason`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out_dir is not None:
        if not args.name:
            parser.error("--out-dir needs --name")
    elif args.name:
        parser.error("--name goes with --out-dir; --merge-existing writes into FILE")
    for flag in ("max_turns", "max_turn_chars", "max_sample_chars"):
        if getattr(args, flag) < (2 if flag == "max_turns" else 1):
            parser.error(f"--{flag.replace('_', '-')} is too small")
    if not 0 <= args.near_dup_threshold <= 1:
        parser.error("--near-dup-threshold must be between 0 and 1")
    try:
        _cast(args)
    except ValueError as e:
        parser.error(str(e))
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Convert every input and write the dataset and reports; 2 with `file: reason`."""
    try:
        reports, total, target = convert_all(args, _cast(args))
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for report in reports:
        print(f"{report.summary_line()}; samples {report.extra['samples']}")
    print(
        f"wrote {total.extra['samples']} samples ({total.extra['turns']} turns) to {target}"
        + (f" (backup {total.extra['backup']})" if "backup" in total.extra else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
