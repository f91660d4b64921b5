"""Series loader: the demo series, the real DramaSR-LRM dramas, and every validation error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugins.speaker_rec.labels import LabelKind
from plugins.speaker_rec.series import SeriesError, load_series

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "data" / "demo"
DEMO = "chun_jiang"
SHARED_DRAMAS = REPO.parent / "shared" / "data" / "dramasr"


@pytest.fixture(scope="module")
def demo():
    return load_series(DEMO, DEMO_DIR)


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """A writable copy of the demo series; returns the data dir holding it."""
    shutil.copytree(DEMO_DIR / DEMO, tmp_path / DEMO)
    return tmp_path


def raw_episode(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [data["object_list"][str(i)] for i in range(data["objects"])]


def test_demo_series_has_every_part(demo):
    n_raw = sum(len(raw_episode(p)) for p in sorted((DEMO_DIR / DEMO / "subtitle_data").glob("*.json")))
    assert len(demo) == n_raw == demo.embeddings.shape[0]
    assert [e.number for e in demo.episodes] == list(range(1, len(demo.episodes) + 1))
    assert demo.language == "zh"
    assert demo.faces is not None and len(demo.faces.names) > 0
    assert demo.relations is not None and demo.relations.edges
    assert demo.captions is not None and demo.captions.brief and demo.captions.detailed
    assert demo.seed_files == ["init_seeds_1pct.json"]
    assert set(demo.known_characters) <= set(demo.relations.characters)


def test_global_index_and_timeline(demo):
    assert [line.index for line in demo.lines] == list(range(len(demo)))
    starts = [line.abs_start for line in demo.lines]
    assert starts == sorted(starts), "absolute time must increase across episodes"
    for episode in demo.episodes:
        first = demo.lines[episode.first_line]
        last = demo.lines[episode.first_line + episode.n_lines - 1]
        assert first.episode == last.episode == episode.number and first.local_index == 0
        # 10 s padding before the first line of each episode on the absolute timeline
        assert first.abs_start == pytest.approx(episode.abs_offset + 10.0)
    second = demo.episodes[1]
    previous_last = demo.lines[second.first_line - 1]
    assert demo.lines[second.first_line].abs_start - previous_last.abs_end == pytest.approx(20.0)


def test_deleted_lines_and_non_finite_rows_keep_their_index(demo):
    deleted = [line for line in demo.lines if line.deleted]
    assert len(deleted) == 1
    assert "删除" not in deleted[0].speaker and deleted[0].label.startswith("!删除!")
    assert (~demo.embedding_ok).sum() == 1
    assert np.isnan(demo.embeddings[~demo.embedding_ok]).all()
    assert np.isfinite(demo.embeddings[demo.embedding_ok]).all()


def test_label_kinds_and_name_mapping(demo):
    kinds = {line.kind for line in demo.lines}
    assert {LabelKind.NAMED, LabelKind.UNNAMED, LabelKind.MULTI, LabelKind.NARRATION} <= kinds
    renamed = {k: v for k, v in demo.relations.name_mapping.items() if v}
    assert renamed, "the demo must exercise character_name_mapping"
    for line in demo.lines:
        if line.label in renamed:
            assert line.speaker == renamed[line.label]
    assert any(line.label in renamed for line in demo.lines)


def test_speakers_are_mostly_on_screen(demo):
    named = [l for l in demo.lines if l.kind is LabelKind.NAMED and l.speaker in demo.known_characters]
    seen = sum(any(n == l.speaker for n, _, _ in demo.faces.between(l.abs_start - 2, l.abs_end + 2)) for l in named)
    assert 0.5 < seen / len(named) < 1.0


def test_seeds_are_labelled_lines(demo):
    seeds = demo.seeds()
    assert seeds
    for index, name in seeds.items():
        assert demo.lines[index].speaker == name


def test_captions_lie_inside_their_episode(demo):
    for caption in demo.captions.brief + demo.captions.detailed:
        episode = demo.episodes[caption.episode - 1]
        assert episode.abs_offset <= caption.abs_start <= caption.abs_end
        assert caption.abs_end <= episode.abs_offset + episode.end - episode.start


def test_optional_parts_switch_off(demo_copy):
    root = demo_copy / DEMO
    (root / "caption.json").unlink()
    shutil.rmtree(root / "face_data")
    (root / "relation.json").unlink()
    series = load_series(DEMO, demo_copy)
    assert series.captions is None and series.faces is None and series.relations is None
    assert len(series) > 0


# --- validation: each case corrupts a copy and names the file and the reason ----------

def rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def set_line_field(field, value):
    def change(data):
        data["object_list"]["3"][field] = value
    return change


CORRUPTIONS = {
    "missing embedding episode": (
        lambda r: (r / "sv_embedding/0002.npy").unlink(), "sv_embedding", "missing episode(s) 0002"),
    "extra embedding episode": (
        lambda r: shutil.copy(r / "sv_embedding/0001.npy", r / "sv_embedding/0009.npy"),
        "sv_embedding", "extra episode(s) 0009"),
    "gap in subtitle episodes": (
        lambda r: (r / "subtitle_data/0002.json").rename(r / "subtitle_data/0005.json"),
        "subtitle_data", "missing 0002"),
    "stray file": (
        lambda r: (r / "subtitle_data/notes.txt").write_text("x"), "notes.txt", "unexpected file"),
    "embedding rows differ from lines": (
        lambda r: np.save(r / "sv_embedding/0001.npy", np.load(r / "sv_embedding/0001.npy")[:-1]),
        "0001.npy", "embedding rows but"),
    "embedding dimension differs": (
        lambda r: np.save(r / "sv_embedding/0002.npy", np.load(r / "sv_embedding/0002.npy")[:, :64]),
        "0002.npy", "dimension 64"),
    "malformed JSON": (
        lambda r: (r / "subtitle_data/0002.json").write_text('{"episode_idx": 1,\n "objects": ', encoding="utf-8"),
        "0002.json", "malformed JSON"),
    "bad timestamp": (
        lambda r: rewrite_json(r / "subtitle_data/0001.json", set_line_field("start_time", "0:1:2.5")),
        "0001.json", "bad timestamp '0:1:2.5'"),
    "end before start": (
        lambda r: rewrite_json(r / "subtitle_data/0001.json", set_line_field("end_time", "00:00:00.000")),
        "0001.json", "is before start_time"),
    "unknown field": (
        lambda r: rewrite_json(r / "subtitle_data/0001.json", set_line_field("speaker_guess", "x")),
        "0001.json", "unknown field(s) ['speaker_guess']"),
    "wrong episode_idx": (
        lambda r: rewrite_json(r / "subtitle_data/0002.json", lambda d: d.update(episode_idx=5)),
        "0002.json", "episode_idx is 5, expected 1"),
    "objects count mismatch": (
        lambda r: rewrite_json(r / "subtitle_data/0001.json", lambda d: d.update(objects=d["objects"] + 1)),
        "0001.json", "object_list has"),
    "face file missing": (
        lambda r: (r / "face_data/0003.json").unlink(), "face_data", "missing episode(s) 0003"),
    "bad caption episode": (
        lambda r: rewrite_json(r / "caption.json", lambda d: d[0].update(episode_idx=99)),
        "caption.json", "episode_idx must be"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_malformed_series_names_file_and_reason(demo_copy, case):
    corrupt, file_part, reason = CORRUPTIONS[case]
    corrupt(demo_copy / DEMO)
    with pytest.raises(SeriesError) as error:
        load_series(DEMO, demo_copy)
    assert file_part in str(error.value.path) or file_part in str(error.value)
    assert reason in str(error.value)


def test_malformed_json_reports_line_and_column(demo_copy):
    CORRUPTIONS["malformed JSON"][0](demo_copy / DEMO)
    with pytest.raises(SeriesError, match=r"0002\.json: line 2 column \d+: malformed JSON"):
        load_series(DEMO, demo_copy)


def test_bad_seed_file_is_reported(demo_copy):
    rewrite_json(demo_copy / DEMO / "init_seeds_1pct.json", lambda d: d["utterance_label"].pop())
    series = load_series(DEMO, demo_copy)
    with pytest.raises(SeriesError, match="utterance_label has .* entries, the series has"):
        series.seeds()


@pytest.mark.parametrize("name", ["../chun_jiang", "a/b", "/etc", "..", "", "x y", "chun_jiang/"])
def test_series_name_must_be_identifier(name):
    with pytest.raises(SeriesError, match="not an identifier"):
        load_series(name, DEMO_DIR)


def test_unknown_series_lists_available():
    with pytest.raises(SeriesError, match=r"unknown series 'nope'; available: \['chun_jiang'\]"):
        load_series("nope", DEMO_DIR)


def test_cli_exit_codes(demo_copy):
    cmd = [sys.executable, "-m", "tools.series_info", "--data-dir", str(demo_copy), "--series", DEMO]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["lines"] == len(load_series(DEMO, demo_copy))
    assert summary["parts"] == {"faces": True, "relations": True, "captions": True}
    CORRUPTIONS["embedding rows differ from lines"][0](demo_copy / DEMO)
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "0001.npy" in bad.stderr and "embedding rows but" in bad.stderr


# --- the real dramas, read in place ----------------------------------------------------

REAL = {
    # series: (episodes, lines, deleted lines, non-finite embedding rows)
    "zhan_chang_sha": (32, 20680, 17, 1),
    "ren_shi_jian": (8, 7015, 0, 0),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_series(name):
    if not (SHARED_DRAMAS / name).is_dir():
        pytest.skip(f"../shared/data/dramasr/{name} is absent (real data is read in place, never committed)")
    series = load_series(name, SHARED_DRAMAS)
    episodes, lines, deleted, non_finite = REAL[name]
    assert (len(series.episodes), len(series)) == (episodes, lines)
    assert sum(line.deleted for line in series.lines) == deleted
    assert int((~series.embedding_ok).sum()) == non_finite
    assert series.embeddings.shape == (lines, 192)
    assert series.captions is None, "caption.json is not part of the release"
    seeds = series.seeds()
    raw = json.loads((series.root / "init_seeds_1pct.json").read_text(encoding="utf-8"))
    assert len(seeds) == sum(u["code"] >= 0 for u in raw["utterance_label"])
    assert all(series.lines[i].speaker == seed for i, seed in seeds.items()), "seed lines are ground truth"
    starts = [line.abs_start for line in series.lines]
    assert starts == sorted(starts)
