"""The GPU recipes as far as a machine without GPUs can take them, in whatever stack runs the tests.

- Each GPU recipe's data, made by our converters, loads through LLaMA-Factory's own pipeline with
  the recipe's dataset, template, cutoff and masking, and renders: rows with trained tokens, in the
  template's chat markup. (Everywhere LLaMA-Factory is installed: the CPU and the cuda-sft stack.)
- In an environment with DeepSpeed (the cuda-sft stack, `make check-gpu-envs`), the full SFT recipe
  with its ZeRO-3 JSON parses through LLaMA-Factory and transformers' DeepSpeed config in a
  one-process distributed setup (as torchrun starts it), and stops exactly where a GPU is required:
  bf16. bitsandbytes imports there too.
Tests for recipe keys value by value are in tests/recipes/test_recipes.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repo_paths import REPO_ROOT
from tools.common.ports import free_port
from tools.roleplay import character, rolebench
from tools.sr import export, split, traces

TESTS = REPO_ROOT / "tests"
IGNORE_INDEX = -100
GPU_RECIPES = [
    "sft/speaker_rec_full.yaml",
    "sft/speaker_rec_lora.yaml",
    "roleplay/rolebench_lora.yaml",
    "roleplay/character_qlora.yaml",
]
# A handful of rows is enough to prove loading and rendering.
MAX_SAMPLES = 8


@pytest.fixture(scope="module")
def recipe_data(demo_labels, tmp_path_factory) -> Path:
    """One dataset_dir holding the datasets the GPU recipes name, written by our converters."""
    out = tmp_path_factory.mktemp("gpu-recipe-data")
    common = [
        "--series",
        "chun_jiang",
        "--data-dir",
        str(REPO_ROOT / "data" / "demo"),
        "--labels",
        str(demo_labels),
    ]
    assert split.main([*common, "--out", str(out / "split.json"), "--ratios", "sft=1"]) == 0
    assert (
        traces.main(
            [*common, "--out", str(out / "traces.jsonl"), "--teacher", "oracle", "--limit", "12"]
        )
        == 0
    )
    assert (
        export.main(
            [
                "sft",
                "--traces",
                str(out / "traces.jsonl"),
                "--split",
                str(out / "split.json"),
                "--format",
                "alpaca",
                "--out-dir",
                str(out),
                "--name",
                "speaker_rec_sft_alpaca",
            ]
        )
        == 0
    )
    assets = TESTS / "assets"
    assert (
        rolebench.main(
            [
                "--out-dir",
                str(out),
                "--name",
                "rolebench_zh",
                "--inputs",
                str(assets / "rolebench" / "records_zh.jsonl"),
                "--skip-broken",  # the asset holds one broken line on purpose
                "--profiles",
                str(assets / "rolebench" / "profiles_zh.json"),
            ]
        )
        == 0
    )
    assert (
        character.main(
            [
                "--out-dir",
                str(out),
                "--name",
                "furina",
                "--voice-lines",
                str(assets / "character" / "voice_lines.json"),
                "--settings",
                str(assets / "character" / "settings.json"),
            ]
        )
        == 0
    )
    return out


def _recipe_args(recipe: str, model: Path, data: Path, out: Path) -> dict:
    config = yaml.safe_load((REPO_ROOT / "recipes" / recipe).read_text(encoding="utf-8"))
    config.update(
        model_name_or_path=str(model),
        output_dir=str(out),
        dataset_dir=str(data),
        bf16=False,
        max_samples=MAX_SAMPLES,
        preprocessing_num_workers=1,
        overwrite_cache=True,
        report_to="none",
    )
    config.pop("deepspeed", None)
    return config


@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_gpu_recipe_data_loads_and_renders_with_its_template(
    recipe, recipe_data, tiny_model, tmp_path
):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        _recipe_args(recipe, tiny_model, recipe_data, tmp_path / "out")
    )
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    rows = list(
        get_dataset(
            template, model_args, data_args, training_args, stage="sft", **tokenizer_module
        )["train_dataset"]
    )
    datasets = data_args.dataset
    assert len(rows) >= min(len(datasets), MAX_SAMPLES), f"{recipe}: {len(rows)} rows"
    for row in rows:
        assert len(row["input_ids"]) <= data_args.cutoff_len
        trained = [t for t in row["labels"] if t != IGNORE_INDEX]
        assert trained, f"{recipe}: a row with nothing to train on"
    text = tokenizer.decode(rows[0]["input_ids"])
    assert "<|im_start|>user" in text and "<|im_start|>assistant" in text, text[:300]
    if "speaker_rec" in recipe:  # the model learns the protocol's turns
        trained = [
            tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) for row in rows
        ]
        assert all("<tool_call>" in turn or "<answer>" in turn for turn in trained), trained


_DEEPSPEED_PARSE = """
import json, sys, yaml
from llamafactory.hparams import get_train_args
config = json.loads(sys.argv[1])
try:
    _, _, training_args, _, _ = get_train_args(config)
except ValueError as e:
    print(json.dumps({"error": str(e)}))
else:
    ds = training_args.hf_deepspeed_config.config
    print(json.dumps({"deepspeed": training_args.deepspeed, \
"stage": ds["zero_optimization"]["stage"],
                      "distributed": str(training_args.parallel_mode)}))
"""


def _parse_distributed(config: dict) -> dict:
    """get_train_args in a one-process distributed setup, as torchrun starts it, in a fresh
    process."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LOCAL_RANK": "0",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _DEEPSPEED_PARSE, json.dumps(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_full_recipe_with_zero3_parses_up_to_the_gpu(tiny_model, tmp_path):
    pytest.importorskip(
        "deepspeed",
        reason="DeepSpeed is in the cuda-sft stack (make check-gpu-envs), not the CPU one",
    )
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the cuda-sft stack")
    config = yaml.safe_load(
        (REPO_ROOT / "recipes/sft/speaker_rec_full.yaml").read_text(encoding="utf-8")
    )
    assert config["deepspeed"] == "recipes/deepspeed/ds_z3_config.json"
    config.update(model_name_or_path=str(tiny_model), output_dir=str(tmp_path / "out"))

    as_shipped = _parse_distributed(config)
    assert as_shipped == {
        "error": "Your setup doesn't support bf16/gpu. You need to assign use_cpu if you want "
        "to train the model on CPU."
    }
    without_gpu_precision = _parse_distributed({**config, "bf16": False})
    assert without_gpu_precision == {
        "deepspeed": "recipes/deepspeed/ds_z3_config.json",
        "stage": 3,
        "distributed": "ParallelMode.DISTRIBUTED",
    }
