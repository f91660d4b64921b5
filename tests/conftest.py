"""Fixtures shared by all tests: the repository root and the tiny default model.

Tests never reach a model hub: the offline switches are set at import, before any test module
imports transformers, datasets or LLaMA-Factory (they read them once, at their own import).
"""

import os
from pathlib import Path

import pytest

for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_switch] = "1"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, which every tool and recipe treats as the working directory."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model(repo_root: Path) -> Path:
    """Path of the tiny random Qwen3 under `.cache/models/`, built on first use and reused after."""
    from tools.tiny_model import build_tiny_model

    return build_tiny_model(repo_root / ".cache" / "models" / "tiny-qwen3")
