"""Split manifest: no shared context across parts, determinism, ratios, recorded counts."""

import pytest

from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.prompts import CONTEXT_WINDOW
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.sr import prepare, split, split_manifest

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"


def _part_by_position(series, manifest):
    kept = [line.index for line in series.lines if not line.deleted]
    return [
        (
            pos,
            next(
                (p for p in split_manifest.PARTS if split_manifest.part_contains(manifest, p, i)),
                None,
            ),
        )
        for pos, i in enumerate(kept)
    ]


@pytest.mark.parametrize("seed, block_lines", [(0, 30), (1, 30), (7, 30), (0, 10), (3, 7)])
def test_no_context_window_is_shared_across_parts(demo_series, demo_label_file, seed, block_lines):
    # Blocks shorter than the window must not let the parts on either side close in.
    series, labels = demo_series, demo_label_file
    manifest = split.build_manifest(
        series,
        labels,
        split.parse_ratios("sft=0.5,rl_train=0.2,eval=0.3"),
        seed,
        block_lines=block_lines,
    )
    assigned = [(pos, part) for pos, part in _part_by_position(series, manifest) if part]
    for (pos_a, part_a), (pos_b, part_b) in zip(assigned, assigned[1:], strict=False):
        if part_a != part_b:
            assert pos_b - pos_a > 2 * CONTEXT_WINDOW, (pos_a, part_a, pos_b, part_b)
    kept = sum(p["lines"] for p in manifest["parts"].values())
    assert kept == len(assigned)
    assert (
        kept + manifest["dropped_in_gaps"]["lines"]
        == manifest["lines_labelled"]
        == len(labels.lines)
    )
    for part in manifest["parts"].values():
        assert sum(part["sample_types"].values()) == part["lines"]


def test_cli_is_deterministic_and_records_its_settings(demo_labels, tmp_path):
    labels_path = demo_labels
    argv = [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(labels_path),
        "--seed",
        "3",
        "--block-lines",
        "40",
        "--ratios",
        "sft=0.7,eval=0.3",
    ]
    assert split.main([*argv, "--out", str(tmp_path / "a.json")]) == 0
    assert split.main([*argv, "--out", str(tmp_path / "b.json")]) == 0
    a = (tmp_path / "a.json").read_text()
    assert a == (tmp_path / "b.json").read_text()
    manifest = split_manifest.read_split(tmp_path / "a.json")
    assert manifest["seed"] == 3 and manifest["series"] == SERIES
    assert manifest["ratios"] == {"sft": 0.7, "rl_train": 0.0, "rl_val": 0.0, "eval": 0.3}
    assert manifest["parts"]["sft"]["lines"] > 0 and manifest["parts"]["eval"]["lines"] > 0
    assert manifest["parts"]["rl_train"]["lines"] == 0


def test_bad_ratios_and_labels_exit_2_and_write_nothing(demo_labels, tmp_path, capsys):
    labels_path = demo_labels
    base = ["--series", SERIES, "--data-dir", str(DATA_DIR), "--out", str(tmp_path / "s.json")]
    assert split.main([*base, "--labels", str(labels_path), "--ratios", "sft=0.5,eval=0.2"]) == 2
    assert "sum to 1" in capsys.readouterr().err
    assert split.main([*base, "--labels", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


RSJ = REPO_ROOT.parent / "shared" / "data" / "dramasr"


@pytest.mark.skipif(
    not (RSJ / "ren_shi_jian").is_dir(), reason="../shared/data/dramasr/ren_shi_jian is absent"
)
def test_whole_episodes_respect_ratios_roughly(tmp_path):
    labels_path = tmp_path / "labels.json"
    assert (
        prepare.main(
            [
                "--series",
                "ren_shi_jian",
                "--data-dir",
                str(RSJ),
                "--out",
                str(labels_path),
                "--quiet",
            ]
        )
        == 0
    )
    series = load_series("ren_shi_jian", RSJ)
    labels = read_labels(labels_path, series)
    manifest = split.build_manifest(
        series, labels, split.parse_ratios("sft=0.6,rl_train=0.25,eval=0.15"), 0
    )
    total = manifest["lines_labelled"]
    for part, ratio in (("sft", 0.6), ("rl_train", 0.25), ("eval", 0.15)):
        # whole episodes of ~900 lines: each part within one episode of its target
        assert abs(manifest["parts"][part]["lines"] - ratio * total) < 1100, (
            part,
            manifest["parts"][part]["lines"],
        )
    episodes = [e for p in manifest["parts"].values() for e in p["episodes"]]
    assert sorted(episodes) == sorted(set(episodes)) == [e.number for e in series.episodes]


def test_smaller_gap_keeps_more_lines_and_is_recorded(demo_series, demo_labels, tmp_path, caplog):
    series, labels_path = demo_series, demo_labels
    out = tmp_path / "demo.json"
    assert (
        split.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(labels_path),
                "--block-lines",
                "25",
                "--gap-lines",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "share lines" in caplog.text
    manifest = split_manifest.read_split(out)
    assert manifest["gap_lines_each_side"] == 2
    assert all(manifest["parts"][p]["lines"] > 0 for p in split_manifest.PARTS)
    assigned = [(pos, part) for pos, part in _part_by_position(series, manifest) if part]
    for (pos_a, part_a), (pos_b, part_b) in zip(assigned, assigned[1:], strict=False):
        if part_a != part_b:
            assert pos_b - pos_a > 2 * 2


def test_a_zero_gap_drops_nothing(demo_series, demo_label_file):
    series, labels = demo_series, demo_label_file
    manifest = split.build_manifest(
        series, labels, split.parse_ratios("sft=0.5,eval=0.5"), 0, block_lines=20, gap=0
    )
    assert manifest["dropped_in_gaps"]["lines"] == 0
    assert sum(p["lines"] for p in manifest["parts"].values()) == len(labels.lines)
