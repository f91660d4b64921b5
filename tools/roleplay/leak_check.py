"""Find regression-bank prompts in training data (a leak makes a regression case worthless).

Used by `python -m tools.roleplay.regress` (`--check-leak` runs it alone; `--train` with a model run
records it in the summary). A prompt is found in a training sample when, after both are
normalised, it
- equals a training user text (`exact`),
- lies inside a longer one (`contained`; prompts of at least 5 CJK characters or 12 other letters
  and digits only, so a bare greeting is not "found" everywhere), or
- is a near duplicate of one: character-trigram Jaccard similarity >= the threshold
  (`near`; default 0.8, tools/roleplay/near_duplicates.py).
Normalising: NFKC (full-width punctuation and letters become half-width), lower case, punctuation
and all white space removed (a line break inside CJK text changes nothing), and a leading address
("孙悟空，", "Hey Sherlock, ") cut off.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

from tools.roleplay.near_duplicates import DuplicateIndex, normalize

DEFAULT_THRESHOLD = 0.8
MIN_CONTAINED_CJK = 5
MIN_CONTAINED_OTHER = 12
CJK = re.compile(r"[\u3400-\u9fff]")
# A short leading name or title followed by a comma, colon or exclamation mark.
LEADING_ADDRESS = re.compile(
    r"^\s*(?:(?:hey|hi|hello|dear|oh)\s+)?(?:[^\s,:!?.;\"'“”]{1,12})(?:\s+[^\s,:!?.;\"'“”]{1,12}){0,2}\s*[,:!]\s*",
    re.IGNORECASE,
)


def strip_leading_address(text: str) -> str:
    """`text` without a leading address, unless nothing (or next to nothing) would be left."""
    folded = unicodedata.normalize("NFKC", text)
    m = LEADING_ADDRESS.match(folded)
    if m and len(normalize(folded[m.end() :])) >= 2:
        return folded[m.end() :]
    return folded


def leak_key(text: str) -> str:
    """The normalised form prompts and training texts are compared in."""
    return normalize(strip_leading_address(text))


@dataclass(frozen=True)
class Leak:
    where: str  # the training sample, 'file:line' or 'file[index]'
    kind: str  # exact, contained, near
    similarity: float


class LeakIndex:
    """Training user texts, searchable for a prompt."""

    def __init__(self, texts: list[tuple[str, str]], threshold: float = DEFAULT_THRESHOLD):
        """`texts`: (where, user text) of every training sample turn."""
        self.wheres = [where for where, _ in texts]
        keys = [leak_key(text) for _, text in texts]
        self._near = DuplicateIndex(threshold=threshold)
        for key in keys:
            self._near.add(key)
        # One string with a separator that normalised text never holds, for substring search.
        self._joined = "\x00".join(keys)
        self._starts = []
        position = 0
        for key in keys:
            self._starts.append(position)
            position += len(key) + 1

    def find(self, prompt: str) -> Leak | None:
        """Where `prompt` leaked into the training texts, or None."""
        key = leak_key(prompt)
        if not key:
            return None
        found = self._near.match(key)
        if found and found[0] == "exact":
            return Leak(self.wheres[found[1]], "exact", 1.0)
        if len(key) >= (MIN_CONTAINED_CJK if CJK.search(key) else MIN_CONTAINED_OTHER):
            at = self._joined.find(key)
            if at >= 0:
                return Leak(
                    self.wheres[bisect.bisect_right(self._starts, at) - 1], "contained", 1.0
                )
        if found:
            return Leak(self.wheres[found[1]], "near", round(found[2], 3))
        return None
