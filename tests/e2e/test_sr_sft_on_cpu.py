"""Acceptance of the SR SFT data on a real drama: oracle trajectories from ren_shi_jian, exported in
both formats, train the tiny model with stock `llamafactory-cli train`; LLaMA-Factory keeps every
exported record, and its tokenised labels cover assistant turns only."""

import json
from pathlib import Path

import pytest

from llamafactory_run import run_sft
from repo_paths import REPO_ROOT
from tools.sr import export, prepare, split, traces

DRAMAS = REPO_ROOT.parent / "shared" / "data" / "dramasr"
SERIES = "ren_shi_jian"
RECIPE = REPO_ROOT / "recipes" / "sft" / "speaker_rec_cpu.yaml"
IGNORE_INDEX = -100

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory) -> tuple[Path, Path]:
    if not (DRAMAS / SERIES).is_dir():
        pytest.skip(
            f"../shared/data/dramasr/{SERIES} is absent (real data is read in place, "
            "never committed)"
        )
    work = tmp_path_factory.mktemp("sr_sft")
    common = ["--series", SERIES, "--data-dir", str(DRAMAS)]
    assert prepare.main([*common, "--out", str(work / "labels.json"), "--quiet"]) == 0
    assert (
        split.main(
            [
                *common,
                "--labels",
                str(work / "labels.json"),
                "--out",
                str(work / "split.json"),
                "--ratios",
                "sft=1",
            ]
        )
        == 0
    )
    assert (
        traces.main(
            [
                *common,
                "--labels",
                str(work / "labels.json"),
                "--out",
                str(work / "traces.jsonl"),
                "--teacher",
                "oracle",
                "--limit",
                "40",
            ]
        )
        == 0
    )
    return work / "traces.jsonl", work / "split.json"


def tokenised_rows(model: Path, dataset_dir: Path, dataset: str) -> tuple[list[dict], object]:
    """The training rows exactly as LLaMA-Factory's own pipeline tokenises them for this recipe."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {
        "model_name_or_path": str(model),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": dataset,
        "dataset_dir": str(dataset_dir),
        "template": "qwen3_nothink",
        "cutoff_len": 4096,
        "mask_history": True,
        "output_dir": str(dataset_dir / "unused"),
        "preprocessing_num_workers": 1,
        "overwrite_cache": True,
        "report_to": "none",
    }
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(
        template, model_args, data_args, training_args, stage="sft", **tokenizer_module
    )
    return list(module["train_dataset"]), tokenizer_module["tokenizer"]


def label_segments(row: dict, tokenizer) -> list[str]:
    """Decoded runs of label tokens that are trained on (not IGNORE_INDEX)."""
    segments, current = [], []
    for token in row["labels"]:
        if token == IGNORE_INDEX:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(token)
    if current:
        segments.append(current)
    return [tokenizer.decode(s, skip_special_tokens=True).strip() for s in segments]


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt"])
def test_llamafactory_trains_on_every_exported_record_and_only_on_assistant_turns(
    trajectories, tiny_model, tmp_path, fmt
):
    traces_path, split_path = trajectories
    out_dir, name = tmp_path / "data", f"{SERIES}_{fmt}"
    assert (
        export.main(
            [
                "sft",
                "--traces",
                str(traces_path),
                "--split",
                str(split_path),
                "--format",
                fmt,
                "--out-dir",
                str(out_dir),
                "--name",
                name,
            ]
        )
        == 0
    )
    report = json.loads((out_dir / f"{name}.report.json").read_text(encoding="utf-8"))
    rows = json.loads((out_dir / f"{name}.json").read_text(encoding="utf-8"))
    assert len(rows) == report.get("rows_out", report["records_out"]) > 0

    run = run_sft(
        tiny_model,
        out_dir,
        name,
        tmp_path / "out",
        max_steps=2,
        overrides=("cutoff_len=4096", "mask_history=true"),
    )
    run.assert_trained(2)
    assert run.num_examples == len(rows), "LLaMA-Factory dropped exported records"

    tokenised, tokenizer = tokenised_rows(tiny_model, out_dir, name)
    assert len(tokenised) == len(rows)
    for exported, row in zip(rows, tokenised, strict=True):
        if fmt == "alpaca":
            trained_on = [exported["output"]]
            never = [exported["instruction"], exported.get("system") or ""]
        else:
            turns = exported["conversations"]
            trained_on = [t["value"] for t in turns if t["from"] in ("gpt", "function_call")]
            never = [t["value"] for t in turns if t["from"] in ("human", "observation")]
        segments = label_segments(row, tokenizer)
        assert segments, "every row must train on something"
        for segment in segments:
            assert any(
                segment in text.strip() or text.strip() in segment for text in trained_on if text
            ), segment
            assert not any(len(text) > 20 and text.strip() in segment for text in never), segment
