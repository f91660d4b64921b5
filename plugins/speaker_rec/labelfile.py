"""labels.json, prepare's output: writing it in a stable layout and reading it back.

The file is one JSON object: the run's settings, counts, warnings and accuracy summary, then
`lines`, one compact record per line of the series (deleted lines are left out):

    index, episode, duration      where the line is
    label                         pseudo-label: a character, a new-role label or the "other" label
    source                        seed | propagated | new_role | other | no_voiceprint
    level                         similarity level that labelled it (null for seeds and other)
    candidates                    [[name, score], ...] best first, the "other" label last (score
    null)
    margin                        top-1 minus top-2 candidate score (a missing second counts 0)
    sample                        wrong | low_score | close | confident (line selection)
    truth, correct                ground truth and {strict, candidate_aware} (null when unlabelled)
    overlap                       the release marks the line's speech as overlapping another's

The header's `published_known` lists the characters the published code's judging rule
(correctness.published) counts as known, so the report can judge by it too.

`read_labels_json` reads and checks the format (header and each record's fields, naming the
file and the record); the report builds on it. Traces, the tool server, export and eval read it
with `read_labels`, which adds the cross-checks against the series.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from plugins.speaker_rec.json_document import read_json_document
from plugins.speaker_rec.series import Series
from plugins.speaker_rec.toolset import LineLabel

FORMAT = "dramakit-labels/1"
SAMPLE_TYPES = ("wrong", "low_score", "close", "confident")
CORRECTNESS_RULES = ("strict", "candidate_aware")  # the keys of a record's `correct`


def is_number(value) -> bool:
    """A finite int or float (not a bool): what a JSON number field must hold."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_correctness(value) -> bool:
    """A `correct` value: a bool for each of CORRECTNESS_RULES (labels.json and results.jsonl
    alike)."""
    return isinstance(value, dict) and all(
        isinstance(value.get(rule), bool) for rule in CORRECTNESS_RULES
    )


# Each record's fields and what a readable value is (extra fields are accepted as they come).
RECORD_CHECKS = {
    "index": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "episode": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "duration": lambda v: is_number(v) and v >= 0,
    "label": lambda v: isinstance(v, str),
    "margin": is_number,
    "sample": lambda v: v in SAMPLE_TYPES,
    "truth": lambda v: v is None or isinstance(v, str),
    "correct": lambda v: v is None or is_correctness(v),
    "source": lambda v: isinstance(v, str),
}


@dataclass
class LabelFile:
    """A labels.json read back: the per-line labels, the character inventory the rules
    judge against, the "other" label, and the rest of the header as written."""

    lines: dict[int, LineLabel]
    characters: list[str]
    other: str
    header: dict
    seeds: frozenset[int] = frozenset()  # lines whose label is a seed (given, so never judged)


def dumps(header: dict, records: list[dict]) -> str:
    """The file's text: the header indented for reading, one compact line per record."""
    head = json.dumps(header, ensure_ascii=False, indent=1)
    body = ",\n".join(
        "  " + json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records
    )
    return head[:-2] + ',\n "lines": [\n' + body + "\n ]\n}\n"


def read_labels_json(path: Path | str) -> dict:
    """Read a labels.json and check its format: the header (`format`, `other`, `lines`,
    `published_known`) and every record's fields (RECORD_CHECKS, `truth` and `correct` set
    together, no index twice, `overlap` a bool when present). Returns the parsed object; raises
    ValueError naming the file, the record (`lines[i]`) and the reason."""
    path = Path(path)
    data = read_json_document(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a labels file (format is not {FORMAT!r})")
    if not isinstance(data.get("other"), str) or not isinstance(data.get("lines"), list):
        raise ValueError(f"{path}: the header lacks 'other' or 'lines'")
    known = data.get("published_known")
    if known is not None and not (
        isinstance(known, list) and all(isinstance(name, str) for name in known)
    ):
        raise ValueError(f"{path}: 'published_known' is not a list of names ({known!r})")
    seen = set()
    for position, record in enumerate(data["lines"]):
        where = f"{path}: lines[{position}]"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: not a JSON object")
        for key, ok in RECORD_CHECKS.items():
            if key not in record or not ok(record[key]):
                raise ValueError(f"{where}: missing or invalid {key!r} ({record.get(key)!r})")
        if (record["truth"] is None) != (record["correct"] is None):
            raise ValueError(f"{where}: 'truth' and 'correct' must both be set or both be null")
        if record["index"] in seen:
            raise ValueError(f"{where}: index {record['index']} appears twice")
        if "overlap" in record and not isinstance(record["overlap"], bool):
            raise ValueError(f"{where}: invalid 'overlap' ({record['overlap']!r})")
        seen.add(record["index"])
    return data


def read_labels(path: Path | str, series: Series) -> LabelFile:
    """Read a labels.json (read_labels_json) and check it against `series`: written for it,
    every index a non-deleted line, every line labelled, candidates ending with the "other"
    label; raises ValueError naming the file, the record and the reason."""
    path = Path(path)

    def bad(reason: str) -> ValueError:
        return ValueError(f"{path}: {reason}")

    data = read_labels_json(path)
    if data.get("series") != series.name:
        raise bad(f"written for series {data.get('series')!r}, not {series.name!r}")
    other = data.get("other")
    lines, seeds = {}, set()
    for position, record in enumerate(data.get("lines", [])):
        try:
            index = record["index"]
            candidates = tuple((name, score) for name, score in record["candidates"])
            label = LineLabel(
                record["label"], candidates, float(record["margin"]), record["sample"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"lines[{position}] is malformed ({type(e).__name__}: {e})") from None
        if (
            not (isinstance(index, int) and 0 <= index < len(series.lines))
            or series.lines[index].deleted
        ):
            raise bad(
                f"lines[{position}]: index {index!r} is not a non-deleted line of {series.name}"
            )
        if not candidates or candidates[-1][0] != other:
            raise bad(f"lines[{position}]: the candidate list must end with {other!r}")
        if label.sample_type not in SAMPLE_TYPES:
            raise bad(f"lines[{position}]: unknown sample type {label.sample_type!r}")
        lines[index] = label
        if record.get("source") == "seed":
            seeds.add(index)
    missing = [line.index for line in series.lines if not line.deleted and line.index not in lines]
    if missing:
        raise bad(f"{len(missing)} non-deleted lines have no record (first: {missing[0]})")
    return LabelFile(
        lines,
        list(data.get("characters", [])),
        other,
        {k: v for k, v in data.items() if k != "lines"},
        frozenset(seeds),
    )
