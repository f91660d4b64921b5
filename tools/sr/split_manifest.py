"""The split manifest (split.json) as its readers see it: parts, reader, membership.
Written by tools.sr.split; read by export, export_rl and eval.
"""

import logging
from pathlib import Path

from plugins.speaker_rec.json_document import read_json_document

logger = logging.getLogger(__name__)


FORMAT = "dramakit-split/1"
PARTS = ("sft", "rl_train", "rl_val", "eval")


def read_split(path: Path | str) -> dict:
    """A split manifest read back and checked; raises ValueError naming the file and reason."""
    path = Path(path)
    manifest = read_json_document(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a split manifest (format is not {FORMAT!r})")
    if set(manifest.get("parts", {})) != set(PARTS):
        raise ValueError(f"{path}: parts must be {', '.join(PARTS)}")
    return manifest


def part_contains(manifest: dict, part: str, line: int) -> bool:
    """Whether global line index `line` is kept in `part` of a manifest."""
    return any(first <= line <= last for first, last in manifest["parts"][part]["blocks"])
