"""The label set of the style classifier and its `label_mapping.json`.

A label set is an ordered list of styles; a style's position is its class id. Each style has the
name used in data (`label`, Chinese by default) and an English name (`label_english`) that names
metrics, plot ticks and reward fields. Recipes may declare another set; the trained model directory
carries the set it was trained with in `label_mapping.json`, which every reader of the model uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

MAPPING_FILE = "label_mapping.json"
# English names become metric keys (`f1_helpful`) and reward fields (`p_helpful`).
_ENGLISH_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Style:
    """One class: the name used in data and its English name."""

    label: str
    label_english: str


@dataclass(frozen=True)
class LabelSet:
    """An ordered, validated set of styles; ids are positions."""

    styles: tuple[Style, ...]

    def __post_init__(self):
        if len(self.styles) < 2:
            raise ValueError(f"a label set needs at least 2 styles, got {len(self.styles)}")
        for style in self.styles:
            if not isinstance(style.label, str) or not style.label.strip():
                raise ValueError(f"style label must be a non-empty string, got {style.label!r}")
            if not isinstance(style.label_english, str) or not _ENGLISH_NAME.match(
                style.label_english
            ):
                raise ValueError(
                    f"label_english of {style.label!r} must match "
                    f"{_ENGLISH_NAME.pattern}, got {style.label_english!r}"
                )
        names = [s.label for s in self.styles] + [s.label_english for s in self.styles]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"label set names must be unique; repeated: {duplicates}")

    @classmethod
    def from_spec(cls, spec: list | None) -> LabelSet:
        """Build a set from a recipe's `labels:` list of `{label, label_english}`; None gives the
        default."""
        if spec is None:
            return DEFAULT_LABELS
        if not isinstance(spec, list):
            raise ValueError(
                "labels must be a list of {label, label_english} entries, got "
                f"{type(spec).__name__}"
            )
        styles = []
        for i, entry in enumerate(spec):
            if not isinstance(entry, dict) or set(entry) != {"label", "label_english"}:
                raise ValueError(
                    f"labels[{i}] must have exactly the keys label and label_english, got {entry!r}"
                )
            styles.append(Style(entry["label"], entry["label_english"]))
        return cls(tuple(styles))

    def __len__(self) -> int:
        return len(self.styles)

    @property
    def names(self) -> list[str]:
        return [s.label for s in self.styles]

    @property
    def english_names(self) -> list[str]:
        return [s.label_english for s in self.styles]

    def id_of(self, name: str) -> int:
        """Class id of a style given by its label or its English name; KeyError when unknown."""
        for i, style in enumerate(self.styles):
            if name in (style.label, style.label_english):
                return i
        raise KeyError(name)

    def to_spec(self) -> list[dict]:
        return [{"label": s.label, "label_english": s.label_english} for s in self.styles]


DEFAULT_LABELS = LabelSet(
    (
        Style("售前", "presales"),
        Style("售后", "aftersales"),
        Style("诚实", "honest"),
        Style("有帮助", "helpful"),
        Style("无伤害", "harmless"),
    )
)


def read_label_mapping(model_dir: Path | str) -> tuple[LabelSet, int]:
    """Read `label_mapping.json` from a trained model directory: the label set and max input
    length."""
    path = Path(model_dir) / MAPPING_FILE
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: missing; is {model_dir} a model trained by `python -m tools.style train`?"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: broken JSON ({e.msg} at line {e.lineno})") from e
    try:
        entries = sorted(mapping["labels"], key=lambda entry: entry["id"])
        if [entry["id"] for entry in entries] != list(range(len(entries))):
            raise ValueError("ids must be 0..n-1")
        labels = LabelSet(tuple(Style(entry["label"], entry["label_english"]) for entry in entries))
        max_length = int(mapping["max_length"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid label mapping ({e})") from e
    return labels, max_length


INPUT_TEMPLATE = "用户问题：{question}\n回答：{answer}"


def format_input(question: str, answer: str) -> str:
    """The classifier's input text for one exchange."""
    return INPUT_TEMPLATE.format(question=question.strip(), answer=answer.strip())
