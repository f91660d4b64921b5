"""Keyword filter for sexually explicit text, loaded from a plain keyword file.

Used by `python -m tools.roleplay.dialogue` on every line it extracts (script and prose alike); the
default
list is data/nsfw_keywords.txt. A keyword filter is crude and says so: it counts what it drops,
and the list is a file the user can read and extend.
"""

import re
from pathlib import Path

from tools.common.text_input import NotTextError, read_text

DEFAULT_KEYWORDS = Path("data/nsfw_keywords.txt")
LATIN = re.compile(r"^[A-Za-z][A-Za-z' -]*$")


class KeywordFilter:
    """Matches text against a keyword list: CJK (and other non-Latin) keywords anywhere,
    Latin keywords as whole words regardless of case."""

    def __init__(self, keywords: list[str], source: str = "<list>"):
        if not keywords:
            raise ValueError(f"{source}: no keywords")
        self.source = source
        self.keywords = tuple(keywords)
        parts = [rf"\b{re.escape(k)}\b" if LATIN.match(k) else re.escape(k) for k in keywords]
        self._pattern = re.compile("|".join(sorted(parts, key=len, reverse=True)), re.IGNORECASE)

    @classmethod
    def from_file(cls, path: Path | str) -> "KeywordFilter":
        """Read one keyword per line; blank lines and lines starting with '#' are skipped.
        Raises ValueError naming the file when it is unreadable or holds no keyword."""
        path = Path(path)
        try:
            lines = read_text(path).splitlines()
        except NotTextError as e:
            raise ValueError(f"{path}: keyword list: {str(e).removeprefix(f'{path}: ')}") from None
        keywords = [
            line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
        ]
        return cls(keywords, str(path))

    def match(self, text: str) -> str | None:
        """The first keyword found in `text`, or None."""
        m = self._pattern.search(text)
        return m.group(0) if m else None
