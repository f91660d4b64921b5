"""Fixtures shared by all tests: the repository root, the tiny default model, the demo series and
its labels. One fixture per meaning: `demo_labels` is the path of labels.json, `demo_labels_json`
its parsed JSON, `demo_label_file` the LabelFile the tools read, `demo_series` the loaded series.

Tests never reach a model hub: the offline switches are set at import, before any test module
imports transformers, datasets or LLaMA-Factory (they read them once, at their own import).
"""

import os
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT

for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_switch] = "1"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, which every tool and recipe treats as the working directory."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model(repo_root: Path) -> Path:
    """Path of the tiny random Qwen3 under `.cache/models/`, built on first use and reused after."""
    from tools.dev.tiny_model import build_tiny_model

    return build_tiny_model(repo_root / ".cache" / "models" / "tiny-qwen3")


@pytest.fixture(scope="session")
def api_server(tiny_model: Path, tmp_path_factory) -> str:
    """One real `llamafactory-cli api` with the tiny model on 127.0.0.1 for the whole session;
    yields its OpenAI-compatible base URL (…/v1)."""
    from llamafactory_run import api_server as start_api_server

    with start_api_server(tiny_model, tmp_path_factory.mktemp("api") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def demo_labels(repo_root: Path, tmp_path_factory) -> Path:
    """labels.json of the demo series (chun_jiang under data/demo), written once per session
    by the real `tools.sr.prepare` with its default seed."""
    from tools.sr import prepare

    out = tmp_path_factory.mktemp("demo-labels") / "labels.json"
    assert (
        prepare.main(
            [
                "--series",
                "chun_jiang",
                "--data-dir",
                str(repo_root / "data" / "demo"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def demo_labels_json(demo_labels: Path) -> dict:
    """The demo series' labels.json (`demo_labels`), parsed as plain JSON."""
    import json

    return json.loads(demo_labels.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def demo_series(repo_root: Path):
    """The demo series (chun_jiang under data/demo), loaded and validated."""
    from plugins.speaker_rec.series import load_series

    return load_series("chun_jiang", repo_root / "data" / "demo")


@pytest.fixture(scope="session")
def demo_label_file(demo_labels: Path, demo_series):
    """The demo series' labels.json (`demo_labels`) read as the tools read it (a LabelFile)."""
    from plugins.speaker_rec.labelfile import read_labels

    return read_labels(demo_labels, demo_series)
