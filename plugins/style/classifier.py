"""A trained style classifier loaded for inference: batched probabilities over its label set.

Used by the `predict` and `serve` subcommands and by `rewards/style.py` (local-model mode). The
tokenizer settings shared with training (`load_tokenizer`) live here too, so training and
inference cut and pad inputs the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from plugins.style.labels import LabelSet, read_label_mapping

logger = logging.getLogger(__name__)


def load_tokenizer(model_name_or_path: str | Path, trust_remote_code: bool = False):
    """The tokenizer as the classifier uses it: pads on the right, truncates on the left.

    Left truncation drops the start of the question first and keeps the answer's end, which is
    where the sequence-classification head of causal models reads (the last non-pad token)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        model_name_or_path,
        trust_remote_code=trust_remote_code,
        padding_side="right",
        truncation_side="left",
    )
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; eos is the usual stand-in for classification.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def probability_record(labels: LabelSet, probabilities: list[float]) -> dict:
    """The prediction for one input: best label, its English name, and every label's probability."""
    best = max(range(len(labels)), key=probabilities.__getitem__)
    return {
        "label": labels.names[best],
        "label_english": labels.english_names[best],
        "probabilities": {name: p for name, p in zip(labels.names, probabilities, strict=True)},
    }


class StyleClassifier:
    """A model directory written by `python -m tools.style train`, ready to score texts."""

    def __init__(self, model_dir: Path | str, batch_size: int = 32, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification

        self.model_dir = Path(model_dir)
        self.labels, self.max_length = read_label_mapping(self.model_dir)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(self.model_dir)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(self.model_dir)
            .to(self.device)
            .eval()
        )
        if self.model.config.num_labels != len(self.labels):
            raise ValueError(
                f"{self.model_dir}: model has {self.model.config.num_labels} classes but "
                f"label_mapping.json lists {len(self.labels)}"
            )
        logger.info(
            "loaded style classifier %s (%d labels) on %s",
            self.model_dir,
            len(self.labels),
            self.device,
        )

    def predict_proba(self, texts: list[str]) -> list[list[float]]:
        """Class probabilities for each text, in label-id order; batched, shortest texts
        together."""
        import torch

        if not texts:
            return []
        # Length-sorted batches pad less; the pooled token is the last non-pad one, so order and
        # padding do not change a text's scores.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in chunk],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**encoded).logits
            for i, row in zip(chunk, torch.softmax(logits.float(), dim=-1).tolist(), strict=True):
                results[i] = row
        return results

    def predict(self, texts: list[str]) -> list[dict]:
        """`probability_record` for each text."""
        return [probability_record(self.labels, row) for row in self.predict_proba(texts)]
