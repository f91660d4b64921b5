"""The loader against hostile files: every case runs `tools.sr.series_info` on a corrupted copy of
the demo series and checks the exit status and the message (file and reason, never a traceback,
never a hang); the tolerated cases (hidden files, a BOM, links inside the data directory) load."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugins.speaker_rec.series import ReadPolicy, SeriesError, load_series
from repo_paths import REPO_ROOT

DEMO_DIR = REPO_ROOT / "data" / "demo"
DEMO = "chun_jiang"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A writable copy of the demo series in tmp_path/data; returns the data dir."""
    shutil.copytree(DEMO_DIR / DEMO, tmp_path / "data" / DEMO)
    return tmp_path / "data"


def series_info(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "tools.sr.series_info",
        "--data-dir",
        str(data_dir),
        "--series",
        DEMO,
        *extra,
    ]
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


def refused(data_dir: Path, *extra: str) -> str:
    """Run series_info, expect exit 2 with one error line and no output; returns stderr."""
    done = series_info(data_dir, *extra)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stdout == "" and "Traceback" not in done.stderr
    return done.stderr


def rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def truncated_npy(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])


def npz_in_npy_place(path: Path) -> None:
    block = np.load(path)
    with path.open("wb") as f:
        np.savez(f, block=block)


def object_npy(path: Path) -> None:
    rows = np.load(path).shape[0]
    np.save(path, np.array([{"x": 1}] * rows, dtype=object), allow_pickle=True)


def header_lies(path: Path) -> None:
    """Header says 10^9 rows (a 768 GB allocation if believed); the data are the real ones."""
    raw = path.read_bytes()
    block = np.load(path)
    text = raw.decode("latin1")
    path.write_bytes(text.replace(f"({block.shape[0]}, ", "(1000000000, ", 1).encode("latin1"))


