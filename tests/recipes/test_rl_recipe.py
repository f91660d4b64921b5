"""recipes/rl/speaker_rec_grpo.yaml, composed by verl's own Hydra config and checked by verl's own
validation.

The recipe names verl's config package on its Hydra search path and composes on `ppo_trainer`, so
composing it from recipes/rl is what `python -m verl.trainer.main_ppo --config-path recipes/rl
--config-name speaker_rec_grpo` does; one test runs exactly that command (`--cfg job` prints the
composed config instead of training). The composed config then goes through main_ppo's
`validate_config` and verl's dataclass conversion of each section, which is where a renamed or
mistyped key fails on a cluster. The published values are asserted one by one.
"""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from plugins.speaker_rec.protocol import TOOL_NAMES
from repo_paths import REPO_ROOT
from rewards.speaker_rec import Penalties

RECIPE_DIR = REPO_ROOT / "recipes" / "rl"
RECIPE = "speaker_rec_grpo"
# What this module checks (tests/recipes/test_every_recipe_is_checked.py reads it).
RECIPES = [RECIPE_DIR / f"{RECIPE}.yaml"]
GOOD_ROLLOUT = (
    '<think>\n先听声纹。\n</think>\n\n<tool_call>\n{"name": "audio_sim", "arguments": '
    "{}}\n</tool_call>\nuser\n<tool_response>\n1. 李春: 0.912\n</tool_response>\nassistant\n"
    "<think>\n是他。\n</think>\n\n<answer>李春</answer>"
)
GROUND_TRUTH = {
    "truth": "李春",
    "candidates": ["李春", "王秀", "其他"],
    "other": "其他",
    "open_set": False,
}


def compose_recipe(overrides: list[str] = ()):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(RECIPE_DIR), version_base=None):
        return compose(config_name=RECIPE, overrides=list(overrides))


@pytest.fixture(scope="module")
def config():
    return compose_recipe()


def test_header_names_the_make_target_and_where_the_values_come_from():
    text = (RECIPE_DIR / f"{RECIPE}.yaml").read_text(encoding="utf-8")
    header = " ".join(
        line for line in text.splitlines()[: text.splitlines().index("")] if line.startswith("#")
    )
    assert "make rl" in header
    assert "DESIGN §11" in header and "published" in header
    assert "presence/frequency penalty" in header, (
        "the published settings verl cannot express are named"
    )


def test_published_grpo_setting(config):
    assert config.algorithm.adv_estimator == "grpo"
    assert config.algorithm.use_kl_in_reward is False
    actor = config.actor_rollout_ref.actor
    assert (actor.optim.lr, actor.optim.lr_warmup_steps) == (1e-6, 10)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 1e-4, "low_var_kl")
    assert actor.entropy_coeff == 0
    assert actor.ppo_mini_batch_size == 12
    assert (actor.fsdp_config.param_offload, actor.fsdp_config.optimizer_offload) == (True, True)
    assert config.actor_rollout_ref.ref.fsdp_config.param_offload is True
    assert config.actor_rollout_ref.model.path == "runs/chun_jiang/sft-out"
    assert (
        config.data.train_batch_size,
        config.data.max_prompt_length,
        config.data.max_response_length,
    ) == (12, 12288, 4096)
    assert (config.data.train_files, config.data.val_files) == (
        "runs/chun_jiang/rl/train.parquet",
        "runs/chun_jiang/rl/val.parquet",
    )
    assert config.trainer.total_epochs == 2


def test_rollout_is_multi_turn_hermes_with_our_tools(config):
    rollout = config.actor_rollout_ref.rollout
    assert (rollout.name, rollout.mode, rollout.n) == ("vllm", "async", 8)
    assert (rollout.temperature, rollout.top_p) == (0.6, 0.95)
    assert (rollout.prompt_length, rollout.response_length) == (12288, 4096), (
        "follow data.max_*_length"
    )
    multi_turn = rollout.multi_turn
    assert (multi_turn.enable, multi_turn.format, multi_turn.max_assistant_turns) == (
        True,
        "hermes",
        15,
    )
    assert multi_turn.max_tool_response_length == 2048
    assert rollout.agent.default_agent_loop == "tool_agent"
    assert multi_turn.tool_config_path == "recipes/rl/tools.yaml"
    assert config.data.tool_config_path == "recipes/rl/tools.yaml", (
        "the dataset sees the same tools"
    )


