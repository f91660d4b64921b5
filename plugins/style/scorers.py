"""Style scorers for callers that score many texts concurrently (the verl reward, data filters).

A scorer has `labels` and `probabilities(texts) -> rows in label-id order`, backed by a running
`python -m tools.style serve` (`service_url`) or a model directory loaded in this process
(`model_path`). `get_scorer` keeps one per process and target, made on first use (never at
import), and each batches concurrent callers through a MicroBatcher.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from plugins.style.batching import MicroBatcher
from plugins.style.labels import LabelSet

logger = logging.getLogger(__name__)

_RETRY_DELAYS_S = (0.5, 1.0, 2.0)

_scorers: dict[tuple, object] = {}
_scorers_lock = threading.Lock()


class ServiceScorer:
    """Probabilities from a running `tools.style serve`, in batches no larger than it accepts."""

    def __init__(self, url: str, timeout_s: float):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        health = self._request("/health", None)
        self.labels = LabelSet.from_spec(health["labels"])
        self.max_batch = int(health["max_batch"])
        self.batcher = MicroBatcher(
            self._predict_all, max_items=self.max_batch, name="style-scorer-service"
        )

    def _request(self, path: str, payload: dict | None) -> dict:
        data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        for attempt, delay in enumerate((*_RETRY_DELAYS_S, None), 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                if e.code < 500:  # our request is wrong: retrying cannot help
                    raise RuntimeError(
                        f"style service {self.url}{path}: HTTP {e.code}: {e.read()[:500]!r}"
                    ) from None
                error = f"HTTP {e.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                error = str(e)
            if delay is None:
                raise RuntimeError(
                    f"style service {self.url}{path}: failed {attempt} times, last: {error}"
                )
            logger.warning(
                "style service %s%s: %s; retry %d in %.1fs", self.url, path, error, attempt, delay
            )
            time.sleep(delay)

    def _predict_all(self, texts: list[str]) -> list[list[float]]:
        rows = []
        for start in range(0, len(texts), self.max_batch):
            items = [{"input": text} for text in texts[start : start + self.max_batch]]
            for prediction in self._request("/predict_batch", {"items": items})["predictions"]:
                rows.append([prediction["probabilities"][name] for name in self.labels.names])
        return rows

    def probabilities(self, texts: list[str]) -> list[list[float]]:
        return self.batcher(texts)


class LocalScorer:
    """Probabilities from a model directory loaded in this process."""

    def __init__(self, model_path: str, batch_size: int):
        from plugins.style.classifier import StyleClassifier

        classifier = StyleClassifier(model_path, batch_size=batch_size)
        self.labels = classifier.labels
        self.batcher = MicroBatcher(
            classifier.predict_proba, max_items=batch_size, name="style-scorer-model"
        )

    def probabilities(self, texts: list[str]) -> list[list[float]]:
        return self.batcher(texts)


def get_scorer(
    service_url: str | None = None,
    model_path: str | None = None,
    timeout_s: float = 60.0,
    batch_size: int = 32,
):
    """The process-wide scorer for a service URL or a model directory (exactly one), made on first
    use."""
    if bool(service_url) == bool(model_path):
        raise ValueError("a style scorer needs exactly one of service_url or model_path")
    key = (
        ("service", service_url.rstrip("/"))
        if service_url
        else ("model", str(Path(model_path).resolve()), batch_size)
    )
    with _scorers_lock:
        if key not in _scorers:
            _scorers[key] = (
                ServiceScorer(service_url, timeout_s)
                if service_url
                else LocalScorer(model_path, batch_size)
            )
        return _scorers[key]
