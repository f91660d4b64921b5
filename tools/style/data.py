"""The style data contract, its checks, the question/answer converter and the stratified split.

A record is one JSON line `{input, label, label_english, metadata}` where `input` is
"用户问题：<question>\\n回答：<answer>" (built by `format_input`, the one place that format lives,
shared by training, prediction, the service and the reward). Used by the `convert`, `validate`,
`train` and `predict` subcommands of `python -m tools.style`.
"""

from __future__ import annotations

import collections
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from plugins.style.labels import LabelSet, format_input
from tools.common.fileio import Report, atomic_write_text, json_objects


@dataclass
class StyleRecord:
    """One labelled example; `where` ('file:line') names it in errors and is not written out."""

    input: str
    label: str
    label_english: str
    metadata: dict = field(default_factory=dict)
    where: str = ""

    def to_json(self) -> dict:
        return {
            "input": self.input,
            "label": self.label,
            "label_english": self.label_english,
            "metadata": self.metadata,
        }


class StyleDataError(ValueError):
    """A data file that training or prediction cannot use; the message names file, line and
    reason."""


def exchange_text(value) -> str:
    """The classifier input of one exchange given as `{input}` or `{question, answer}` (prediction
    files, service requests); StyleDataError with the reason otherwise."""
    if not isinstance(value, dict):
        raise StyleDataError("not a JSON object")
    text = value.get("input")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise StyleDataError("`input` must be a non-empty string")
        return text
    question, answer = value.get("question", ""), value.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str) or not answer.strip():
        raise StyleDataError(
            "needs a non-empty string `input`, or `answer` (and optionally `question`) strings"
        )
    return format_input(question, answer)


def _label_of(value: dict, labels: LabelSet) -> tuple[str | None, str | None]:
    """(reason, None) when the record's labels are missing, unknown or inconsistent, else (None,
    canonical label)."""
    label = value.get("label")
    if not isinstance(label, str) or not label.strip():
        return "missing label", None
    try:
        style = labels.styles[labels.id_of(label)]
    except KeyError:
        return "unknown label", None
    english = value.get("label_english")
    if english is not None and english != style.label_english:
        return "label_english does not match label", None
    return None, style.label


def check_records(path: Path | str, labels: LabelSet) -> tuple[list[StyleRecord], Report]:
    """Read a contract JSONL file and check every line against `labels`.

    Returns the good records and a Report that counts and names every dropped line (broken JSON,
    not an object, missing input, missing/unknown/inconsistent label, duplicate input) and carries
    `class_counts` of the kept records. Never raises on bad content."""
    path = Path(path)
    report = Report(source=str(path))
    records: list[StyleRecord] = []
    first_seen: dict[str, StyleRecord] = {}
    for _, where, value in json_objects(path, report):
        text = value.get("input")
        if not isinstance(text, str) or not text.strip():
            report.drop("missing input", where)
            continue
        reason, label = _label_of(value, labels)
        if reason:
            report.drop(reason, f"{where}: {value.get('label')!r}")
            continue
        earlier = first_seen.get(text)
        if earlier is not None:
            reason = (
                "duplicate input"
                if earlier.label == label
                else "duplicate input with another label"
            )
            report.drop(reason, f"{where} (same input as {earlier.where})")
            continue
        metadata = value.get("metadata", {})
        if not isinstance(metadata, dict):
            report.drop("metadata is not an object", where)
            continue
        record = StyleRecord(
            text, label, labels.styles[labels.id_of(label)].label_english, metadata, where
        )
        first_seen[text] = record
        records.append(record)
        report.keep()
    counts = collections.Counter(r.label for r in records)
    report.extra["class_counts"] = {name: counts.get(name, 0) for name in labels.names}
    return records, report