def test_tool_config_builds_one_adapter_per_tool_with_verls_loader(config):
    from verl.tools.tool_registry import initialize_tools_from_config

    from plugins.speaker_rec.verl_tool import SpeakerRecTool

    path = REPO_ROOT / config.actor_rollout_ref.rollout.multi_turn.tool_config_path
    assert path.is_file()
    tools = initialize_tools_from_config(str(path))
    assert [tool.name for tool in tools] == list(TOOL_NAMES)
    assert all(isinstance(tool, SpeakerRecTool) for tool in tools)


def test_reward_is_ours_with_its_documented_defaults(config, monkeypatch):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    function = config.reward.custom_reward_function
    assert (function.path, function.name) == ("rewards/speaker_rec.py", "compute_score")
    assert dict(function.reward_kwargs) == dataclasses.asdict(Penalties()), (
        "the recipe spells out the defaults"
    )

    monkeypatch.chdir(
        REPO_ROOT
    )  # verl resolves the path against the working directory, as in a Ray job
    score = get_custom_reward_fn(config)
    result = score(
        data_source="dramakit/speaker_rec",
        solution_str=GOOD_ROLLOUT,
        ground_truth=GROUND_TRUTH,
        extra_info={"protocol": "hermes"},
    )
    assert (result["score"], result["turns"]) == (1.0, 2)

    stricter = get_custom_reward_fn(
        compose_recipe(["reward.custom_reward_function.reward_kwargs.free_turns=1"])
    )
    assert stricter(
        data_source="dramakit/speaker_rec", solution_str=GOOD_ROLLOUT, ground_truth=GROUND_TRUTH
    )["score"] == pytest.approx(0.9)


def test_verl_validation_accepts_the_recipe_and_its_sections_convert(config):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    assert need_reference_policy(config), "the KL loss needs the reference model"
    with pytest.warns(UserWarning, match="Disabled critic"):
        assert not need_critic(config), "GRPO has no critic"
    validate_config(config, use_reference_policy=True, use_critic=False)

    rollout = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    assert (rollout.multi_turn.max_assistant_turns, rollout.multi_turn.format, rollout.n) == (
        15,
        "hermes",
        8,
    )
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    assert (actor.optim.lr, actor.optim.lr_warmup_steps, actor.kl_loss_coef) == (1e-6, 10, 1e-4)
    assert omega_conf_to_dataclass(config.algorithm).adv_estimator == "grpo"


def test_verl_validation_fails_without_the_dynamic_batch_setting_the_recipe_relies_on():
    from hydra.errors import InstantiationException
    from verl.utils.config import validate_config

    # use_dynamic_bsz is why the recipe sets no micro-batch size; verl refuses the recipe without
    # it.
    broken = compose_recipe(["actor_rollout_ref.actor.use_dynamic_bsz=false"])
    with pytest.raises(
        InstantiationException, match="Please set at least one of 'actor.ppo_micro_batch_size'"
    ):
        validate_config(broken, use_reference_policy=True, use_critic=False)


@pytest.mark.slow
def test_main_ppo_composes_the_recipe_from_the_command_line(tmp_path):
    model = tmp_path / "model"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            "--config-path",
            str(RECIPE_DIR),
            "--config-name",
            RECIPE,
            "--cfg",
            "job",
            "--resolve",
            f"actor_rollout_ref.model.path={model}",
            "reward.custom_reward_function.reward_kwargs.lambda_dup=0.5",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load(proc.stdout)
    assert config["actor_rollout_ref"]["model"]["path"] == str(model)
    assert config["reward"]["custom_reward_function"] == {
        "path": "rewards/speaker_rec.py",
        "name": "compute_score",
        "reward_kwargs": {"lambda_turns": 0.1, "lambda_dup": 0.5, "free_turns": 5},
    }
    assert (
        config["actor_rollout_ref"]["rollout"]["multi_turn"]["tool_config_path"]
        == "recipes/rl/tools.yaml"
    )
    assert config["algorithm"]["adv_estimator"] == "grpo"


def test_the_recipe_logs_to_tensorboard_which_the_launcher_points_at_the_run(config, tmp_path):
    from tools.sr.rl import runtime_env

    assert list(config.trainer.logger) == ["console", "tensorboard"]
    env = runtime_env("http://127.0.0.1:1", tmp_path / "rl-out")["env_vars"]
    assert env["TENSORBOARD_DIR"] == str(tmp_path / "rl-out" / "tensorboard")
