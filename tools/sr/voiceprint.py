"""Voiceprint similarity for prepare: exact cosine neighbour lists, built in row blocks.

Every unit voiceprint is scaled to norm `NORM` and rounded to integers. Then every product of
two components and every partial sum of a dot product is an integer below 2**24, which float32
holds exactly: BLAS returns the same bits whatever its blocking or number of threads, so
prepare's output does not depend on the machine. (The rounding moves a cosine by about 1e-4.)
The dense N x N matrix is never built: rows go through in blocks and only the k nearest
neighbours of each line are kept, so memory grows linearly with the number of lines.
"""

import numpy as np
from tqdm import tqdm

# sqrt(2**24) = 4096 minus the rounding's worst-case growth of the norm (0.5 * sqrt(dim)).
NORM = 4000.0
SCALE = NORM * NORM
BLOCK_ROWS = 512


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


def cosine_pairs(units: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows a[i] and b[i] (integer units), as float32."""
    return ((units[a] * units[b]).sum(axis=1, dtype=np.float64) / SCALE).astype(np.float32)


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
    targets = units[cols].T.copy()
    rows_todo = np.flatnonzero(usable)
    for start in tqdm(
        range(0, len(rows_todo), BLOCK_ROWS),
        desc="voiceprint neighbours",
        unit="block",
        disable=not progress,
    ):
        rows = rows_todo[start : start + BLOCK_ROWS]
        block = units[rows] @ targets
        # Rows are usable lines, so each finds itself among the columns.
        block[np.arange(len(rows)), np.searchsorted(cols, rows)] = -np.inf
        found, values = _top_per_row(block, width)
        index[rows, :width] = cols[found]
        sims[rows, :width] = values / np.float32(SCALE)
    return index, sims


def _top_per_row(block: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of the `width` largest entries of each row, best first, ties broken
    by the lower column. Partitioning values and then picking the entries at or above each
    row's width-th largest is several times cheaper than partitioning indices."""
    kth = np.partition(block, -width, axis=1)[:, -width]
    r, c = np.nonzero(block >= kth[:, None])  # at least `width` per row, more on ties
    values = block[r, c]
    order = np.lexsort((c, -values, r))
    r, c, values = r[order], c[order], values[order]
    counts = np.bincount(r, minlength=len(block))
    rank = np.arange(len(r)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < width
    return c[keep].reshape(len(block), width), values[keep].reshape(len(block), width)


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
