"""Accuracy tables: overall, per episode and per line-duration bucket.

Prepare reports its pseudo-labels and the voiceprint baseline with these tables; eval and
report use them for model answers, so every figure is cut the same way.
"""

import math
from collections.abc import Iterable

DURATION_BUCKETS = (
    ("<1s", 0.0, 1.0),
    ("1-2s", 1.0, 2.0),
    ("2-3s", 2.0, 3.0),
    (">=3s", 3.0, math.inf),
)


def duration_bucket(seconds: float) -> str:
    """Name of the bucket a line of this duration falls in."""
    for name, lo, hi in DURATION_BUCKETS:
        if lo <= seconds < hi:
            return name
    return DURATION_BUCKETS[0][0]


def _cell(correct: int, total: int) -> dict:
    return {
        "correct": correct,
        "total": total,
        "accuracy": round(100.0 * correct / total, 2) if total else None,
    }


def accuracy_cell(outcomes: Iterable[bool]) -> dict:
    """{correct, total, accuracy} of a plain sequence of outcomes."""
    outcomes = [bool(x) for x in outcomes]
    return _cell(sum(outcomes), len(outcomes))


def accuracy_table(outcomes: Iterable[tuple[int, float, bool]]) -> dict:
    """Table from (episode, duration seconds, correct) per judged line."""
    overall = [0, 0]
    episodes: dict[int, list[int]] = {}
    buckets = {name: [0, 0] for name, _, _ in DURATION_BUCKETS}
    for episode, seconds, correct in outcomes:
        for cell in (
            overall,
            episodes.setdefault(episode, [0, 0]),
            buckets[duration_bucket(seconds)],
        ):
            cell[0] += bool(correct)
            cell[1] += 1
    return {
        "overall": _cell(*overall),
        "by_duration": {name: _cell(*cell) for name, cell in buckets.items()},
        "by_episode": {str(e): _cell(*episodes[e]) for e in sorted(episodes)},
    }