def load_records(path: Path | str, labels: LabelSet) -> list[StyleRecord]:
    """Strict read for training: every line must be a good record, else StyleDataError naming
    them."""
    records, report = check_records(path, labels)
    if report.dropped:
        problems = "; ".join(
            f"{reason} ×{n} (e.g. {', '.join(report.examples[reason][:3])})"
            for reason, n in sorted(report.dropped.items())
        )
        raise StyleDataError(
            f"{path}: {sum(report.dropped.values())} bad record(s) of "
            f"{report.records_in}: {problems}. "
            "Run `python -m tools.style validate` for the full report."
        )
    if not records:
        raise StyleDataError(f"{path}: no records")
    return records


def write_records(path: Path | str, records: list[StyleRecord]) -> None:
    """Write records as contract JSONL, atomically."""
    atomic_write_text(
        path, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
    )


def convert_pairs(
    path: Path | str,
    labels: LabelSet,
    *,
    question_key: str = "question",
    answer_key: str = "answer",
    label_key: str = "label",
    fixed_label: str | None = None,
) -> tuple[list[StyleRecord], Report]:
    """Turn a JSONL file of question/answer pairs into contract records.

    Each line is an object with a question, an answer and (unless `fixed_label` labels them all) a
    label; every other field goes to `metadata`, plus `source_line`. Lines that cannot become a
    record are dropped and counted per reason in the returned Report; duplicate inputs keep the
    first."""
    path = Path(path)
    report = Report(source=str(path))
    records: list[StyleRecord] = []
    first_seen: dict[str, str] = {}
    used_keys = {question_key, answer_key} | ({label_key} if fixed_label is None else set())
    for line_no, where, value in json_objects(path, report):
        question, answer = value.get(question_key), value.get(answer_key)
        if not isinstance(question, str) or not question.strip():
            report.drop(f"missing {question_key}", where)
            continue
        if not isinstance(answer, str) or not answer.strip():
            report.drop(f"missing {answer_key}", where)
            continue
        reason, label = _label_of(
            {"label": fixed_label if fixed_label is not None else value.get(label_key)}, labels
        )
        if reason:
            report.drop(
                reason, f"{where}: {value.get(label_key) if fixed_label is None else fixed_label!r}"
            )
            continue
        text = format_input(question, answer)
        if text in first_seen:
            report.drop("duplicate input", f"{where} (same input as {first_seen[text]})")
            continue
        first_seen[text] = where
        metadata = {k: v for k, v in value.items() if k not in used_keys}
        metadata["source_line"] = line_no
        records.append(
            StyleRecord(
                text, label, labels.styles[labels.id_of(label)].label_english, metadata, where
            )
        )
        report.keep()
    counts = collections.Counter(r.label for r in records)
    report.extra["class_counts"] = {name: counts.get(name, 0) for name in labels.names}
    return records, report


def stratified_split(
    records: list[StyleRecord], labels: LabelSet, eval_fraction: float, seed: int
) -> tuple[list[StyleRecord], list[StyleRecord]]:
    """Split into (train, eval) so that every class of `labels` is in both.

    Per class, a seeded shuffle then round(eval_fraction × n) examples (at least 1, at most n − 1)
    go to eval; both parts are shuffled again so a class-sorted input never yields class-sorted
    output. Raises StyleDataError when a class has fewer than 2 examples (including none)."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    by_class: dict[str, list[StyleRecord]] = {name: [] for name in labels.names}
    for record in records:
        by_class[record.label].append(record)
    too_small = {name: len(group) for name, group in by_class.items() if len(group) < 2}
    if too_small:
        raise StyleDataError(
            f"cannot split: class(es) with fewer than 2 examples {too_small}; each class "
            "needs one for "
            "training and one for evaluation (add examples, or declare a label set without them)"
        )
    rng = random.Random(seed)
    train, evaluation = [], []
    for name in labels.names:
        group = list(by_class[name])
        rng.shuffle(group)
        n_eval = min(max(1, round(eval_fraction * len(group))), len(group) - 1)
        evaluation.extend(group[:n_eval])
        train.extend(group[n_eval:])
    rng.shuffle(train)
    rng.shuffle(evaluation)
    return train, evaluation
