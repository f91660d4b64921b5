"""Port offset ranges (`1-8`, `1,3-4`) as serve and eval read them."""

import logging

logger = logging.getLogger(__name__)


def parse_ranges(spec: str, option: str) -> list[int]:
    """'1-3,6' -> [1, 2, 3, 6] (sorted, unique, non-negative); used for --ports and eval's --lines.
    Raises ValueError naming `option` and the bad item."""
    values: set[int] = set()
    for item in filter(None, (p.strip() for p in spec.split(","))):
        first, dash, last = item.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"{option}: {item!r} is not a number or a range a-b") from None
        if low < 0 or high < low:
            raise ValueError(f"{option}: {item!r} is not a range a-b with 0 <= a <= b")
        values.update(range(low, high + 1))
    if not values:
        raise ValueError(f"{option}: empty")
    return sorted(values)
