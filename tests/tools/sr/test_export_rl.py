"""`tools.sr.export rl` on the demo series, read back through verl's own RLHFDataset: row count, the
prompt SFT and eval use, ground truth for closed and open-set lines, the tools_kwargs the tool
adapter needs, one schema for every series, and bad inputs refused with nothing written."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from plugins.speaker_rec.correctness import is_open_truth
from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import TOOL_NAMES
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.sr import export, export_rl, split, split_manifest

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"
TOOLS_YAML = REPO_ROOT / "recipes" / "rl" / "tools.yaml"
# With blocks of 40 lines and 30 lines dropped on each side of a boundary, this seed and these
# ratios give both RL parts lines on the 212-line demo series (60 and 50).
SPLIT_ARGS = ["--block-lines", "40", "--ratios", "rl_train=0.6,rl_val=0.4", "--seed", "1"]


def run_export(
    labels: Path, split_path: Path, out_dir: Path, *extra: str, data_dir: Path = DATA_DIR
) -> int:
    return export.main(
        [
            "rl",
            "--series",
            SERIES,
            "--data-dir",
            str(data_dir),
            "--labels",
            str(labels),
            "--split",
            str(split_path),
            "--out-dir",
            str(out_dir),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def demo_rl(demo_labels, tmp_path_factory):
    """A split of the demo series and its RL export: (split path, out dir)."""
    root = tmp_path_factory.mktemp("export-rl")
    split_path = root / "split.json"
    assert (
        split.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(demo_labels),
                "--out",
                str(split_path),
                *SPLIT_ARGS,
            ]
        )
        == 0
    )
    assert run_export(demo_labels, split_path, root / "rl") == 0
    return split_path, root / "rl"


@pytest.fixture(scope="module")
def verl_train_set(demo_rl, tiny_model, tmp_path_factory):
    """train.parquet as verl's RLHFDataset loads it, configured like the recipe's data section."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 12288,
            "return_raw_chat": True,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "truncation": "error",
            "cache_dir": str(tmp_path_factory.mktemp("verl-cache")),
            "tool_config_path": str(TOOLS_YAML) if TOOLS_YAML.is_file() else None,
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    return RLHFDataset(str(demo_rl[1] / "train.parquet"), tokenizer, config)


def test_verl_reads_every_row_with_our_prompt_and_ground_truth(
    demo_rl, demo_labels, verl_train_set
):
    split_path, out_dir = demo_rl
    manifest = split_manifest.read_split(split_path)
    report = json.loads((out_dir / export_rl.REPORT_NAME).read_text())["train"]
    dropped_in_part = report["dropped"].get("no ground truth", 0)
    assert len(verl_train_set) == manifest["parts"]["rl_train"]["lines"] - dropped_in_part == 60
    assert report["records_out"] == 60
    assert report["records_in"] == report["records_out"] + sum(report["dropped"].values())
    if TOOLS_YAML.is_file():  # verl measured the prompt with our tool schemas
        assert sorted(t["function"]["name"] for t in verl_train_set.tool_schemas) == sorted(
            TOOL_NAMES
        )

    series = load_series(SERIES, DATA_DIR)
    labels = read_labels(demo_labels, series)
    env = SpeakerEnv(series, labels.lines, protocol="hermes", known=labels.characters)
    items = [verl_train_set[i] for i in range(len(verl_train_set))]
    lines = [item["extra_info"]["line"] for item in items]
    assert lines == sorted(lines) and all(
        split_manifest.part_contains(manifest, "rl_train", i) for i in lines
    )
    for item in items:
        index = item["extra_info"]["line"]
        line = series.lines[index]
        assert (
            item["data_source"] == "dramakit/speaker_rec"
            and item["ability"] == "speaker_recognition"
        )
        assert item["agent_name"] == "tool_agent"  # the column verl's agent loop reads
        assert item["raw_prompt"] == env.prompt(index)
        assert item["index"] == index  # verl's own index column comes from extra_info.index
        assert item["extra_info"] | {"tools_kwargs": None} == {
            "series": SERIES,
            "line": index,
            "index": index,
            "episode": line.episode,
            "split": "train",
            "sample_type": labels.lines[index].sample_type,
            "protocol": "hermes",
            "language": "zh",
            "max_turns": 15,
            "tool_selection": list(TOOL_NAMES),
            "tools_kwargs": None,
            "agent_name": "tool_agent",
        }
        assert item["tools_kwargs"] == {
            name: {"create_kwargs": {"series": SERIES, "line": index, "protocol": "hermes"}}
            for name in TOOL_NAMES
        }
        truth = item["reward_model"]["ground_truth"]
        assert item["reward_model"]["style"] == "rule"
        assert truth["candidates"] == labels.lines[index].names and truth["other"] == "其他"
        assert truth["open_set"] == is_open_truth(line.speaker, line.kind, labels.characters)
        assert truth["truth"] == (line.speaker or "其他")
    by_line = {item["extra_info"]["line"]: item["reward_model"]["ground_truth"] for item in items}
    # a closed truth (a seeded character) and an open-set one (an unnamed role), by value
    assert by_line[111] == {
        "truth": "林晚",
        "candidates": ["林晚", "陈屿", "其他"],
        "other": "其他",
        "open_set": False,
    }
    assert by_line[142] == {
        "truth": "茶客-1",
        "candidates": ["赵启明", "许曼", "林晚", "其他"],
        "other": "其他",
        "open_set": True,
    }


