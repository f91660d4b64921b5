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
from repo_paths import REPO_ROOT

DEMO_DIR = REPO_ROOT / "data" / "demo"
DEMO = "chun_jiang"
SHARED_DRAMAS = REPO_ROOT.parent / "shared" / "data" / "dramasr"


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
    n_raw = sum(
        len(raw_episode(p)) for p in sorted((DEMO_DIR / DEMO / "subtitle_data").glob("*.json"))
    )
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
    named = [
        line
        for line in demo.lines
        if line.kind is LabelKind.NAMED and line.speaker in demo.known_characters
    ]
    seen = sum(
        any(
            n == line.speaker
            for n, _, _ in demo.faces.between(line.abs_start - 2, line.abs_end + 2)
        )
        for line in named
    )
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


def published_known_from_raw_files(root: Path) -> set[str]:
    """role_name_variants keys seen as a top-1 face name, plus truths containing 旁白."""
    keys = set(
        json.loads((root / "face_data/face_info.json").read_text(encoding="utf-8"))[
            "role_name_variants"
        ]
    )
    top1 = {
        obj["id_list"]["0"]["name"]
        for path in sorted((root / "face_data").glob("0*.json"))
        for obj in raw_episode(path)
    }
    narration = {
        obj["character"]
        for path in sorted((root / "subtitle_data").glob("*.json"))
        for obj in raw_episode(path)
        if "旁白" in obj.get("character", "")
    }
    assert narration and keys & top1
    return (keys & top1) | narration


def test_published_known_from_the_raw_files(demo, demo_copy):
    assert demo.published_known == published_known_from_raw_files(DEMO_DIR / DEMO)
    assert "林晚" in demo.published_known
    # a known character never detected as a top-1 face is not known to the published rule
    for path in sorted((demo_copy / DEMO / "face_data").glob("0*.json")):
        rewrite_json(
            path,
            lambda d: [
                obj["id_list"]["0"].update(name="0000_cluster")
                for obj in d["object_list"].values()
                if obj["id_list"]["0"]["name"] == "林晚"
            ],
        )
    series = load_series(DEMO, demo_copy)
    assert "林晚" in series.known_characters and "林晚" not in series.published_known
    assert (
        series.published_known
        == published_known_from_raw_files(demo_copy / DEMO)
        == demo.published_known - {"林晚"}
    )


