"""bench_prepare: one table of prepare's figures per series, beside the published ones."""

import json
import os
import subprocess
import sys

import pytest

from repo_paths import REPO_ROOT
from tools.dev import bench_prepare
from tools.sr import prepare

DEMO_DIR = REPO_ROOT / "data" / "demo"


def test_table_matches_prepare_and_puts_the_reference_beside(tmp_path):
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps(
            {
                "source": "test",
                "series": {
                    "chun_jiang": {
                        "strict": 50.0,
                        "under_1s": 40.0,
                        "known_truths": 60.0,
                        "other_truths": 30.0,
                    }
                },
            }
        )
    )
    out = tmp_path / "bench"
    # A fresh process: a child's peak RSS on Linux starts from its parent's at fork, and the test
    # process is large, so in-process the memory target would measure pytest, not prepare.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.dev.bench_prepare",
            *[
                str(DEMO_DIR),
                str(tmp_path / "absent"),
                "--out-dir",
                str(out),
                "--reference",
                str(reference),
                "--synthetic-lines",
                "500",
            ],
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    code = done.returncode
    assert code == 0, done.stderr[-2000:]
    rows = json.loads((out / "bench_prepare.json").read_text(encoding="utf-8"))["rows"]
    assert [r["series"] for r in rows] == ["chun_jiang", "synthetic_500 (from chun_jiang, seed 0)"]
    assert rows[1]["lines"] == 500 and "reference" not in rows[1]

    assert (
        prepare.main(
            [
                "--series",
                "chun_jiang",
                "--data-dir",
                str(DEMO_DIR),
                "--out",
                str(tmp_path / "l.json"),
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))["summary"]
    row = rows[0]
    assert row["strict"] == summary["propagation"]["strict"]["overall"]["accuracy"]
    assert row["published_rule"] == summary["propagation"]["published"]["overall"]["accuracy"]
    assert (
        row["published_rule_known_truths"]
        == summary["propagation_splits"]["published"]["known_truths"]["accuracy"]
    )
    assert row["median_list_with_other"] == summary["candidates"]["median_named"] + 1
    assert row["ahead_of_reference"]["published_rule"] == pytest.approx(
        row["published_rule"] - 50.0, abs=0.01
    )
    assert (
        row["peak_mib"] > 0
        and row["prepare_s"] > 0
        and row["prepare_cpu_s"] > 0
        and row["within_target"] is True
    )
    table = (out / "bench_prepare.md").read_text(encoding="utf-8")
    assert f"| {row['published_rule']:.2f} (50.00) |" in table and "synthetic_500" in table


def test_no_series_is_an_error(tmp_path, capsys):
    assert bench_prepare.main([str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 1
    assert "no series found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_committed_reference_names_its_source():
    data = json.loads(bench_prepare.DEFAULT_REFERENCE.read_text(encoding="utf-8"))
    assert "shared/data/README.md" in data["source"]
    assert data["series"]["zhan_chang_sha"] == {
        "lines": 20680,
        "strict": 85.19,
        "under_1s": 75.22,
        "known_truths": 89.89,
        "other_truths": 58.67,
    }
