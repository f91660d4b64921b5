"""Micro-batching: concurrent callers that each bring a few items share one batched call.

The HTTP service uses it so simultaneous requests become one forward pass (and only its worker
thread ever touches the model); `rewards/style.py` uses it because verl scores one response per
call, from many threads at once, and the classifier is far cheaper per item in batches.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future


class MicroBatcher:
    """Calls `batch_fn(items) -> results` (same length, same order) on a worker thread.

    A batch takes the first waiting caller, then whoever else arrives within `max_wait_s`, until
    it holds `max_items` items or more; one caller's items always stay in one batch, so `batch_fn`
    must accept any length. Exceptions of `batch_fn` reach every caller of that batch."""

    def __init__(
        self,
        batch_fn: Callable[[list], list],
        max_items: int = 32,
        max_wait_s: float = 0.005,
        name: str = "micro-batcher",
    ):
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._batch_fn = batch_fn
        self._max_items = max_items
        self._max_wait_s = max_wait_s
        self._jobs: queue.SimpleQueue[tuple[list, Future]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def __call__(self, items: list) -> list:
        """Results for `items`, computed in a batch with whatever other callers sent meanwhile."""
        if not items:
            return []
        future: Future = Future()
        self._jobs.put((list(items), future))
        return future.result()

    def _collect(self) -> list[tuple[list, Future]]:
        jobs = [self._jobs.get()]
        count = len(jobs[0][0])
        deadline = time.monotonic() + self._max_wait_s
        while count < self._max_items:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._jobs.get(timeout=remaining)
            except queue.Empty:
                break
            jobs.append(job)
            count += len(job[0])
        return jobs

    def _serve(self) -> None:
        while True:
            jobs = self._collect()
            items = [item for job_items, _ in jobs for item in job_items]
            try:
                results = self._batch_fn(items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch function returned {len(results)} results for {len(items)} items"
                    )
            except BaseException as e:  # noqa: BLE001 - every caller must hear of it, or it waits forever
                for _, future in jobs:
                    future.set_exception(e)
                continue
            start = 0
            for job_items, future in jobs:
                future.set_result(results[start : start + len(job_items)])
                start += len(job_items)