def text_field(path: Path, raw: str) -> None:
    """Set object 2's text to a raw JSON fragment (which json.dumps could not produce)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    marker = "@@TEXT@@"
    data["object_list"]["2"]["text"] = marker
    path.write_text(
        json.dumps(data, ensure_ascii=False).replace(json.dumps(marker), raw), encoding="utf-8"
    )


# case: (corruption of the series root, file named in the message, reason in the message)
REFUSED = {
    "directory named like an episode file": (
        lambda r: replace_with_dir(r / "subtitle_data/0002.json"),
        "subtitle_data/0002.json",
        "a directory, not a regular file",
    ),
    "directory named like an embedding file": (
        lambda r: replace_with_dir(r / "sv_embedding/0001.npy"),
        "sv_embedding/0001.npy",
        "a directory, not a regular file",
    ),
    "directory named like relation.json": (
        lambda r: replace_with_dir(r / "relation.json"),
        "relation.json",
        "a directory, not a regular file",
    ),
    "FIFO in an episode file's place": (
        lambda r: (
            (r / "subtitle_data/0003.json").unlink(),
            os.mkfifo(r / "subtitle_data/0003.json"),
        ),
        "subtitle_data/0003.json",
        "a FIFO, not a regular file",
    ),
    "FIFO as face_info.json": (
        lambda r: (
            (r / "face_data/face_info.json").unlink(),
            os.mkfifo(r / "face_data/face_info.json"),
        ),
        "face_data/face_info.json",
        "a FIFO, not a regular file",
    ),
    "deep nesting in a record": (
        lambda r: text_field(r / "subtitle_data/0001.json", nested(100_000)),
        "subtitle_data/0001.json",
        "malformed JSON: nested too deeply to read",
    ),
    "deep nesting in a face record": (
        lambda r: (
            rewrite_json(
                r / "face_data/0001.json", lambda d: d["object_list"]["0"].update(geometry=None)
            )
            or (r / "face_data/0001.json").write_text(
                (r / "face_data/0001.json")
                .read_text(encoding="utf-8")
                .replace('"geometry": null', '"geometry": ' + nested(50_000), 1),
                encoding="utf-8",
            )
        ),
        "face_data/0001.json",
        "nested too deeply",
    ),
    "non-numeric face score": (
        lambda r: rewrite_json(
            r / "face_data/0002.json",
            lambda d: d["object_list"]["4"]["id_list"]["0"].update(score="high"),
        ),
        "face_data/0002.json",
        "object_list['4'].id_list['0'].score: score must be a number, got 'high'",
    ),
    "NaN face score": (
        lambda r: (r / "face_data/0002.json").write_text(
            (r / "face_data/0002.json")
            .read_text(encoding="utf-8")
            .replace('"score": ', '"score": NaN, "x": ', 1),
            encoding="utf-8",
        ),
        "face_data/0002.json",
        "score must be a number, got nan",
    ),
    "boolean face score": (
        lambda r: rewrite_json(
            r / "face_data/0001.json",
            lambda d: d["object_list"]["1"]["id_list"]["0"].update(score=True),
        ),
        "face_data/0001.json",
        "score must be a number, got True",
    ),
    "truncated npy": (
        lambda r: truncated_npy(r / "sv_embedding/0002.npy"),
        "sv_embedding/0002.npy",
        "truncated or padded",
    ),
    "garbage npy": (
        lambda r: (r / "sv_embedding/0001.npy").write_bytes(b"\x00garbage" * 50),
        "sv_embedding/0001.npy",
        "not a readable .npy array",
    ),
    "empty npy": (
        lambda r: (r / "sv_embedding/0001.npy").write_bytes(b""),
        "sv_embedding/0001.npy",
        "not a readable .npy",
    ),
    "npz in an npy's place": (
        lambda r: npz_in_npy_place(r / "sv_embedding/0003.npy"),
        "sv_embedding/0003.npy",
        "not a readable .npy",
    ),
    "pickled objects in an npy": (
        lambda r: object_npy(r / "sv_embedding/0002.npy"),
        "sv_embedding/0002.npy",
        "expected a 2-D float array",
    ),
    "npy without columns": (
        lambda r: np.save(
            r / "sv_embedding/0002.npy",
            np.zeros((np.load(r / "sv_embedding/0002.npy").shape[0], 0), np.float32),
        ),
        "sv_embedding/0002.npy",
        "expected a 2-D float array, got shape (",
    ),
    "npy header promising 10^9 rows": (
        lambda r: header_lies(r / "sv_embedding/0001.npy"),
        "sv_embedding/0001.npy",
        "truncated or padded",
    ),
    "not UTF-8": (
        lambda r: (r / "relation.json").write_bytes('{"character_list": ["林晚"]}'.encode("gbk")),
        "relation.json",
        "not UTF-8",
    ),
    "lone surrogate escape": (
        lambda r: text_field(r / "subtitle_data/0002.json", '"\\ud800 x"'),
        "subtitle_data/0002.json",
        "lone surrogate",
    ),
    "integer too long to convert": (
        lambda r: text_field(r / "subtitle_data/0002.json", "9" * 5000),
        "subtitle_data/0002.json",
        "malformed JSON",
    ),
    "text not a string": (
        lambda r: text_field(r / "subtitle_data/0002.json", "12"),
        "subtitle_data/0002.json",
        "object_list['2']: text must be a string",
    ),
    "mainbody not an object": (
        lambda r: rewrite_json(r / "subtitle_data/0001.json", lambda d: d.update(mainbody=7)),
        "subtitle_data/0001.json",
        "mainbody: mainbody must be an object",
    ),
    "role_name not a mapping": (
        lambda r: rewrite_json(r / "face_data/face_info.json", lambda d: d.update(role_name=["a"])),
        "face_info.json",
        "role_name must map names to names",
    ),
    "relation character not a name": (
        lambda r: rewrite_json(
            r / "relation.json", lambda d: d["character_list"].append({"name": "x"})
        ),
        "relation.json",
        "character_list[",
    ),
    "name mapping to a number": (
        lambda r: rewrite_json(
            r / "relation.json", lambda d: d.update(character_name_mapping={"护士-1": 3})
        ),
        "relation.json",
        "expected a name or null, got 3",
    ),
    "relationship_list not a list": (
        lambda r: rewrite_json(r / "relation.json", lambda d: d.update(relationship_list=5)),
        "relation.json",
        "relationship_list must be a list",
    ),
    "detailed captions not a list": (
        lambda r: rewrite_json(r / "caption.json", lambda d: d[0].update(detailed_caption_list=3)),
        "caption.json",
        "detailed_caption_list must be a list",
    ),
    "episode 0000": (
        lambda r: shutil.copy(r / "subtitle_data/0001.json", r / "subtitle_data/0000.json"),
        "subtitle_data/0000.json",
        "numbered from 0001",
    ),
    "a huge gap in episode numbers": (
        lambda r: (r / "subtitle_data/0003.json").rename(r / "subtitle_data/9999.json"),
        "subtitle_data",
        "missing 0003, 0004, 0005, 0006, 0007, 0008, 0009, 0010, 0011, 0012 and 9986 more",
    ),
    "broken symlink": (
        lambda r: (
            (r / "subtitle_data/0002.json").unlink(),
            (r / "subtitle_data/0002.json").symlink_to(r / "nowhere.json"),
        ),
        "subtitle_data/0002.json",
        "file is missing (a broken symlink)",
    ),
    "symlink loop": (
        lambda r: (
            (r / "face_data/0001.json").unlink(),
            (r / "face_data/0001.json").symlink_to(r / "face_data/0001.json"),
        ),
        "face_data/0001.json",
        "cannot resolve the path",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malformed_file_exits_2_naming_file_and_reason(data_dir, case):
    corrupt, file_part, reason = REFUSED[case]
    corrupt(data_dir / DEMO)
    stderr = refused(data_dir)
    assert file_part in stderr and reason in stderr, stderr


def test_file_over_the_size_limit(data_dir):
    largest = max(
        (p for p in (data_dir / DEMO).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    limit_mb = (largest.stat().st_size - 1) / 2**20
    stderr = refused(data_dir, "--max-file-mb", f"{limit_mb:.10f}")
    assert "larger than the per-file limit" in stderr and "--max-file-mb" in stderr
    assert (
        series_info(
            data_dir, "--max-file-mb", f"{(largest.stat().st_size + 1) / 2**20:.10f}"
        ).returncode
        == 0
    )
    done = series_info(data_dir, "--max-file-mb", "0")
    assert done.returncode == 2 and "must be above 0" in done.stderr


def test_growing_file_is_read_no_further_than_the_limit(data_dir):
    """A file that reports a small size but yields more (a /proc-like file) stops at the limit."""
    from plugins.speaker_rec.series_files import DataDir

    path = data_dir / DEMO / "relation.json"
    files = DataDir(data_dir, ReadPolicy(max_file_bytes=100))
    with pytest.raises(SeriesError, match="larger than the per-file limit"):
        files.read_bytes(path)


def test_device_refused_by_name(data_dir):
    """A symlink to /dev/zero: refused as leading outside; when outside links are allowed, as a
    device."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    path = data_dir / DEMO / "caption.json"
    path.unlink()
    path.symlink_to("/dev/zero")
    assert "leads outside the data directory" in refused(data_dir)
    stderr = refused(data_dir, "--allow-outside-links")
    assert "caption.json" in stderr and "a character device, not a regular file" in stderr


