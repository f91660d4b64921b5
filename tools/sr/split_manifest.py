"""The split manifest (split.json) as its readers see it: parts, reader, membership.
Written by tools.sr.split; read by export, export_rl and eval.
"""

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


FORMAT = "dramakit-split/1"
PARTS = ("sft", "rl_train", "rl_val", "eval")


def read_split(path: Path | str) -> dict:
    """A split manifest read back and checked; raises ValueError naming the file and reason."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file is missing") from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a split manifest (format is not {FORMAT!r})")
    if set(manifest.get("parts", {})) != set(PARTS):
        raise ValueError(f"{path}: parts must be {', '.join(PARTS)}")
    return manifest


def part_contains(manifest: dict, part: str, line: int) -> bool:
    """Whether global line index `line` is kept in `part` of a manifest."""
    return any(first <= line <= last for first, last in manifest["parts"][part]["blocks"])
