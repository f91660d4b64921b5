"""Train the style classifier from a YAML recipe with the HF `Trainer` (no training loop of ours).

`python -m tools.style train --recipe recipes/style/<name>.yaml [key=value ...]`. A recipe holds
our keys (`StyleArguments`) and any `transformers.TrainingArguments` field; unknown keys are an
error. Writes into `output_dir`: the model and tokenizer, `label_mapping.json`, the split
(`train.jsonl`, `eval.jsonl`), `eval_metrics.json` (accuracy, macro/weighted F1, per class,
confusion matrix, majority baseline) and `confusion_matrix.png`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from plugins.style.classifier import load_tokenizer
from plugins.style.labels import MAPPING_FILE, LabelSet
from tools.common.fileio import atomic_write_json
from tools.style.data import StyleRecord, load_records, stratified_split, write_records
from tools.style.metrics import (
    classification_metrics,
    majority_baseline,
    plot_confusion_matrix,
    trainer_metrics,
)

logger = logging.getLogger(__name__)

METRICS_FILE = "eval_metrics.json"
PLOT_FILE = "confusion_matrix.png"


class _RecipeLoader(yaml.SafeLoader):
    """YAML read as YAML 1.2 reads it where PyYAML's 1.1 rules surprise: only true/false are
    booleans (`eval_strategy: no` stays "no"), and `2e-5` is a number, not a string."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


@dataclass
class StyleArguments:
    """The recipe keys that are ours; everything else goes to `TrainingArguments`."""

    model_name_or_path: str
    train_file: str
    # None: the five default styles. Otherwise a list of {label, label_english}; order = class ids.
    labels: list | None = None
    eval_fraction: float = 0.2
    max_length: int = 512
    # Weight the loss by n / (classes × class count) of the training split, for imbalanced data.
    class_weights: bool = False
    trust_remote_code: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, kind = (
                getattr(self, f.name),
                {"str": str, "float": (int, float), "int": int, "bool": bool}.get(f.type),
            )
            if kind and (
                not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
            ):
                raise ValueError(f"{f.name} must be {f.type}, got {value!r}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")


def write_label_mapping(model_dir: Path | str, labels: LabelSet, max_length: int) -> Path:
    """Write `label_mapping.json` into `model_dir`: ids, labels, and the input length trained
    with."""
    path = Path(model_dir) / MAPPING_FILE
    mapping = {
        "labels": [{"id": i, **entry} for i, entry in enumerate(labels.to_spec())],
        # Readers truncate to the same length as training did, so scores match the reported metrics.
        "max_length": max_length,
    }
    atomic_write_json(path, mapping)
    return path


def read_recipe(path: Path | str) -> dict:
    """The recipe's raw key/value mapping, read with `_RecipeLoader`; ValueError when malformed."""
    try:
        config = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_RecipeLoader) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a recipe is a mapping of key: value")
    return config


def load_recipe(path: Path | str, overrides: list[str] = ()):
    """Read a recipe and apply `key=value` overrides; return (StyleArguments, TrainingArguments).

    Raises ValueError naming the recipe and the offending keys or overrides."""
    from transformers import TrainingArguments

    path = Path(path)
    config = read_recipe(path)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        try:
            config[key] = yaml.load(text, Loader=_RecipeLoader) if text else None
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: value is not valid YAML ({e})") from e

    ours = {f.name for f in dataclasses.fields(StyleArguments)}
    theirs = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    unknown = sorted(set(config) - ours - theirs)
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {unknown}; allowed: {sorted(ours)} and "
            "TrainingArguments fields"
        )
    missing = [
        f.name
        for f in dataclasses.fields(StyleArguments)
        if f.default is dataclasses.MISSING and f.name not in config
    ]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {missing}")
    try:
        style = StyleArguments(**{k: v for k, v in config.items() if k in ours})
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    LabelSet.from_spec(style.labels)  # fail on a bad label set before any model is loaded
    training = TrainingArguments(**{k: v for k, v in config.items() if k in theirs})
    return style, training


def _encode(tokenizer, records: list[StyleRecord], labels: LabelSet, max_length: int) -> list[dict]:
    encoded = tokenizer([r.input for r in records], truncation=True, max_length=max_length)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": labels.id_of(r.label)}
        for ids, mask, r in zip(
            encoded["input_ids"], encoded["attention_mask"], records, strict=True
        )
    ]


