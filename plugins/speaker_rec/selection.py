"""Which lines are worth a trajectory: a seeded rate per sample type.

Prepare gives every line a sample type (wrong / low_score / close / confident). A line is
kept with the rate of its type; the draw is a hash of (seed, line index), so a line's fate
does not depend on which other lines are considered or in what order.
"""

import hashlib
from typing import Mapping

from plugins.speaker_rec.series import Series
from plugins.speaker_rec.toolset import LineLabel

SAMPLE_TYPES = ("wrong", "low_score", "close", "confident")


def parse_rates(spec: str) -> dict[str, float]:
    """'wrong=1,close=0.5' → {'wrong': 1.0, 'close': 0.5, others: 0.0}."""
    rates = dict.fromkeys(SAMPLE_TYPES, 0.0)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in rates:
            raise ValueError(f"--select: unknown sample type {name!r}; known: {', '.join(SAMPLE_TYPES)}")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"--select: rate for {name} is not a number: {value!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"--select: rate for {name} must be within [0, 1], got {rate}")
        rates[name] = rate
    return rates


def draw(seed: int, index: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, index)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def select_lines(series: Series, labels: Mapping[int, LineLabel], rates: dict[str, float], seed: int) -> list[int]:
    """Indices of labelled, non-deleted lines kept by their type's rate, in line order."""
    return [
        i for i in sorted(labels)
        if not series.lines[i].deleted and draw(seed, i) < rates.get(labels[i].sample_type, 0.0)
    ]
