"""The committed demo series is exactly what tools.dev.demo_series makes of its script, and it
has the shape and difficulty that the loader, the tools and `make demo` rely on."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from repo_paths import REPO_ROOT

SCRIPT = REPO_ROOT / "data" / "demo" / "script" / "chun_jiang.yaml"
SERIES = REPO_ROOT / "data" / "demo" / "chun_jiang"
CLUSTER_ID = re.compile(r"\d{4}_pro\d+_id\d+")
DELETED = re.compile(r"!删除!(.+)!")


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tools.dev.demo_series", *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def seconds(stamp):
    """HH:MM:SS.mmm as seconds, exact to the millisecond."""
    hours, minutes, rest = stamp.split(":")
    return (int(hours) * 3_600_000 + int(minutes) * 60_000 + round(float(rest) * 1000)) / 1000


def read(name):
    return json.loads((SERIES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def series():
    """The committed series: per-episode subtitles, embeddings and faces, plus the rest."""
    names = sorted(p.stem for p in (SERIES / "subtitle_data").glob("*.json"))
    return {
        "names": names,
        "subtitles": [read(f"subtitle_data/{n}.json") for n in names],
        "embeddings": [np.load(SERIES / "sv_embedding" / f"{n}.npy") for n in names],
        "faces": [read(f"face_data/{n}.json") for n in names],
        "face_info": read("face_data/face_info.json"),
        "relation": read("relation.json"),
        "captions": read("caption.json"),
        "seeds": read("init_seeds_1pct.json"),
    }


def all_lines(series):
    return [line for ep in series["subtitles"] for line in ep["object_list"].values()]


def test_regenerating_reproduces_the_committed_files(tmp_path):
    result = run_cli("--script", SCRIPT, "--out", tmp_path / "chun_jiang", "--seed", 0)
    assert result.returncode == 0, result.stderr
    fresh, committed = tree(tmp_path / "chun_jiang"), tree(SERIES)
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"edit the script and regenerate, never the files: {changed}"


def test_another_seed_changes_the_voiceprints(tmp_path):
    result = run_cli("--script", SCRIPT, "--out", tmp_path / "other", "--seed", 1)
    assert result.returncode == 0, result.stderr
    for npy in sorted((SERIES / "sv_embedding").glob("*.npy")):
        assert (tmp_path / "other" / "sv_embedding" / npy.name).read_bytes() != npy.read_bytes()


def test_episodes_lines_and_characters(series):
    assert series["names"] == ["0001", "0002", "0003"]
    assert 180 <= len(all_lines(series)) <= 260
    assert 6 <= len(series["face_info"]["role_name_variants"]) <= 7
    for ep_idx, episode in enumerate(series["subtitles"]):
        lines = list(episode["object_list"].values())
        assert episode["episode_idx"] == ep_idx and episode["objects"] == len(lines)
        assert list(episode["object_list"]) == [str(i) for i in range(len(lines))]
        previous_end = -1.0
        for i, line in enumerate(lines):
            start, end = seconds(line["start_time"]), seconds(line["end_time"])
            assert (line["episode_idx"], line["object_idx"], line["geometry"]) == (ep_idx, i, {})
            assert previous_end < start < end and 400 <= round((end - start) * 1000) <= 5001
            assert (line["start_frame"], line["end_frame"]) == (round(start * 25), round(end * 25))
            previous_end = end
    durations = [seconds(x["end_time"]) - seconds(x["start_time"]) for x in all_lines(series)]
    assert np.mean(np.array(durations) < 2.0) > 0.6


def test_every_label_convention_occurs(series):
    labels = [line["character"] for line in all_lines(series)]
    mapping = series["relation"]["character_name_mapping"]
    known = set(series["face_info"]["role_name_variants"])
    assert mapping["旁白"] is None and mapping["其他"] is None and "旁白" in labels
    nicknames = {label: name for label, name in mapping.items() if name is not None}
    assert nicknames and set(nicknames.values()) <= known and set(nicknames) & set(labels)
    assert any(re.fullmatch(r"\S+-\d+", label) for label in labels)
    assert any("|" in label for label in labels) and any("/" in label for label in labels)
    deleted = [label for label in labels if DELETED.fullmatch(label)]
    assert len(deleted) == 1 and DELETED.fullmatch(deleted[0]).group(1) in known


def test_embeddings_match_lines_with_one_nan_row(series):
    nan_rows = 0
    for episode, emb in zip(series["subtitles"], series["embeddings"], strict=True):
        assert emb.dtype == np.float32 and emb.shape == (episode["objects"], 192)
        rows = np.isnan(emb).any(axis=1)
        assert np.isnan(emb[rows]).all()
        nan_rows += int(rows.sum())
        norms = np.linalg.norm(emb[~rows], axis=1)
        assert norms.min() > 400 and norms.max() < 1000
    assert nan_rows == 1


def test_faces_are_single_frame_detections_in_time_order(series):
    known = set(series["face_info"]["role_name_variants"])
    for ep_idx, faces in enumerate(series["faces"]):
        dets = list(faces["object_list"].values())
        assert faces["episode_idx"] == ep_idx and faces["objects"] == len(dets) > 0
        frames = [d["start_frame"] for d in dets]
        assert frames == sorted(frames)
        for key, det in faces["object_list"].items():
            assert det["object_idx"] != int(key)
            assert det["start_time"] == det["end_time"] and det["start_frame"] == det["end_frame"]
            assert det["geometry"]["active_frame_list"]["0"]["frame"] == det["start_frame"]
            face = det["id_list"]["0"]
            assert face["name"] in known or CLUSTER_ID.fullmatch(face["name"])
            assert 0.5 <= face["score"] <= 1.0
    names = {d["id_list"]["0"]["name"] for f in series["faces"] for d in f["object_list"].values()}
    assert known <= names and any(CLUSTER_ID.fullmatch(n) for n in names)


def test_relations_captions_and_face_info_agree(series):
    relation, info = series["relation"], series["face_info"]
    characters = set(relation["character_list"])
    assert characters == set(info["role_name_variants"])
    for a, b, rel in relation["relationship_list"]:
        assert a in characters and b in characters and a != b
        assert rel in relation["relationship_type_dict"]
    assert sum(relation["relationship_type_dict"].values()) == len(relation["relationship_list"])
    assert set(info["actor_to_role"].values()) == characters
    episodes = len(series["subtitles"])
    for item in series["captions"]:
        assert 0 <= item["episode_idx"] < episodes
        brief = item["brief_caption"]
        start, end = seconds(brief["start_timestamp"]), seconds(brief["end_timestamp"])
        assert start < end and brief["description"]
        for detail in item["detailed_caption_list"]:
            d_start, d_end = seconds(detail["start_timestamp"]), seconds(detail["end_timestamp"])
            assert start <= d_start < d_end <= end and d_end - d_start <= 10.0
    assert {item["episode_idx"] for item in series["captions"]} == set(range(episodes))


def test_seeds_are_ground_truth_lines(series):
    seeds, lines = series["seeds"], all_lines(series)
    assert len(seeds["utterance_label"]) == len(lines)
    assert seeds["characters"] == len(seeds["character_list"])
    for entry in seeds["character_list"]:
        assert seeds["character_dict"][entry["name"]] == entry["code"]
        for i in entry["utterance_list"]:
            assert lines[i]["character"] == entry["name"]
            assert seeds["utterance_label"][i]["code"] == entry["code"]
            assert seeds["utterance_label"][i]["is_gt"] is True
    seeded = [e for e in seeds["character_list"] if e["utterance_list"]]
    assert {e["name"] for e in seeded} == set(series["face_info"]["role_name_variants"])
    assert all(2 <= len(e["utterance_list"]) <= 3 for e in seeded)
    labelled = sum(u["code"] != -1 for u in seeds["utterance_label"])
    assert labelled == sum(len(e["utterance_list"]) for e in seeded)


def test_voiceprints_are_informative_but_not_trivial(series):
    """Nearest seed centroid by cosine over the known characters' single-speaker lines."""
    emb = np.concatenate(series["embeddings"])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    seeded = [e for e in series["seeds"]["character_list"] if e["utterance_list"]]
    centroids = np.stack([unit[e["utterance_list"]].mean(axis=0) for e in seeded])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    mapping = series["relation"]["character_name_mapping"]
    correct = total = 0
    for i, line in enumerate(all_lines(series)):
        name = mapping.get(line["character"], line["character"])
        if np.isnan(emb[i]).any() or name not in series["face_info"]["role_name_variants"]:
            continue  # deleted, several speakers, unnamed, narration, or no voiceprint
        correct += seeded[int(np.argmax(centroids @ unit[i]))]["name"] == name
        total += 1
    assert total > 150
    assert 0.55 <= correct / total <= 0.92


BAD_SCRIPTS = {
    "unknown speaker": (
        lambda doc: doc["episodes"][1]["scenes"][0]["lines"].append({"王五": "我是谁"}),
        "王五 is not declared",
    ),
    "empty episode": (
        lambda doc: doc["episodes"].append({"scenes": []}),
        "episode 4: has no scenes",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_bad_script_fails_naming_file_and_reason(tmp_path, case):
    spoil, reason = BAD_SCRIPTS[case]
    doc = yaml.safe_load(SCRIPT.read_text(encoding="utf-8"))
    spoil(doc)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = run_cli("--script", bad, "--out", tmp_path / "out")
    assert result.returncode != 0
    assert str(bad) in result.stderr and reason in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]


def test_refuses_to_replace_a_directory_that_is_not_a_series(tmp_path):
    keep = tmp_path / "notes" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("mine", encoding="utf-8")
    result = run_cli("--script", SCRIPT, "--out", keep.parent)
    assert result.returncode != 0 and "not a series directory" in result.stderr
    assert keep.read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
