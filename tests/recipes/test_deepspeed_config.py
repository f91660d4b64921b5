"""recipes/deepspeed/*.json go through the Hugging Face Trainer's own DeepSpeed config handling.

`llamafactory-cli train` hands the file to transformers, whose `HfTrainerDeepSpeedConfig` fills
every "auto" value from the training arguments and the model, and refuses values that contradict
them. DeepSpeed itself needs CUDA to install, so the parsing runs on accelerate's
`HfDeepSpeedConfig` (the class transformers builds on) with transformers' own filling methods:
every "auto" must be one the Trainer fills, and the recipes that name a config must name one that
exists.
"""

import json
from types import SimpleNamespace

import pytest
import yaml

from repo_paths import REPO_ROOT

RECIPES = sorted((REPO_ROOT / "recipes" / "deepspeed").glob("*.json"))
# transformers' methods that fill and check "auto" values (borrowed: their class needs deepspeed)
FILLERS = (
    "dtype",
    "is_auto",
    "fill_match",
    "fill_only",
    "trainer_config_process",
    "trainer_config_finalize",
)


def trainer_deepspeed_config(config: dict):
    from accelerate.utils.deepspeed import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    class Checked(HfDeepSpeedConfig):
        def __init__(self, config):
            super().__init__(config)
            self._dtype = None
            self.mismatches = []

    for name in FILLERS:
        if name in HfTrainerDeepSpeedConfig.__dict__:
            setattr(Checked, name, HfTrainerDeepSpeedConfig.__dict__[name])
    return Checked(config)


def test_there_are_deepspeed_configs():
    assert [path.name for path in RECIPES] == ["ds_z3_config.json"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_auto_is_filled_by_the_trainer(path, tmp_path):
    from transformers import TrainingArguments

    config = trainer_deepspeed_config(json.loads(path.read_text(encoding="utf-8")))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        max_grad_norm=0.5,
        report_to=[],
    )
    config.trainer_config_process(args)
    config.trainer_config_finalize(
        args, SimpleNamespace(config=SimpleNamespace(hidden_size=64)), 100
    )
    assert "auto" not in json.dumps(config.config), (
        f"{path.name}: an 'auto' the Trainer does not fill"
    )
    assert config.mismatches == []
    assert config.config["train_micro_batch_size_per_gpu"] == 2
    assert config.config["gradient_accumulation_steps"] == 4
    assert config.config["gradient_clipping"] == 0.5
    assert config.config["zero_optimization"]["reduce_bucket_size"] == 64 * 64


def test_the_z3_config_is_zero3_and_saves_whole_weights():
    config = trainer_deepspeed_config(
        json.loads((REPO_ROOT / "recipes/deepspeed/ds_z3_config.json").read_text())
    )
    assert config.is_zero3()
    assert config.get_value("zero_optimization.stage3_gather_16bit_weights_on_model_save") is True


def test_recipes_name_existing_deepspeed_configs():
    named = {}
    for recipe in sorted((REPO_ROOT / "recipes").glob("*/*.yaml")):
        value = (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("deepspeed")
        if value:
            named[recipe.name] = value
    assert named, "no recipe names a DeepSpeed config"
    for recipe, value in named.items():
        assert (REPO_ROOT / value).is_file(), f"{recipe}: deepspeed: {value} does not exist"
