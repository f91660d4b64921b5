"""Classification metrics of the style classifier: accuracy, macro and weighted F1, per-class
precision/recall/F1, the confusion matrix (JSON and PNG) and the majority-class baseline.

Our own few lines instead of scikit-learn, which is not in the pinned environment. A class that is
never predicted has precision 0 (scikit-learn's `zero_division=0`). Called by `tools.style.train`.
"""

from __future__ import annotations

import io
from pathlib import Path

from plugins.style.labels import LabelSet
from tools.common.fileio import atomic_write_bytes


def confusion_matrix(y_true: list[int], y_pred: list[int], num_classes: int) -> list[list[int]]:
    """Counts with rows = true class, columns = predicted class."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t][p] += 1
    return matrix


def _safe_div(a: float, b: float) -> float:
    return a / b if b else 0.0


def classification_metrics(y_true: list[int], y_pred: list[int], labels: LabelSet) -> dict:
    """All metrics of one evaluation, keyed for JSON: scalars, `per_class` by label,
    `confusion_matrix`."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    for i, style in enumerate(labels.styles):
        true_positive = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = _safe_div(true_positive, predicted)
        recall = _safe_div(true_positive, support)
        per_class[style.label] = {
            "label_english": style.label_english,
            "precision": precision,
            "recall": recall,
            "f1": _safe_div(2 * precision * recall, precision + recall),
            "support": support,
        }
    total = len(y_true)
    f1s = [entry["f1"] for entry in per_class.values()]
    return {
        "num_examples": total,
        "accuracy": _safe_div(sum(matrix[i][i] for i in range(len(labels))), total),
        "macro_f1": sum(f1s) / len(f1s),
        "weighted_f1": _safe_div(sum(e["f1"] * e["support"] for e in per_class.values()), total),
        "per_class": per_class,
        "confusion_matrix": {
            "labels": labels.names,
            "rows": "true",
            "columns": "predicted",
            "matrix": matrix,
        },
    }


def trainer_metrics(y_true: list[int], y_pred: list[int], labels: LabelSet) -> dict[str, float]:
    """The flat scalars the HF Trainer logs and selects the best checkpoint by (`macro_f1`)."""
    full = classification_metrics(y_true, y_pred, labels)
    flat = {key: full[key] for key in ("accuracy", "macro_f1", "weighted_f1")}
    flat.update(
        {f"f1_{entry['label_english']}": entry["f1"] for entry in full["per_class"].values()}
    )
    return flat


def majority_baseline(train_labels: list[int], eval_labels: list[int], labels: LabelSet) -> dict:
    """Metrics of always predicting the most frequent training class (lowest id on ties)."""
    counts = [train_labels.count(i) for i in range(len(labels))]
    majority = counts.index(max(counts))
    metrics = classification_metrics(eval_labels, [majority] * len(eval_labels), labels)
    return {
        "predicts": labels.names[majority],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
    }


def plot_confusion_matrix(
    matrix: list[list[int]], labels: LabelSet, path: Path | str, title: str
) -> None:
    """Save the confusion matrix as a PNG; ticks use English names (the default font has no CJK
    glyphs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * size + 2, 1.2 * size + 1.5))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(size), labels.english_names, rotation=45, ha="right")
    ax.set_yticks(range(size), labels.english_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > peak / 2 else "black",
            )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