def _balanced_class_weights(train_labels: list[int], num_classes: int) -> list[float]:
    counts = [train_labels.count(i) for i in range(num_classes)]
    return [len(train_labels) / (num_classes * count) for count in counts]


def _weighted_loss_trainer_class():
    """A Trainer whose loss is class-weighted cross-entropy (the documented way: override
    compute_loss)."""
    import torch
    from transformers import Trainer

    class WeightedLossTrainer(Trainer):
        def __init__(self, *args, class_weights: list[float], **kwargs):
            super().__init__(*args, **kwargs)
            self.class_weights = torch.tensor(class_weights, dtype=torch.float32)
            # Our loss is a per-batch mean; the Trainer then scales it for gradient accumulation
            # itself.
            self.model_accepts_loss_kwargs = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits, labels, weight=self.class_weights.to(logits.device)
            )
            return (loss, outputs) if return_outputs else loss

    return WeightedLossTrainer


def train(style: StyleArguments, args) -> dict:
    """Split, train, pick the best checkpoint by the recipe's metric, evaluate it and write
    everything.

    Returns the contents of `eval_metrics.json`."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

    from tools.common.tiny_model_files import is_tiny_model

    labels = LabelSet.from_spec(style.labels)
    records = load_records(style.train_file, labels)
    train_records, eval_records = stratified_split(records, labels, style.eval_fraction, args.seed)
    out = Path(args.output_dir)
    write_records(out / "train.jsonl", train_records)
    write_records(out / "eval.jsonl", eval_records)
    logger.info(
        "%s: %d train / %d eval records (seed %d)",
        style.train_file,
        len(train_records),
        len(eval_records),
        args.seed,
    )

    tokenizer = load_tokenizer(style.model_name_or_path, style.trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        style.model_name_or_path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels.names)),
        label2id={name: i for i, name in enumerate(labels.names)},
        trust_remote_code=style.trust_remote_code,
    )
    # The head pools the last token that is not pad_token_id, so it must be the id the collator pads
    # with.
    model.config.pad_token_id = tokenizer.pad_token_id

    train_set = _encode(tokenizer, train_records, labels, style.max_length)
    eval_set = _encode(tokenizer, eval_records, labels, style.max_length)
    train_ids = [row["labels"] for row in train_set]
    eval_ids = [row["labels"] for row in eval_set]

    def compute_metrics(prediction):
        return trainer_metrics(
            list(prediction.label_ids), list(prediction.predictions.argmax(-1)), labels
        )

    common = {
        "model": model,
        "args": args,
        "train_dataset": train_set,
        "eval_dataset": eval_set,
        "processing_class": tokenizer,
        "data_collator": DataCollatorWithPadding(tokenizer),
        "compute_metrics": compute_metrics,
    }
    weights = _balanced_class_weights(train_ids, len(labels)) if style.class_weights else None
    trainer = (
        _weighted_loss_trainer_class()(**common, class_weights=weights)
        if weights
        else Trainer(**common)
    )
    trainer.train()

    # With load_best_model_at_end the model in memory is now the best checkpoint.
    predicted = [int(i) for i in trainer.predict(eval_set).predictions.argmax(-1)]
    trainer.save_model(str(out))
    write_label_mapping(out, labels, style.max_length)

    metrics = classification_metrics(eval_ids, predicted, labels)
    plumbing_only = is_tiny_model(style.model_name_or_path)
    report = {
        "model": style.model_name_or_path,
        "note": "tiny random model: proves the plumbing only" if plumbing_only else None,
        "train_file": style.train_file,
        "train_examples": len(train_records),
        "eval_examples": len(eval_records),
        "seed": args.seed,
        "class_weights": weights,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": {args.metric_for_best_model: trainer.state.best_metric}
        if args.metric_for_best_model
        else None,
        **metrics,
        "majority_baseline": majority_baseline(train_ids, eval_ids, labels),
    }
    atomic_write_json(out / METRICS_FILE, report)
    plot_confusion_matrix(
        metrics["confusion_matrix"]["matrix"],
        labels,
        out / PLOT_FILE,
        title=f"eval confusion (accuracy {metrics['accuracy']:.2f}, macro F1 "
        f"{metrics['macro_f1']:.2f})",
    )
    return report