def test_optional_parts_switch_off(demo_copy):
    root = demo_copy / DEMO
    (root / "caption.json").unlink()
    shutil.rmtree(root / "face_data")
    (root / "relation.json").unlink()
    series = load_series(DEMO, demo_copy)
    assert series.captions is None and series.faces is None and series.relations is None
    assert len(series) > 0
    assert series.published_known == {
        line.speaker for line in series.lines if "旁白" in (line.speaker or "")
    }


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
        lambda r: (r / "sv_embedding/0002.npy").unlink(),
        "sv_embedding",
        "missing episode(s) 0002",
    ),
    "extra embedding episode": (
        lambda r: shutil.copy(r / "sv_embedding/0001.npy", r / "sv_embedding/0009.npy"),
        "sv_embedding",
        "extra episode(s) 0009",
    ),
    "gap in subtitle episodes": (
        lambda r: (r / "subtitle_data/0002.json").rename(r / "subtitle_data/0005.json"),
        "subtitle_data",
        "missing 0002",
    ),
    "stray file": (
        lambda r: (r / "subtitle_data/notes.txt").write_text("x"),
        "notes.txt",
        "unexpected file",
    ),
    "embedding rows differ from lines": (
        lambda r: np.save(r / "sv_embedding/0001.npy", np.load(r / "sv_embedding/0001.npy")[:-1]),
        "0001.npy",
        "embedding rows but",
    ),
    "embedding dimension differs": (
        lambda r: np.save(
            r / "sv_embedding/0002.npy", np.load(r / "sv_embedding/0002.npy")[:, :64]
        ),
        "0002.npy",
        "dimension 64",
    ),
    "malformed JSON": (
        lambda r: (r / "subtitle_data/0002.json").write_text(
            '{"episode_idx": 1,\n "objects": ', encoding="utf-8"
        ),
        "0002.json",
        "malformed JSON",
    ),
    "bad timestamp": (
        lambda r: rewrite_json(
            r / "subtitle_data/0001.json", set_line_field("start_time", "0:1:2.5")
        ),
        "0001.json",
        "bad timestamp '0:1:2.5'",
    ),
    "end before start": (
        lambda r: rewrite_json(
            r / "subtitle_data/0001.json", set_line_field("end_time", "00:00:00.000")
        ),
        "0001.json",
        "is before start_time",
    ),
    "seconds field over 60": (
        lambda r: rewrite_json(
            r / "subtitle_data/0001.json", set_line_field("start_time", "00:01:61.000")
        ),
        "0001.json",
        "object_list['3'].start_time: bad timestamp '00:01:61.000'",
    ),
    "minutes field over 60": (
        lambda r: rewrite_json(
            r / "subtitle_data/0001.json", set_line_field("end_time", "00:61:00.000")
        ),
        "0001.json",
        "object_list['3'].end_time: bad timestamp '00:61:00.000'",
    ),
    "face timestamp malformed": (
        lambda r: rewrite_json(
            r / "face_data/0002.json",
            lambda d: d["object_list"]["1"].update(start_time="00:02:7.000"),
        ),
        "face_data/0002.json",
        "object_list['1'].start_time: bad timestamp '00:02:7.000'",
    ),
    "face end_time malformed": (
        lambda r: rewrite_json(
            r / "face_data/0002.json", lambda d: d["object_list"]["1"].update(end_time="later")
        ),
        "face_data/0002.json",
        "object_list['1'].end_time: bad timestamp 'later'",
    ),
    "overlap not a boolean": (
        lambda r: rewrite_json(r / "subtitle_data/0002.json", set_line_field("overlap", "yes")),
        "0002.json",
        "object_list['3']: overlap must be true or false, got 'yes'",
    ),
    "auxiliary_text not a string": (
        lambda r: rewrite_json(
            r / "subtitle_data/0002.json", set_line_field("auxiliary_text", ["x"])
        ),
        "0002.json",
        "object_list['3']: auxiliary_text must be a string, got list",
    ),
    "wrong episode_idx": (
        lambda r: rewrite_json(r / "subtitle_data/0002.json", lambda d: d.update(episode_idx=5)),
        "0002.json",
        "episode_idx is 5, expected 1",
    ),
    "objects count mismatch": (
        lambda r: rewrite_json(
            r / "subtitle_data/0001.json", lambda d: d.update(objects=d["objects"] + 1)
        ),
        "0001.json",
        "object_list has",
    ),
    "face file missing": (
        lambda r: (r / "face_data/0003.json").unlink(),
        "face_data",
        "missing episode(s) 0003",
    ),
    "bad caption episode": (
        lambda r: rewrite_json(r / "caption.json", lambda d: d[0].update(episode_idx=99)),
        "caption.json",
        "episode_idx must be",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_malformed_series_names_file_and_reason(demo_copy, case):
    corrupt, file_part, reason = CORRUPTIONS[case]
    corrupt(demo_copy / DEMO)
    with pytest.raises(SeriesError) as error:
        load_series(DEMO, demo_copy)
    assert file_part in str(error.value.path) or file_part in str(error.value)
    assert reason in str(error.value)


# --- what real releases contain: read, kept, and warned about with counts --------------


def test_release_fields_are_kept_on_the_line(demo_copy):
    """auxiliary_text and overlap (some dramas of the release carry them) are read, not refused."""

    def add(data):
        for key, obj in data["object_list"].items():
            obj["auxiliary_text"] = "（画外音）" if key == "2" else ""
            obj["overlap"] = key in ("1", "4")

    rewrite_json(demo_copy / DEMO / "subtitle_data/0002.json", add)
    series = load_series(DEMO, demo_copy)
    assert series.warnings == []
    first = series.episodes[1].first_line
    assert [line.local_index for line in series.lines if line.overlap] == [1, 4]
    assert all(line.episode == 2 for line in series.lines if line.overlap)
    assert series.lines[first + 2].auxiliary_text == "（画外音）"
    assert series.lines[first + 3].auxiliary_text == "" and not series.lines[first + 3].overlap
    # episodes without the fields default to clean lines without auxiliary text
    assert not any(line.overlap or line.auxiliary_text for line in series.lines[:first])


def test_unknown_field_is_a_warning_naming_file_field_and_count(demo_copy, caplog):
    def add(data):
        for key in ("0", "3", "5"):
            data["object_list"][key]["speaker_guess"] = "x"
        data["release_note"] = "v2"

    rewrite_json(demo_copy / DEMO / "subtitle_data/0002.json", add)
    rewrite_json(
        demo_copy / DEMO / "face_data/0001.json", lambda d: d["object_list"]["0"].update(blur=0.5)
    )
    series = load_series(DEMO, demo_copy)
    sub, faces = demo_copy / DEMO / "subtitle_data", demo_copy / DEMO / "face_data"
    assert series.warnings == [
        f"{faces}: unknown field 'blur' ignored in 1 record(s) of 1 file(s): 0001.json (1)",
        f"{sub}: unknown field 'release_note' ignored in 1 record(s) of 1 file(s): 0002.json (1)",
        f"{sub}: unknown field 'speaker_guess' ignored in 3 record(s) of 1 file(s): 0002.json (3)",
    ]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == series.warnings
    assert len(series) == len(load_series(DEMO, DEMO_DIR))


def test_minutes_or_seconds_of_60_roll_over_and_are_counted(demo_copy):
    """Read as the published code reads them: 00:25:60.000 is 00:26:00.000."""

    def subtitles_60(d):
        d["object_list"]["0"]["start_time"] = "00:00:60.000"  # was 00:01:09.476
        d["object_list"]["3"]["end_time"] = "00:01:60.000"  # was 00:01:27.685

    rewrite_json(demo_copy / DEMO / "subtitle_data/0001.json", subtitles_60)
    rewrite_json(
        demo_copy / DEMO / "face_data/0002.json",
        lambda d: d["object_list"]["0"].update(start_time="00:60:60.000", end_time="00:60:60.000"),
    )
    series = load_series(DEMO, demo_copy)
    assert series.lines[0].start == 60.0 and series.lines[3].end == 120.0
    assert series.lines[3].start == pytest.approx(86.233)
    assert series.episodes[1].to_abs(3660.0) in series.faces.abs_time  # 00:60:60 = 01:01:00
    sub, faces = demo_copy / DEMO / "subtitle_data", demo_copy / DEMO / "face_data"
    assert series.warnings == [
        (
            f"{faces}: 2 timestamp(s) with a minutes or seconds field of 60, read arithmetically "
            "(00:25:60.000 = 00:26:00.000) in 0002.json (2); first: 0002.json "
            "object_list['0'].start_time '00:60:60.000'"
        ),
        (
            f"{sub}: 2 timestamp(s) with a minutes or seconds field of 60, read arithmetically "
            "(00:25:60.000 = 00:26:00.000) in 0001.json (2); first: 0001.json "
            "object_list['0'].start_time '00:00:60.000'"
        ),
    ]


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
    cmd = [
        sys.executable,
        "-m",
        "tools.sr.series_info",
        "--data-dir",
        str(demo_copy),
        "--series",
        DEMO,
    ]
    ok = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["lines"] == len(load_series(DEMO, demo_copy))
    assert summary["parts"] == {"faces": True, "relations": True, "captions": True}
    assert summary["warnings"] == [] and "WARNING" not in ok.stderr
    CORRUPTIONS["embedding rows differ from lines"][0](demo_copy / DEMO)
    bad = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "0001.npy" in bad.stderr and "embedding rows but" in bad.stderr


# --- the real dramas, read in place ----------------------------------------------------

REAL = {
    # series: (episodes, lines, deleted lines, non-finite embedding rows, published known
    # characters)
    "zhan_chang_sha": (32, 20680, 17, 1, 35),
    "ren_shi_jian": (8, 7015, 0, 0, 48),
    "da_qin_di_guo_zhi_zong_heng": (51, 29127, 9, 0, 59),
    "shan_hai_qing": (23, 23932, 8, 0, 87),
}
# What each drama, as released, is warned about (relative to the series directory).
REAL_WARNINGS = {
    "zhan_chang_sha": [],
    "ren_shi_jian": [],
    "da_qin_di_guo_zhi_zong_heng": [
        (
            "subtitle_data: 1 timestamp(s) with a minutes or seconds field of 60, read "
            "arithmetically (00:25:60.000 = 00:26:00.000) in 0030.json (1); first: 0030.json "
            "object_list['135'].start_time '00:08:60.000'"
        )
    ],
    "shan_hai_qing": [
        (
            "face_data: 12 timestamp(s) with a minutes or seconds field of 60, read arithmetically "
            "(00:25:60.000 = 00:26:00.000) in 0015.json (12); first: 0015.json "
            "object_list['2619'].start_time '00:25:60.000'"
        )
    ],
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_series(name):
    if not (SHARED_DRAMAS / name).is_dir():
        pytest.skip(
            f"../shared/data/dramasr/{name} is absent (real data is read in place, never committed)"
        )
    series = load_series(name, SHARED_DRAMAS)
    episodes, lines, deleted, non_finite, published_known = REAL[name]
    assert (len(series.episodes), len(series)) == (episodes, lines)
    assert sum(line.deleted for line in series.lines) == deleted
    assert int((~series.embedding_ok).sum()) == non_finite
    assert series.embeddings.shape == (lines, 192)
    assert series.captions is None, "caption.json is not part of the release"
    seeds = series.seeds()
    raw = json.loads((series.root / "init_seeds_1pct.json").read_text(encoding="utf-8"))
    assert len(seeds) == sum(u["code"] >= 0 for u in raw["utterance_label"])
    assert all(series.lines[i].speaker == seed for i, seed in seeds.items()), (
        "seed lines are ground truth"
    )
    starts = [line.abs_start for line in series.lines]
    assert starts == sorted(starts)
    assert series.warnings == [f"{series.root}/{w}" for w in REAL_WARNINGS[name]]
    assert not any(line.overlap for line in series.lines)  # no shared drama marks overlaps
    assert len(series.published_known) == published_known
    assert series.published_known <= set(series.known_characters) | {"旁白"}
    if name == "da_qin_di_guo_zhi_zong_heng":
        real_release_fields_and_rollover(series)


def real_release_fields_and_rollover(series):
    """da_qin carries auxiliary_text on every line (all empty) and one start at 00:08:60.000."""
    line = series.lines[series.episodes[29].first_line + 135]
    assert (line.episode, line.local_index, line.text) == (30, 135, "奉承话多说一点")
    assert line.start == 540.0 and line.end == pytest.approx(541.36)
    assert all(line.auxiliary_text == "" for line in series.lines)


def test_cli_tolerated_cases_exit_0_with_warnings(demo_copy):
    rewrite_json(demo_copy / DEMO / "subtitle_data/0002.json", set_line_field("speaker_guess", "x"))
    rewrite_json(demo_copy / DEMO / "subtitle_data/0002.json", set_line_field("overlap", True))
    rewrite_json(
        demo_copy / DEMO / "face_data/0003.json",
        lambda d: d["object_list"]["2"].update(end_time="00:02:60.000"),
    )
    cmd = [
        sys.executable,
        "-m",
        "tools.sr.series_info",
        "--data-dir",
        str(demo_copy),
        "--series",
        DEMO,
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["overlapped_lines"] == 1 and len(summary["warnings"]) == 2
    assert (
        "unknown field 'speaker_guess' ignored in 1 record(s) of 1 file(s): 0002.json (1)"
        in done.stderr
    )
    assert "1 timestamp(s) with a minutes or seconds field of 60" in done.stderr
    assert (
        "face_data: " in done.stderr
        and "0003.json object_list['2'].end_time '00:02:60.000'" in done.stderr
    )


def test_cli_on_a_real_drama_with_rollovers():
    name = "shan_hai_qing"
    if not (SHARED_DRAMAS / name).is_dir():
        pytest.skip(
            f"../shared/data/dramasr/{name} is absent (real data is read in place, never committed)"
        )
    cmd = [
        sys.executable,
        "-m",
        "tools.sr.series_info",
        "--data-dir",
        str(SHARED_DRAMAS),
        "--series",
        name,
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lines"] == REAL[name][1]
    assert (
        "WARNING" in done.stderr
        and "12 timestamp(s) with a minutes or seconds field of 60" in done.stderr
    )
