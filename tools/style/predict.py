"""Batched prediction over a JSONL file: `python -m tools.style predict --model DIR --in FILE --out
FILE`.

Each input line is a contract record (`input`) or a question/answer pair (`question`, `answer`);
each output line is the input record plus `prediction` = {label, label_english, probabilities}.
Lines that carry a `label` are scored, and the accuracy over them is returned and printed. Strict:
a bad line stops the run with its file, line and reason, and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from plugins.style.classifier import StyleClassifier, probability_record
from plugins.style.labels import read_label_mapping
from tools.common.fileio import atomic_write_text, read_jsonl
from tools.style.data import StyleDataError, exchange_text


def read_inputs(path: Path | str) -> list[tuple[str, dict, str]]:
    """(where, record, classifier input) for every line of `path`; StyleDataError on the first bad
    line."""
    rows = []
    for line in read_jsonl(path):
        where = f"{path}:{line.line_no}"
        if line.error:
            raise StyleDataError(f"{where}: {line.error}")
        try:
            rows.append((where, line.value, exchange_text(line.value)))
        except StyleDataError as e:
            raise StyleDataError(f"{where}: {e}") from None
    return rows


def predict_file(
    model_dir: Path | str, in_path: Path | str, out_path: Path | str, batch_size: int = 32
) -> dict:
    """Predict every line of `in_path`, write `out_path` atomically; return a summary with accuracy.

    The input is checked completely before the model is loaded."""
    rows = read_inputs(in_path)
    labels, _ = read_label_mapping(model_dir)
    known = set(labels.names) | set(labels.english_names)
    for where, record, _ in rows:
        label = record.get("label")
        if label is not None and (not isinstance(label, str) or label not in known):
            raise StyleDataError(
                f"{where}: label {label!r} is not one of the model's {labels.names}"
            )
    classifier = StyleClassifier(model_dir, batch_size=batch_size)
    texts = [text for _, _, text in rows]
    step = classifier.batch_size * 8  # progress granularity; the classifier batches inside
    probabilities: list[list[float]] = []
    for start in tqdm(range(0, len(texts), step), desc="predict", unit="chunk"):
        probabilities.extend(classifier.predict_proba(texts[start : start + step]))

    lines, labelled, correct = [], 0, 0
    for (_, record, _), row in zip(rows, probabilities, strict=True):
        prediction = probability_record(classifier.labels, row)
        if record.get("label") is not None:
            labelled += 1
            correct += classifier.labels.id_of(record["label"]) == classifier.labels.id_of(
                prediction["label"]
            )
        lines.append(json.dumps({**record, "prediction": prediction}, ensure_ascii=False) + "\n")
    atomic_write_text(out_path, "".join(lines))
    return {
        "model": str(classifier.model_dir),
        "records": len(rows),
        "labelled": labelled,
        "accuracy": correct / labelled if labelled else None,
        "out": str(out_path),
    }
