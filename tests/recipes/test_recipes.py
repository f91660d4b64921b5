"""Every LLaMA-Factory recipe parses with LLaMA-Factory's own argument parser, value for value.

`get_train_args` is what `llamafactory-cli train` calls: strict dataclass parsing, so an unknown or
renamed key fails here instead of on a GPU cluster. Each recipe is parsed with its model swapped for
the tiny model and its output_dir for a temp folder; then every other key must come back equal to
the YAML, so a recipe cannot rot. New files under the folders in RECIPE_DIRS are picked up
automatically.

On CPU two kinds of keys are swapped before parsing, because transformers refuses them at parse
time without a GPU: mixed precision (`bf16`, `fp16` -> false) and DeepSpeed (the key is dropped).
4-bit quantization needs no swap: `quantization_bit` and friends parse on CPU (bitsandbytes and CUDA
are needed only when the model loads), so QLoRA recipes are checked with quantization on.
"""

import enum

import pytest
import yaml

from repo_paths import REPO_ROOT

RECIPE_DIRS = ("recipes/sft", "recipes/roleplay")
RECIPES = sorted(path for folder in RECIPE_DIRS for path in (REPO_ROOT / folder).glob("*.yaml"))
# Keys replaced for every recipe: they name things only a real run has.
SWAPPED = ("model_name_or_path", "output_dir")
# Keys the CPU parser refuses (see the module docstring) and the value each gets instead.
CPU_SWAPS = {"bf16": False, "fp16": False}
CPU_DROPS = ("deepspeed",)


def _normalise(key, parsed, expected):
    """Bring a parsed value and the YAML's into the same terms: enums to their value, comma lists
    to lists, and `report_to: none` to the empty list transformers turns it into."""
    if isinstance(parsed, enum.Enum):
        parsed = parsed.value
    if isinstance(parsed, list) and isinstance(expected, str):
        expected = [item.strip() for item in expected.split(",")]
    if key == "report_to" and expected == ["none"]:
        expected = []
    return parsed, expected


def _parsed_value(parsed_args, key):
    for group in parsed_args:
        if hasattr(group, key):
            return getattr(group, key)
    raise AssertionError(f"{key} is in no argument dataclass")


@pytest.fixture(scope="module")
def get_train_args():
    from llamafactory.hparams import get_train_args

    return get_train_args


def test_recipe_folders_hold_recipes():
    assert any(path.parent.name == "roleplay" for path in RECIPES)
    assert any(path.parent.name == "sft" for path in RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_recipe_header_names_its_make_target_and_sections_follow_llamafactory_examples(recipe):
    lines = recipe.read_text(encoding="utf-8").splitlines()
    header = " ".join(line for line in lines[: lines.index("")] if line.startswith("#"))
    assert "make " in header, f"{recipe.name}: the header comment names no make target"
    sections = [line for line in lines if line.startswith("### ")]
    assert sections[:5] == ["### model", "### method", "### dataset", "### output", "### train"], (
        sections
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_recipe_parses_with_llamafactory_and_keeps_every_value(
    recipe, get_train_args, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.delenv("ALLOW_EXTRA_ARGS", raising=False)  # strict parsing: unknown keys fail
    config = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    for key in SWAPPED:
        assert key in config, f"{recipe.name} has no {key}"
    args = {**config, "model_name_or_path": str(tiny_model), "output_dir": str(tmp_path / "out")}
    args.update({key: value for key, value in CPU_SWAPS.items() if key in config})
    for key in CPU_DROPS:
        args.pop(key, None)

    parsed = get_train_args(args)

    checked = {
        key: value for key, value in config.items() if key not in (*SWAPPED, *CPU_SWAPS, *CPU_DROPS)
    }
    mismatches = []
    for key, expected in checked.items():
        value, expected = _normalise(key, _parsed_value(parsed, key), expected)
        if value != (pytest.approx(expected) if isinstance(expected, float) else expected):
            mismatches.append(f"{key}: parsed {value!r}, YAML {expected!r}")
    assert not mismatches, f"{recipe.name}: " + "; ".join(mismatches)


@pytest.mark.parametrize(
    "recipe",
    [r for r in RECIPES if "cpu" not in r.stem],
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_gpu_recipes_log_to_tensorboard(recipe):
    """A person can look at a GPU run without a tracker account; other trackers are one ARGS
    away."""
    assert yaml.safe_load(recipe.read_text(encoding="utf-8"))["report_to"] == "tensorboard"