def test_same_schema_for_a_series_with_fewer_tools(demo_rl, demo_labels, tmp_path):
    """Without captions the video tools are not offered, yet the schema is the same; a line
    whose label was removed has no ground truth and is dropped with its reason."""
    split_path, out_dir = demo_rl
    data_dir = tmp_path / "data"
    shutil.copytree(
        DATA_DIR / SERIES, data_dir / SERIES, ignore=shutil.ignore_patterns("caption.json")
    )
    first = pq.read_table(out_dir / "train.parquet").to_pylist()[0]["extra_info"]
    episode_file = data_dir / SERIES / "subtitle_data" / f"{first['episode']:04d}.json"
    episode = json.loads(episode_file.read_text())
    local = load_series(SERIES, DATA_DIR).lines[first["line"]].local_index
    del episode["object_list"][str(local)]["character"]
    episode_file.write_text(json.dumps(episode, ensure_ascii=False))

    assert run_export(demo_labels, split_path, tmp_path / "rl", data_dir=data_dir) == 0
    for name in ("train", "val"):
        assert (
            pq.read_schema(tmp_path / "rl" / f"{name}.parquet")
            == pq.read_schema(out_dir / f"{name}.parquet")
            == export_rl.SCHEMA
        )
    rows = pq.read_table(tmp_path / "rl" / "train.parquet").to_pylist()
    assert {tuple(r["extra_info"]["tool_selection"]) for r in rows} == {
        ("audio_sim", "char_relation")
    }
    assert all(set(r["extra_info"]["tools_kwargs"]) == set(TOOL_NAMES) for r in rows)
    report = json.loads((tmp_path / "rl" / export_rl.REPORT_NAME).read_text())
    assert report["train"]["dropped"]["no ground truth"] == 1 and len(rows) == 59
    assert first["line"] not in {r["extra_info"]["line"] for r in rows}


def test_seeded_order_is_deterministic(demo_rl, demo_labels, tmp_path):
    split_path, out_dir = demo_rl
    lines = {}
    for run in ("a", "b"):
        assert run_export(demo_labels, split_path, tmp_path / run, "--seed", "3") == 0
        lines[run] = [
            r["line"]
            for r in pq.read_table(tmp_path / run / "train.parquet")["extra_info"].to_pylist()
        ]
    in_line_order = [
        r["line"] for r in pq.read_table(out_dir / "train.parquet")["extra_info"].to_pylist()
    ]
    assert lines["a"] == lines["b"] != in_line_order and sorted(lines["a"]) == in_line_order


def test_bad_inputs_fail_clearly_and_write_nothing(demo_rl, demo_labels, tmp_path, capsys):
    split_path, _ = demo_rl
    out = tmp_path / "rl"
    assert run_export(demo_labels, split_path, out, "--protocol", "tags") == 2
    assert "hermes" in capsys.readouterr().err
    assert run_export(demo_labels, tmp_path / "missing.json", out) == 2
    assert f"{tmp_path / 'missing.json'}: file is missing" in capsys.readouterr().err
    assert run_export(tmp_path / "missing-labels.json", split_path, out) == 2
    assert "missing-labels.json: file is missing" in capsys.readouterr().err
    no_val = tmp_path / "no_val.json"
    assert (
        split.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(demo_labels),
                "--out",
                str(no_val),
                "--block-lines",
                "40",
                "--ratios",
                "sft=0.5,rl_train=0.5",
            ]
        )
        == 0
    )
    assert run_export(demo_labels, no_val, out) == 2
    err = capsys.readouterr().err
    assert "split part rl_val has no line to export" in err and str(no_val) in err
    assert not out.exists()
