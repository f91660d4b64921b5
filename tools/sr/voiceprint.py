"""Voiceprint similarity for prepare: exact cosine neighbour lists, built in row blocks.

Every unit voiceprint is scaled to norm `NORM` and rounded to integers. Then every product of
two components and every partial sum of a dot product is an integer below 2**24, which float32
holds exactly: BLAS returns the same bits whatever its blocking or number of threads, so
prepare's output does not depend on the machine. (The rounding moves a cosine by about 1e-4.)
The dense N x N matrix is never built: rows go through in panels, each product is computed once
(the upper triangle) and offered to both of its lines, and only entries that can still enter a
line's k nearest are kept, so memory grows linearly with the number of lines. Products are
integers, so ties are exact and broken by the lower index, as a full sort would.
"""

import numpy as np
from tqdm import tqdm

# sqrt(2**24) = 4096 minus the rounding's worst-case growth of the norm (0.5 * sqrt(dim)).
NORM = 4000.0
SCALE = NORM * NORM
BLOCK_ROWS = 512  # lines per panel, and columns per tile, of the neighbour search (<= 2**11)
# Sort keys pack (line in its panel, 2**24 - product, column) into 11 + 26 + 26 bits of an int64.
_BITS = 26
_MASK = (1 << _BITS) - 1
_OFFSET = 1 << 24


