"""recipes/style/*.yaml parse with the style trainer's own loader (transformers'
TrainingArguments plus our StyleArguments), value for value, and unknown or untyped overrides
fail."""

import enum

import pytest
import yaml

from repo_paths import REPO_ROOT

RECIPES = sorted((REPO_ROOT / "recipes" / "style").glob("*.yaml"))
TINY_RECIPE = REPO_ROOT / "recipes" / "style" / "tiny_cpu.yaml"


def test_style_recipes_parse_with_training_arguments_value_for_value(tmp_path):
    from tools.style.train import StyleArguments, load_recipe

    assert {p.name for p in RECIPES} >= {"tiny_cpu.yaml", "qwen2.5_0.5b_instruct.yaml"}
    for recipe in RECIPES:
        config = yaml.safe_load(recipe.read_text(encoding="utf-8"))
        style, training = load_recipe(recipe, [f"output_dir={tmp_path / recipe.stem}"])
        for key, expected in config.items():
            if key == "output_dir":
                continue
            value = getattr(style if key in StyleArguments.__dataclass_fields__ else training, key)
            value = value.value if isinstance(value, enum.Enum) else value
            if key == "report_to":
                value, expected = value or ["none"], [expected]
            assert value == (
                pytest.approx(expected) if isinstance(expected, float) else expected
            ), f"{recipe.name}: {key}"


def test_recipe_overrides_are_typed_and_unknown_keys_fail(tmp_path):
    from tools.style.train import load_recipe

    style, training = load_recipe(
        TINY_RECIPE, ["learning_rate=2e-5", "class_weights=true", f"output_dir={tmp_path}"]
    )
    assert training.learning_rate == 2e-5 and style.class_weights is True
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\]"):
        load_recipe(TINY_RECIPE, ["learning_rat=1"])
    with pytest.raises(ValueError, match="not key=value"):
        load_recipe(TINY_RECIPE, ["epochs"])
