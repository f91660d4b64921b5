"""The benchmark's synthetic series: the requested size, loadable, seeded, and new voices in
copies."""

import numpy as np
import pytest

from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.dev.synthetic_series import build_synthetic

DEMO_DIR = REPO_ROOT / "data" / "demo"


def test_synthetic_series_loads_with_the_requested_lines(tmp_path):
    source = load_series("chun_jiang", DEMO_DIR)
    build_synthetic(source, tmp_path / "a", "big", 500, seed=3)
    build_synthetic(source, tmp_path / "b", "big", 500, seed=3)
    big = load_series("big", tmp_path / "a")
    assert len(big) == 500 and big.faces is not None and big.relations is not None
    n = len(source)
    assert [line.text for line in big.lines[:n]] == [line.text for line in source.lines]
    assert [line.speaker for line in big.lines[n : 2 * n]] == [
        line.speaker for line in source.lines
    ]
    assert np.array_equal(big.embeddings[:n], source.embeddings, equal_nan=True)
    assert not np.allclose(
        big.embeddings[n : 2 * n][source.embedding_ok], source.embeddings[source.embedding_ok]
    )
    assert np.array_equal(
        big.embeddings, load_series("big", tmp_path / "b").embeddings, equal_nan=True
    )
    assert len(big.seeds()) > len(source.seeds())


def test_cli_builds_a_loadable_series_and_refuses_to_overwrite(tmp_path, capsys):
    from tools.dev.synthetic_series import main

    argv = [
        "--series",
        "chun_jiang",
        "--data-dir",
        str(REPO_ROOT / "data" / "demo"),
        "--lines",
        "450",
        "--out-dir",
        str(tmp_path),
        "--name",
        "syn",
    ]
    assert main(argv) == 0
    assert len(load_series("syn", tmp_path)) == 450
    with pytest.raises(SystemExit):
        main(argv)
    assert "exists" in capsys.readouterr().err