def integer_units(embeddings: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Unit rows scaled to `NORM`, rounded; float32 holding integers. Rows not `usable`
    (non-finite, deleted) become zero and are similar to nothing."""
    if embeddings.shape[1] > 4 * (4096 - NORM) ** 2:
        raise ValueError(
            f"embedding dimension {embeddings.shape[1]} is too large for exact integer products"
        )
    rows = np.where(usable[:, None], np.nan_to_num(embeddings.astype(np.float64)), 0.0)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return np.rint(rows * NORM).astype(np.float32)


def cosine_rows(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of left[i] and right[i] (integer units), as float32. The products
    are exact integers in float32 whatever the order of summation, so this equals a float64
    sum bit for bit; views (no gathered copies) are welcome."""
    return (np.einsum("ij,ij->i", left, right).astype(np.float64) / SCALE).astype(np.float32)


def nearest_neighbours(
    units: np.ndarray, usable: np.ndarray, k: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar usable lines of every line, self excluded: (indices int32 [N, k],
    cosines float32 [N, k]), best first, ties broken by the lower index. Slots beyond the
    usable lines, and every slot of an unusable line, hold index -1 and similarity -inf."""
    n = len(units)
    cols = np.flatnonzero(usable)
    index = np.full((n, k), -1, dtype=np.int32)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    width = min(k, max(len(cols) - 1, 0))
    if width == 0:
        return index, sims
    found, values = _exact_top(units[cols], width, progress)
    index[cols, :width] = cols[found]
    sims[cols, :width] = values / np.float32(SCALE)
    return index, sims


def _exact_top(rows: np.ndarray, width: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(columns int64 [m, width], products float32 [m, width]) of every row's `width` largest
    products with the other rows, best first, ties broken by the lower column.

    Each product is computed once, in row panels against the panel's own and later rows, and
    offered to both of its lines. An entry goes into a line's list only if it beats the
    line's width-th best so far: columns arrive in ascending order, so an entry equal to it
    loses the tie. A line without `width` entries yet keeps the tile's own top `width` and
    their ties. Only lists of about `width` entries per line are ever held."""
    m = len(rows)
    if m >= 1 << _BITS:
        raise ValueError(f"{m} voiceprints are too many for one neighbour search")
    panel = BLOCK_ROWS
    lists = _Lists(m, width, panel)
    found = np.empty((m, width), dtype=np.int64)
    values = np.empty((m, width), dtype=np.float32)
    # One buffer for every panel's products: a fresh block this large would be mapped, and its
    # pages faulted in, anew for every panel.
    buffer = np.empty(min(panel, m) * m, dtype=np.float32)
    for start in tqdm(
        range(0, m, panel), desc="voiceprint neighbours", unit="panel", disable=not progress
    ):
        stop = min(start + panel, m)
        block = buffer[: (stop - start) * (m - start)].reshape(stop - start, m - start)
        np.matmul(rows[start:stop], rows[start:].T, out=block)
        block[np.arange(stop - start), np.arange(stop - start)] = -np.inf  # self
        for first in range(start, m, panel):  # one panel of columns at a time
            tile = block[:, first - start : first - start + panel]
            # This panel's lines against the tile's columns.
            r, c = _above(tile, lists.floor[start:stop], width, axis=1)
            lists.offer(start, r, first + c, tile[r, c])
            if first >= stop:  # the tile's lines (a later panel) against this panel's columns
                r, c = _above(tile, lists.floor[first : first + tile.shape[1]], width, axis=0)
                lists.offer(first, c, start + r, tile[r, c])
        found[start:stop], values[start:stop] = lists.final(start)
    return found, values


def _above(tile: np.ndarray, floor: np.ndarray, width: int, axis: int):
    """(row, column) of the entries of `tile` that may enter the lists of the lines along
    `axis` (1: rows are the lines, 0: columns are), given each line's width-th best so far."""
    threshold = floor.copy()
    fresh = np.flatnonzero(np.isneginf(threshold))
    if len(fresh) and tile.shape[axis] >= width:
        # One line per row, contiguous: partitioning along strided columns is several times slower.
        part = tile[fresh] if axis == 1 else np.ascontiguousarray(tile[:, fresh].T)
        kth = np.partition(part, -width, axis=1)[:, -width]
        # Every entry below the tile's own width-th best is beaten by `width` of its entries;
        # one equal to it may still win its tie: keep it (the values are integers).
        threshold[fresh] = np.nextafter(kth, np.float32(-np.inf))
    mask = tile > (threshold[:, None] if axis == 1 else threshold[None, :])
    flat = np.flatnonzero(mask)
    return np.divmod(flat, tile.shape[1])


class _Lists:
    """Every line's best `width` entries so far as sort keys, per panel of lines, with the
    entries offered since the last merge; `floor` is each line's width-th best product so
    far (-inf while it has fewer)."""

    def __init__(self, m: int, width: int, panel: int):
        self.m, self.width, self.panel = m, width, panel
        n_panels = -(-m // panel)
        self.best = [np.empty(0, dtype=np.int64) for _ in range(n_panels)]
        self.pending: list[list[np.ndarray]] = [[] for _ in range(n_panels)]
        self.pending_size = np.zeros(n_panels, dtype=np.int64)
        self.floor = np.full(m, -np.inf, dtype=np.float32)
        self.cap = 2 * panel * width

    def offer(self, start: int, local: np.ndarray, cols: np.ndarray, products: np.ndarray):
        """Entries (line start + local, column, product) for lines of the panel at `start`."""
        p = start // self.panel
        self.pending[p].append(_keys(local, cols, products))
        self.pending_size[p] += len(local)
        if self.pending_size[p] > self.cap:
            self._merge(p)

    def _merge(self, p: int) -> None:
        keys = np.sort(np.concatenate([self.best[p], *self.pending[p]]))
        self.pending[p], self.pending_size[p] = [], 0
        local = keys >> (2 * _BITS)
        counts = np.bincount(local, minlength=min(self.panel, self.m - p * self.panel))
        rank = np.arange(len(keys)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.best[p] = keys[rank < self.width]
        last = keys[rank == self.width - 1]
        self.floor[p * self.panel + (last >> (2 * _BITS))] = _products(last)

    def final(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, products) of the panel's lines, every product now offered."""
        p = start // self.panel
        self._merge(p)
        keys = self.best[p].reshape(-1, self.width)
        self.best[p] = np.empty(0, dtype=np.int64)
        return keys & _MASK, _products(keys)


def _keys(local: np.ndarray, cols: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Sort keys that order entries by line, then product descending, then column."""
    return (
        (local.astype(np.int64) << (2 * _BITS))
        | ((_OFFSET - products.astype(np.int64)) << _BITS)
        | cols.astype(np.int64)
    )


def _products(keys: np.ndarray) -> np.ndarray:
    return (_OFFSET - ((keys >> _BITS) & _MASK)).astype(np.float32)


def nearest_centroid(
    units: np.ndarray, usable: np.ndarray, members: dict[str, list[int]]
) -> tuple[list[str], np.ndarray]:
    """Voiceprint-only baseline: each usable line goes to the character whose centroid (mean
    unit voiceprint of its `members` lines) is most similar. Returns (names in centroid order,
    per-line index into names, -1 for unusable lines)."""
    names = sorted(members)
    centroids = np.stack([units[members[name]].astype(np.float64).mean(axis=0) for name in names])
    centroid_units = integer_units(centroids, np.ones(len(names), dtype=bool))
    choice = np.full(len(units), -1, dtype=np.int64)
    for start in range(0, len(units), BLOCK_ROWS * 8):
        block = units[start : start + BLOCK_ROWS * 8] @ centroid_units.T
        choice[start : start + len(block)] = block.argmax(axis=1)
    choice[~usable] = -1
    return names, choice
