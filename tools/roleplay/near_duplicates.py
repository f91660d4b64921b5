"""Exact and near-duplicate detection for short texts (dialogue samples, prompts).

Used by `python -m tools.roleplay.dialogue` to drop samples that repeat one already kept or one
already
in the file it merges into, and by tools/roleplay/leak_check.py to find regression prompts in
training data. Texts are normalised (NFKC, lower case, punctuation and spaces
removed) and compared by the Jaccard similarity of their character n-grams. MinHash with
banded locality-sensitive hashing only proposes candidates; every candidate is checked with the
exact Jaccard similarity, so a reported near duplicate really is at or above the threshold.
"""

import hashlib
import unicodedata

import numpy as np

# Banding for the candidate search: 32 bands of 4 rows make a pair at Jaccard 0.5 a candidate
# with probability 1 - (1 - 0.5**4)**32 ≈ 0.87 and at 0.7 with probability > 0.9999, so
# thresholds from about 0.6 up lose next to nothing while unrelated texts rarely meet.
BANDS = 32
ROWS = 4
PRIME = (1 << 31) - 1


def normalize(text: str) -> str:
    """NFKC, lower case, and only letters and digits kept: spacing and punctuation never make
    two texts different."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def shingles(normalized: str, n: int) -> frozenset[str]:
    """Character n-grams of a normalised text; a text shorter than n is its own single shingle."""
    if len(normalized) <= n:
        return frozenset([normalized])
    return frozenset(normalized[i : i + n] for i in range(len(normalized) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class DuplicateIndex:
    """Texts seen so far; answers whether a new text duplicates one of them.

    `check` then `add` (or `add` alone for texts kept whatever they are, such as an existing
    file's records). Deterministic: the MinHash permutations come from `seed`."""

    def __init__(self, threshold: float = 0.8, ngram: int = 3, seed: int = 0):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ngram = ngram
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, PRIME, size=BANDS * ROWS, dtype=np.uint64)
        self._b = rng.integers(0, PRIME, size=BANDS * ROWS, dtype=np.uint64)
        self._exact: dict[str, int] = {}
        self._shingles: list[frozenset] = []
        self._buckets: dict[tuple, list[int]] = {}

    def _signature(self, grams: frozenset) -> np.ndarray:
        base = np.array(
            sorted(
                int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
                % PRIME
                for g in grams
            ),
            dtype=np.uint64,
        )
        return ((self._a[:, None] * base[None, :] + self._b[:, None]) % PRIME).min(axis=1)

    def _band_keys(self, signature: np.ndarray) -> list[tuple]:
        return [
            (band, signature[band * ROWS : (band + 1) * ROWS].tobytes()) for band in range(BANDS)
        ]

    def check(self, text: str) -> str | None:
        """'exact' or 'near' when `text` duplicates an indexed text, else None."""
        found = self.match(text)
        return found[0] if found else None

    def match(self, text: str) -> tuple[str, int, float] | None:
        """('exact' or 'near', index of the first indexed text it duplicates (in `add` order),
        Jaccard
        similarity) or None."""
        normalized = normalize(text)
        if normalized in self._exact:
            return "exact", self._exact[normalized], 1.0
        grams = shingles(normalized, self.ngram)
        candidates = {
            i for key in self._band_keys(self._signature(grams)) for i in self._buckets.get(key, ())
        }
        for i in sorted(candidates):
            similarity = jaccard(grams, self._shingles[i])
            if similarity >= self.threshold:
                return "near", i, similarity
        return None

    def add(self, text: str) -> None:
        """Index `text` so later texts are compared with it."""
        normalized = normalize(text)
        self._exact.setdefault(normalized, len(self._shingles))
        grams = shingles(normalized, self.ngram)
        index = len(self._shingles)
        self._shingles.append(grams)
        for key in self._band_keys(self._signature(grams)):
            self._buckets.setdefault(key, []).append(index)
