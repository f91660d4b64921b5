"""Prepare end to end: the CLI, its output, bad input, determinism, and the accuracy floors on
the real dramas (read in place from ../shared/data, skipped when absent)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugins.speaker_rec.labelfile import SAMPLE_TYPES, read_labels
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.sr import prepare

DEMO_DIR = REPO_ROOT / "data" / "demo"
DEMO = "chun_jiang"
SHARED_DRAMAS = REPO_ROOT.parent / "shared" / "data" / "dramasr"


def run_cli(*args, threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    return subprocess.run(
        [sys.executable, "-m", "tools.sr.prepare", "--quiet", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )


def prepared(data_dir: Path, series: str, out: Path, *extra: str) -> dict:
    assert (
        prepare.main(
            ["--series", series, "--data-dir", str(data_dir), "--out", str(out), "--quiet", *extra]
        )
        == 0
    )
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """A writable copy of the demo series; returns the data dir holding it."""
    shutil.copytree(DEMO_DIR / DEMO, tmp_path / DEMO)
    return tmp_path


def records_by_index(labels: dict) -> dict[int, dict]:
    return {r["index"]: r for r in labels["lines"]}


# --- the command line ------------------------------------------------------------------


def test_help_explains_the_seed_choices():
    done = run_cli("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for phrase in ("--seeds FILE|select", "ground truth", "--seed ", "--out", "atomically"):
        assert phrase in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--series", "nope", "--data-dir", str(DEMO_DIR)], "unknown series 'nope'"),
        (["--series", "../chun_jiang", "--data-dir", str(DEMO_DIR)], "not an identifier"),
        (
            ["--series", DEMO, "--data-dir", str(DEMO_DIR), "--seeds", "init_seeds_5pct.json"],
            "no such seed file",
        ),
        (
            [
                "--series",
                DEMO,
                "--data-dir",
                str(DEMO_DIR),
                "--seeds",
                "select",
                "--seed-fraction",
                "0",
            ],
            "seed fraction must be within",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "runs" / "labels.json"
    done = run_cli(*args, "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_malformed_series_names_the_file_and_keeps_the_old_output(demo_copy, tmp_path):
    out = tmp_path / "labels.json"
    out.write_text("previous run", encoding="utf-8")
    path = demo_copy / DEMO / "sv_embedding" / "0002.npy"
    np.save(path, np.load(path)[:-1])
    done = run_cli("--series", DEMO, "--data-dir", str(demo_copy), "--out", str(out))
    assert done.returncode == 2
    assert "0002.npy" in done.stderr and "embedding rows but" in done.stderr
    assert out.read_text(encoding="utf-8") == "previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEMO, "labels.json"]


def test_unwritable_output_is_an_error_without_leftovers(tmp_path):
    out = tmp_path / "labels.json"
    out.mkdir()  # a directory where the file should go: the final rename fails
    done = run_cli("--series", DEMO, "--data-dir", str(DEMO_DIR), "--out", str(out))
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["labels.json"] and not any(out.iterdir())


def test_same_inputs_give_identical_bytes_whatever_the_blas_threads(tmp_path):
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"labels_{threads}.json"
        done = run_cli(
            "--series", DEMO, "--data-dir", str(DEMO_DIR), "--out", str(out), threads=threads
        )
        assert done.returncode == 0, done.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_selected_seeds_follow_the_seed(tmp_path):
    def seeds(seed: int) -> dict[int, str]:
        labels = prepared(
            DEMO_DIR, DEMO, tmp_path / f"s{seed}.json", "--seeds", "select", "--seed", str(seed)
        )
        assert labels["seeds"]["source"] == "select" and labels["seed"] == seed
        return {r["index"]: r["label"] for r in labels["lines"] if r["source"] == "seed"}

    first, again, other = seeds(1), seeds(1), seeds(2)
    assert first == again and first != other
    series = load_series(DEMO, DEMO_DIR)
    assert all(series.lines[i].speaker == name for i, name in first.items()), (
        "select draws ground truth"
    )
    assert set(first.values()) == set(series.known_characters) & {
        line.speaker for line in series.lines
    }


# --- the output ------------------------------------------------------------------------


def test_every_line_has_a_consistent_record(demo_labels, demo_labels_json):
    path, labels = demo_labels, demo_labels_json
    series = load_series(DEMO, DEMO_DIR)
    seeds = series.seeds()
    other = labels["other"]
    assert [r["index"] for r in labels["lines"]] == [
        line.index for line in series.lines if not line.deleted
    ]
    assert labels["characters"] == sorted(
        set(seeds.values()), key=lambda n: (-list(seeds.values()).count(n), n)
    )
    for r in labels["lines"]:
        names = [name for name, _ in r["candidates"]]
        scores = [score for _, score in r["candidates"][:-1]]
        assert names[-1] == other and other not in names[:-1]
        assert 1 <= len(names) <= labels["parameters"]["max_candidates"] + 1
        assert r["label"] == other or r["label"] in names
        if None not in scores:
            assert scores == sorted(scores, reverse=True)
            assert r["margin"] == pytest.approx(
                scores[0] - (scores[1] if len(scores) > 1 else 0), abs=2e-4
            )
        assert r["sample"] in SAMPLE_TYPES
        if r["index"] in seeds:
            assert (r["source"], r["label"]) == ("seed", seeds[r["index"]])
        if r["correct"] is not None:
            assert (r["sample"] == "wrong") == (not r["correct"]["strict"])
    loaded = read_labels(path, series)
    assert set(loaded.lines) == {r["index"] for r in labels["lines"]}
    assert loaded.characters == labels["characters"] and loaded.other == other


def test_summary_reports_both_rules_buckets_and_the_baseline(demo_labels_json):
    labels = demo_labels_json
    summary = labels["summary"]
    strict = summary["propagation"]["strict"]
    assert set(strict["by_duration"]) == {"<1s", "1-2s", "2-3s", ">=3s"}
    assert sum(cell["total"] for cell in strict["by_duration"].values()) == summary["judged_lines"]
    assert sum(cell["total"] for cell in strict["by_episode"].values()) == summary["judged_lines"]
    assert (
        summary["propagation"]["candidate_aware"]["overall"]["correct"]
        >= strict["overall"]["correct"]
    )
    assert summary["nearest_centroid"]["strict"]["overall"]["total"] == summary["judged_lines"]
    judged = [r for r in labels["lines"] if r["correct"] is not None and r["source"] != "seed"]
    assert strict["overall"]["correct"] == sum(r["correct"]["strict"] for r in judged)
    assert labels["counts"]["seed_lines"] == sum(r["source"] == "seed" for r in labels["lines"])
    assert 1 <= summary["candidates"]["median_named"] <= labels["parameters"]["max_candidates"]


def test_summary_gives_the_published_rule_and_its_splits(demo_labels_json):
    labels = demo_labels_json
    summary = labels["summary"]
    known = set(labels["published_known"])
    judged = [r for r in labels["lines"] if r["correct"] is not None and r["source"] != "seed"]
    expected = sum(
        r["label"] == r["truth"] or (r["label"] not in known and r["truth"] not in known)
        for r in judged
    )
    assert summary["propagation"]["published"]["overall"]["correct"] == expected
    for rule, splits in summary["propagation_splits"].items():
        overall = summary["propagation"][rule]["overall"]
        for a, b in (("known_truths", "other_truths"), ("overlapped", "clean")):
            assert splits[a]["total"] + splits[b]["total"] == overall["total"], (rule, a)
            assert splits[a]["correct"] + splits[b]["correct"] == overall["correct"], (rule, a)
    splits = summary["propagation_splits"]["published"]
    assert splits["known_truths"]["total"] == sum(r["truth"] in known for r in judged) > 0
    assert splits["overlapped"]["total"] == sum(bool(r["overlap"]) for r in judged)


# Checked by hand against the demo script: who speaks, how long, and who is on screen.
HAND_CHECKED = {
    13: ("林朗", "seed"),  # 一个人硬扛 谁劝都不听 — a seed line keeps its seed label
    23: ("何桂芳", "seed"),  # 我开的 老林你就放心吧
    14: ("林晚", "propagated"),  # 你不是说这个月回家住吗 (2.5 s, at the hospital with 林朗)
    24: ("何桂芳", "propagated"),  # 阿晚 可算把你盼回来了 (2.8 s)
    61: ("赵启明", "propagated"),  # 听说她在上海做建筑设计 (2.8 s)
    74: ("赵启明", "propagated"),  # 这是春江镇的机会 也是你的机会 (3.2 s)
    161: ("其他", "no_voiceprint"),  # 姐 对不起: its voiceprint row is NaN
}


def test_hand_checked_demo_lines(demo_labels_json):
    labels = demo_labels_json
    records = records_by_index(labels)
    for index, (label, source) in HAND_CHECKED.items():
        assert (records[index]["label"], records[index]["source"]) == (label, source), index
    assert 75 not in records, "the deleted line is left out"
    assert all(score is None for _, score in records[161]["candidates"])
    assert records[161]["sample"] == "wrong"  # 林朗 said it


# --- bad data: a warning in the output, never a crash ----------------------------------


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _nan_rows(root: Path) -> None:
    path = root / "sv_embedding" / "0001.npy"
    rows = np.load(path)
    rows[[5, 13, 40]] = np.nan  # 13 is a seed line
    np.save(path, rows)


def _hide_face(root: Path, name: str = "许曼") -> None:
    for path in sorted((root / "face_data").glob("000*.json")):

        def change(data):
            for obj in data["object_list"].values():
                if obj["id_list"]["0"]["name"] == name:
                    obj["id_list"]["0"]["name"] = "0009_pro0_id9"

        _rewrite(path, change)


def _blind_episode(root: Path) -> None:
    _rewrite(root / "face_data" / "0002.json", lambda d: d.update(objects=0, object_list={}))


def _empty_relations(root: Path) -> None:
    _rewrite(root / "relation.json", lambda d: d.update(character_list=[], relationship_list=[]))


BAD_DATA = {
    "non-finite voiceprints": (_nan_rows, "lines have no finite voiceprint"),
    "seeded character never on screen": (
        _hide_face,
        "never detected on screen, present everywhere on "
        + "their voice alone (unseen_penalty below a seen character): 许曼",
    ),
    "episode without faces": (
        _blind_episode,
        "episodes without face detections, where every character " + "counts as present: 2",
    ),
    "empty relations": (_empty_relations, "relation.json lists no characters or no relations"),
    "no face_data": (lambda root: shutil.rmtree(root / "face_data"), "no face detections"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_a_warning_not_a_crash(demo_copy, tmp_path, case):
    corrupt, warning = BAD_DATA[case]
    corrupt(demo_copy / DEMO)
    labels = prepared(demo_copy, DEMO, tmp_path / "labels.json")
    assert any(warning in w for w in labels["warnings"]), labels["warnings"]
    series = load_series(DEMO, demo_copy)
    assert len(read_labels(tmp_path / "labels.json", series).lines) == sum(
        not line.deleted for line in series.lines
    )
    if case == "non-finite voiceprints":
        records = records_by_index(labels)
        assert "seed lines have no finite voiceprint" in " ".join(labels["warnings"])
        assert records[13]["label"] == "林朗" and records[13]["source"] == "seed"
        assert records[5]["label"] == labels["other"] and records[5]["source"] == "no_voiceprint"


# --- the real dramas -------------------------------------------------------------------


def shared(name: str) -> Path:
    if not (SHARED_DRAMAS / name).is_dir():
        pytest.skip(
            f"../shared/data/dramasr/{name} is absent (real data is read in place, never committed)"
        )
    return SHARED_DRAMAS


@pytest.mark.slow
def test_zhan_chang_sha_beats_the_published_propagation(tmp_path):
    labels = prepared(shared("zhan_chang_sha"), "zhan_chang_sha", tmp_path / "labels.json")
    summary = labels["summary"]
    strict = summary["propagation"]["strict"]
    # Published: 85.19% overall and 75.2% under 1 s on this setting (1% seeds, strict rule).
    assert strict["overall"]["accuracy"] >= 85.5
    assert strict["by_duration"]["<1s"]["accuracy"] > 75.2
    assert summary["truth_in_candidates_or_open_set"] >= 98.5
    assert summary["candidates"]["median_named"] + 1 <= 4, "the list with the other label"
    assert 64.0 <= summary["nearest_centroid"]["strict"]["overall"]["accuracy"] <= 69.0
    assert summary["judged_lines"] == 20680 - 17 - labels["counts"]["seed_lines"]


def test_ren_shi_jian_is_deterministic_and_accurate(tmp_path):
    data_dir = shared("ren_shi_jian")
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"labels_{threads}.json"
        done = run_cli(
            "--series",
            "ren_shi_jian",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            threads=threads,
        )
        assert done.returncode == 0, done.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    summary = json.loads(outs[0])["summary"]
    assert summary["propagation"]["strict"]["overall"]["accuracy"] >= 85.5
    assert summary["propagation"]["strict"]["by_duration"]["<1s"]["accuracy"] > 75.2
    assert summary["truth_in_candidates_or_open_set"] >= 98.5


PUBLISHED = json.loads(
    (REPO_ROOT / "data" / "reference" / "dramasr_published.json").read_text(encoding="utf-8")
)["series"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_shared_drama_beats_the_published_propagation_by_its_own_rule(tmp_path, name):
    labels = prepared(shared(name), name, tmp_path / "labels.json")
    summary = labels["summary"]
    published = summary["propagation"]["published"]
    assert published["overall"]["accuracy"] >= PUBLISHED[name]["strict"] + 1.5
    assert published["by_duration"]["<1s"]["accuracy"] > PUBLISHED[name]["under_1s"]
    assert (
        summary["propagation_splits"]["published"]["other_truths"]["accuracy"]
        > PUBLISHED[name]["other_truths"]
    )
    # Ahead on lines whose truth is a known character too, not only on open-set lines.
    assert (
        summary["propagation_splits"]["published"]["known_truths"]["accuracy"]
        >= PUBLISHED[name]["known_truths"]
    )
    assert summary["truth_in_candidates_or_open_set"] >= 98.5
    assert summary["candidates"]["median_named"] + 1 <= 4, "the list with the other label"


def test_a_role_that_is_a_seeded_voice_off_screen_merges_back():
    """A new role whose lines' neighbours are all one seeded character's lines, that character
    on screen at one of them only (off screen, neither face nor labelled line near, at the
    others), is their voice split off: it merges."""
    from tools.sr.propagation import Inputs, Propagation

    n, k = 7, 3
    neighbours = np.full((n, k), -1, dtype=np.int64)
    similarity = np.full((n, k), -np.inf, dtype=np.float32)
    neighbours[3:] = [0, 1, 2]
    similarity[3:] = 0.9
    starts = np.array([0.0, 1.0, 2.0, 1000.0, 1001.0, 1002.0, 1003.0])
    inputs = Inputs(
        units=np.zeros((n, 4), dtype=np.float32),
        neighbours=neighbours,
        similarity=similarity,
        usable=np.ones(n, dtype=bool),
        starts=starts,
        ends=starts + 0.8,
        durations=np.full(n, 2.0),
        presence=np.zeros((n, 1), dtype=bool),
        face_near=np.zeros((n, 1), dtype=bool),
        unnamed_face_near=np.zeros(n, dtype=bool),
        known=["A"],
        seeds={0: 0, 1: 0, 2: 0},
        new_role_name=lambda i: f"role-{i}",
    )
    inputs.presence[3, 0] = True
    run = Propagation(inputs)
    run.labels[3:] = 1  # one new role, found while A was off screen
    run.n_classes = 2
    assert run._merges(0.5)
    assert run.labels.tolist() == [0] * n
    # A voice that is not A's stays a role.
    run.labels[3:] = 1
    run.x.similarity[3:] = 0.3
    assert not run._merges(0.5)
    assert run.labels[3:].tolist() == [1] * 4


def starved_series(scenes_of_the_voice: int) -> tuple:
    """A constructed series: A and B speak with their seeds' voices; S's two seed lines are a
    shout unlike S's usual voice, and S's 12 other lines are that usual voice, S's face alone
    at each, spread over `scenes_of_the_voice` scenes 100 s apart (one scene: all within 12 s).
    Returns (inputs, the voice of each line)."""
    from tools.sr import voiceprint
    from tools.sr.propagation import Inputs

    rng = np.random.default_rng(0)
    voice = {name: rng.normal(size=16) for name in ("A", "B", "shout", "S")}
    lines = []  # (voice, speaker code, time)
    for name, code, scene in (("A", 0, 0), ("B", 1, 1)):
        lines += [(name, code, 100.0 * scene + 2 * j) for j in range(5)]
    lines += [("shout", 2, 200.0), ("shout", 2, 202.0)]
    for j in range(12):
        scene, step = (3 + j % scenes_of_the_voice, j // scenes_of_the_voice)
        lines.append(("S", 2, 100.0 * scene + (2 * step if scenes_of_the_voice > 1 else j)))
    lines.sort(key=lambda line: line[2])
    n = len(lines)
    embeddings = np.array([voice[v] + 0.15 * rng.normal(size=16) for v, _, _ in lines])
    usable = np.ones(n, dtype=bool)
    units = voiceprint.integer_units(embeddings, usable)
    neighbours, similarity = voiceprint.nearest_neighbours(units, usable, 8)
    starts = np.array([t for _, _, t in lines])
    face = np.zeros((n, 3), dtype=bool)
    for i, (_, code, _) in enumerate(lines):
        face[i, code] = True  # the speaker alone on screen at every line
    seeds = {}
    for i, (v, code, _) in enumerate(lines):
        if (v in ("A", "B") and sum(seed == code for seed in seeds.values()) < 2) or v == "shout":
            seeds[i] = code
    return Inputs(
        units=units,
        neighbours=neighbours,
        similarity=similarity,
        usable=usable,
        starts=starts,
        ends=starts + 1.5,
        durations=np.full(n, 1.5),
        presence=face.copy(),
        face_near=face,
        unnamed_face_near=np.zeros(n, dtype=bool),
        known=["A", "B", "S"],
        seeds=seeds,
        new_role_name=lambda i: f"role-{i}",
    ), [v for v, _, _ in lines]


def test_a_starved_character_is_found_through_face_anchors():
    """S's seeds (a shout) label nothing; S's usual voice recurs in four scenes with S's face
    alone at the line: it becomes S's, and A and B keep theirs."""
    from tools.sr.propagation import Propagation

    inputs, voices = starved_series(scenes_of_the_voice=4)
    result = Propagation(inputs).run()
    got = {
        v: {int(label) for label, w in zip(result.labels, voices, strict=True) if w == v}
        for v in ("A", "B", "S")
    }
    assert got == {"A": {0}, "B": {1}, "S": {2}}
    assert result.stats["face_anchored_characters"] == 1
    assert result.stats["face_anchored_lines"] >= 3


def test_one_scene_voice_under_a_face_is_no_anchor():
    """The same voice heard in one scene only (an off-screen speaker there, say) does not
    name a starved character: no second sweep, S's lines stay unnamed."""
    from tools.sr.propagation import Propagation

    inputs, voices = starved_series(scenes_of_the_voice=1)
    result = Propagation(inputs).run()
    assert "face_anchored_characters" not in result.stats
    assert all(label != 2 for label, v in zip(result.labels, voices, strict=True) if v == "S")
