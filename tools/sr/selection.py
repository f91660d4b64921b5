"""Which lines are worth a trajectory: a seeded rate per sample type.

Prepare gives every line a sample type (wrong / low_score / close / confident). A line is
kept with the rate of its type; the draw is a hash of (seed, line index), so a line's fate
does not depend on which other lines are considered or in what order.
"""

import hashlib
from collections.abc import Mapping

from plugins.speaker_rec.series import Series
from plugins.speaker_rec.toolset import LineLabel

SAMPLE_TYPES = ("wrong", "low_score", "close", "confident")


def parse_named_numbers(spec: str, names: tuple[str, ...], option: str) -> dict[str, float]:
    """'a=1,b=0.5' → a number for every name in `names` (0.0 for those not given); errors name
    the command-line `option` and the bad item."""
    values = dict.fromkeys(names, 0.0)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in values:
            raise ValueError(f"{option}: unknown name {name!r}; known: {', '.join(names)}")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"{option}: value for {name} is not a number: {value!r}") from None
    return values


def parse_rates(spec: str) -> dict[str, float]:
    """'wrong=1,close=0.5' → {'wrong': 1.0, 'close': 0.5, others: 0.0}; each within [0, 1]."""
    rates = parse_named_numbers(spec, SAMPLE_TYPES, "--select")
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"--select: rate for {name} must be within [0, 1], got {rate}")
    return rates


def draw(seed: int, index: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, index)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def select_lines(
    series: Series, labels: Mapping[int, LineLabel], rates: dict[str, float], seed: int
) -> list[int]:
    """Indices of labelled, non-deleted lines kept by their type's rate, in line order."""
    return [
        i
        for i in sorted(labels)
        if not series.lines[i].deleted and draw(seed, i) < rates.get(labels[i].sample_type, 0.0)
    ]
