"""Acceptance: the datasets tools.roleplay.rolebench and tools.roleplay.character write train with
stock
`llamafactory-cli train`, and LLaMA-Factory keeps exactly the rows the converters report.

All three datasets (RoleBench, character voice lines, character settings) go into one run-local
dataset_dir and train once, 2 steps of the tiny model, on "a,b,c". LLaMA-Factory's loader gives each
dataset's count on its own; the run's `num_examples` (after tokenization and its filter) must equal
their sum. The settings count is derived explicitly: 5 x the converter's rows, the published x5
weighting expressed as `num_samples`.
Real data from ../shared/data is used when present, the hand-written fixtures otherwise.
"""

import json
from pathlib import Path

import pytest

from llamafactory_run import loaded_examples, run_sft
from repo_paths import REPO_ROOT
from tools.roleplay import character, rolebench

TESTS = REPO_ROOT / "tests"
SHARED = TESTS.parents[1] / "shared" / "data"
SETTINGS_WEIGHT = 5  # the published x5 and the converter's default


def _rolebench_args() -> list:
    real = SHARED / "rolebench-zh"
    if real.is_dir():
        return [
            "--inputs",
            real / "rolebench-zh_role_specific_test.jsonl",
            "--profiles",
            real / "profiles-zh_desc.json",
            "--roles",
            "李白",
        ]
    assets = TESTS / "assets" / "rolebench"
    return [
        "--inputs",
        assets / "records_zh.jsonl",
        "--profiles",
        assets / "profiles_zh.json",
        "--skip-broken",
    ]


def _character_args() -> list:
    real = SHARED / "genshin"
    if real.is_dir():
        return [
            "--voice-lines",
            real / "speaker" / "furina" / "dialogue_data_world.json",
            "--settings",
            real / "settings_furina.json",
        ]
    assets = TESTS / "assets" / "character"
    return ["--voice-lines", assets / "voice_lines.json", "--settings", assets / "settings.json"]


@pytest.fixture(scope="module")
def roleplay_data(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The converted datasets' folder and each dataset's expected example count."""
    out = tmp_path_factory.mktemp("roleplay-data")
    assert (
        rolebench.main(["--out-dir", str(out), "--name", "rb", *map(str, _rolebench_args())]) == 0
    )
    assert (
        character.main(["--out-dir", str(out), "--name", "ch", *map(str, _character_args())]) == 0
    )

    def records_out(name: str) -> int:
        return json.loads((out / f"{name}.report.json").read_text(encoding="utf-8"))["records_out"]

    expected = {
        "rb": records_out("rb"),
        "ch_voice": records_out("ch_voice"),
        "ch_settings": SETTINGS_WEIGHT * records_out("ch_settings"),
    }
    return out, expected


@pytest.mark.slow
def test_converted_datasets_train_together_and_llamafactory_keeps_every_row(
    roleplay_data, tiny_model, tmp_path
):
    dataset_dir, expected = roleplay_data
    assert loaded_examples(tiny_model, dataset_dir, list(expected)) == expected
    run = run_sft(tiny_model, dataset_dir, ",".join(expected), tmp_path / "sft", max_steps=2)
    run.assert_trained(steps=2)
    # Tokenization can only drop examples: an unchanged total means no dataset lost any.
    assert run.num_examples == sum(expected.values())