def test_symlinks_out_of_the_data_dir_need_the_flag(data_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(data_dir / DEMO / "relation.json", outside / "relation.json")
    (data_dir / DEMO / "relation.json").symlink_to(outside / "relation.json")
    stderr = refused(data_dir)
    assert "relation.json: a symlink leads outside the data directory" in stderr
    assert "--allow-outside-links" in stderr
    assert series_info(data_dir, "--allow-outside-links").returncode == 0


def test_series_directory_linked_from_outside_needs_the_flag(tmp_path):
    shutil.copytree(DEMO_DIR / DEMO, tmp_path / "store" / DEMO)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / DEMO).symlink_to(tmp_path / "store" / DEMO)
    assert "leads outside the data directory" in refused(tmp_path / "data")
    assert series_info(tmp_path / "data", "--allow-outside-links").returncode == 0
    # a data dir that is itself a link is fine: only links out of it are refused
    (tmp_path / "link").symlink_to(tmp_path / "store")
    assert series_info(tmp_path / "link").returncode == 0


def test_symlinks_inside_the_data_dir_are_followed(data_dir):
    root = data_dir / DEMO
    shutil.move(root / "sv_embedding/0002.npy", data_dir / "0002.npy")
    (root / "sv_embedding/0002.npy").symlink_to(Path("..") / ".." / "0002.npy")
    done = series_info(data_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lines"] == len(load_series(DEMO, DEMO_DIR))


def test_hidden_files_are_ignored_with_a_warning(data_dir):
    root = data_dir / DEMO
    for part in ("subtitle_data", "sv_embedding", "face_data"):
        (root / part / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "subtitle_data" / "._0001.json").write_bytes(b"\x00\x05\x16\x07")
    done = series_info(data_dir)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["lines"] == len(load_series(DEMO, DEMO_DIR))
    assert (
        f"{root / 'subtitle_data'}: 2 hidden file(s) ignored: .DS_Store, ._0001.json"
        in summary["warnings"]
    )
    assert f"{root / 'sv_embedding'}: 1 hidden file(s) ignored: .DS_Store" in done.stderr
    assert len(summary["warnings"]) == 3


def test_byte_order_mark_is_accepted(data_dir):
    root = data_dir / DEMO
    files = [
        *sorted((root / "subtitle_data").glob("*.json")),
        *sorted((root / "face_data").glob("*.json")),
        root / "relation.json",
        root / "caption.json",
        root / "init_seeds_1pct.json",
    ]
    for path in files:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    series, reference = load_series(DEMO, data_dir), load_series(DEMO, DEMO_DIR)
    assert [line.text for line in series.lines] == [line.text for line in reference.lines]
    assert series.seeds() == reference.seeds() and series.warnings == []
    assert len(series.faces.names) == len(reference.faces.names)
    assert len(series.captions.detailed) == len(reference.captions.detailed)
    assert series_info(data_dir).returncode == 0


def test_seed_file_read_by_the_same_rules(data_dir):
    """prepare reads seeds lazily: a FIFO there exits 2 as well, and does not hang."""
    seeds = data_dir / DEMO / "init_seeds_1pct.json"
    seeds.unlink()
    os.mkfifo(seeds)
    cmd = [
        sys.executable,
        "-m",
        "tools.sr.prepare",
        "--data-dir",
        str(data_dir),
        "--series",
        DEMO,
        "--out",
        str(data_dir / "labels.json"),
        "--quiet",
    ]
    done = subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "init_seeds_1pct.json: a FIFO, not a regular file" in done.stderr
    assert not (data_dir / "labels.json").exists()


# --- a seeded generator of corruptions: the loader either loads or refuses by name -----------

ODD_VALUES = [
    None,
    0,
    -1,
    2**70,
    1.5,
    float("nan"),
    True,
    "",
    "x",
    "00:00:01.000",
    [],
    [1],
    {},
    {"0": {}},
    {"name": "x"},
    [[["a"]]],
]


def value_paths(value, prefix=()):
    """Paths into a JSON value: every key of the first 8 entries of each object and 5 of each
    list."""
    yield prefix
    if isinstance(value, dict):
        for key, child in list(value.items())[:8]:
            yield from value_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:5]):
            yield from value_paths(child, (*prefix, i))


