"""The split manifest (split.json) as its readers see it: parts, reader, membership.
Written by tools.sr.split; read by export, export_rl and eval.
"""

import argparse
import collections
import json
import logging
import random
import sys
from pathlib import Path

from plugins.speaker_rec.labelfile import SAMPLE_TYPES
from plugins.speaker_rec.prompts import CONTEXT_WINDOW
from tools.sr.selection import parse_named_numbers
from plugins.speaker_rec.series import SeriesError
from tools.common.fileio import atomic_write_json
from tools.common.series_args import add_series_args, load_series_and_labels

log = logging.getLogger("split")


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
        raise ValueError(f"{path}: malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a split manifest (format is not {FORMAT!r})")
    if set(manifest.get("parts", {})) != set(PARTS):
        raise ValueError(f"{path}: parts must be {', '.join(PARTS)}")
    return manifest


def part_contains(manifest: dict, part: str, line: int) -> bool:
    """Whether global line index `line` is kept in `part` of a manifest."""
    return any(first <= line <= last for first, last in manifest["parts"][part]["blocks"])