def corrupt_one(path: Path, rng) -> str:
    """Damage one file: bytes cut, flipped or inserted, or (JSON) a value replaced or removed."""
    if path.suffix == ".npy" or rng.random() < 0.3:
        raw = bytearray(path.read_bytes())
        roll = rng.random()
        if roll < 0.3:
            del raw[rng.randrange(len(raw)) :]
        elif roll < 0.7:
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        else:
            at = rng.randrange(len(raw))
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        path.write_bytes(bytes(raw))
        return "bytes"
    data = json.loads(path.read_text(encoding="utf-8"))
    target = rng.choice(list(value_paths(data)))
    if not target:
        data = rng.choice(ODD_VALUES)
    else:
        parent = data
        for key in target[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[target[-1]]
        else:
            parent[target[-1]] = rng.choice(ODD_VALUES)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return f"value at {list(target)}"


def test_random_corruptions_load_or_refuse_by_name(tmp_path):
    rng = random.Random(15)
    files = sorted(
        p.relative_to(DEMO_DIR / DEMO) for p in (DEMO_DIR / DEMO).rglob("*") if p.is_file()
    )
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(100):
        data_dir = tmp_path / str(trial)
        shutil.copytree(DEMO_DIR / DEMO, data_dir / DEMO)
        relative = rng.choice(files)
        what = corrupt_one(data_dir / DEMO / relative, rng)
        try:
            series = load_series(DEMO, data_dir)
            series.seeds()
        except SeriesError as e:
            assert str(e.path).startswith(str(data_dir)), (relative, what, e)
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001 -- the point: nothing else may escape
            pytest.fail(f"trial {trial}: {relative} ({what}) raised {type(e).__name__}: {e}")
        else:
            assert series.embeddings.shape[0] == len(series)
            outcomes["loaded"] += 1
        shutil.rmtree(data_dir)
    assert min(outcomes.values()) >= 20, outcomes  # both outcomes are exercised
