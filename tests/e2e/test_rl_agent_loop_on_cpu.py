"""One GRPO step's rollout and scoring on CPU: verl's own ToolAgentLoop, our adapter, our tool
server.

verl's `AgentLoopWorker` (the class verl runs as a Ray actor; here in-process) runs its registered
`tool_agent` loop over RL rows of the demo series built by tools.sr.export's own `row`, with the
config
composed from recipes/rl/speaker_rec_grpo.yaml (model switched to the tiny model) and the tools of
recipes/rl/tools.yaml, i.e. plugins.speaker_rec.verl_tool.SpeakerRecTool posting over HTTP to a real
`python -m plugins.speaker_rec.server` subprocess found through DRAMAKIT_TOOL_SERVER_URL. Only
generation is scripted (no GPU model here): a stand-in for verl's LLM server client returns the
token ids of hand-written assistant turns, one script per rollout. The rollouts are then scored by
our reward through verl's `RewardLoopWorker` (naive manager, custom reward loaded from the recipe)
and turned into advantages by the estimator the recipe names (`grpo`) from verl's core_algos.
"""

import asyncio
import copy

import numpy as np
import pytest

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.series import load_series

pytestmark = pytest.mark.slow

SERIES = "chun_jiang"
# One GRPO group per line: (script name, expected reward).
GROUPS = {
    "A": [("good", 1.0), ("wrong", 0.0), ("malformed", -1.0), ("duplicate", 0.75)],
    "B": [
        ("good with two tools", 1.0),
        ("answer before audio_sim", -1.0),
        ("wrong", 0.0),
        ("good", 1.0),
    ],
}


def tool_turn(name: str, think: str) -> str:
    return (
        f'<think>\n{think}\n</think>\n\n<tool_call>\n{{"name": "{name}", "arguments": '
        "{}}\n</tool_call>"
    )


def answer_turn(name: str, think: str) -> str:
    return f"<think>\n{think}\n</think>\n\n<answer>{name}</answer>"


def script(kind: str, truth: str, wrong: str) -> list[str]:
    """The assistant turns of one scripted rollout."""
    return {
        "good": [tool_turn("audio_sim", "先听声纹。"), answer_turn(truth, "声纹最像。")],
        "good with two tools": [
            tool_turn("audio_sim", "先听声纹。"),
            tool_turn("char_relation", "再看关系。"),
            answer_turn(truth, "两者都指向他。"),
        ],
        "wrong": [tool_turn("audio_sim", "先听声纹。"), answer_turn(wrong, "猜一个。")],
        "malformed": [
            '<think>\n先听声纹。\n</think>\n\n<tool_call>\n{"name": audio_sim}\n</tool_call>'
        ],
        "duplicate": [
            tool_turn("audio_sim", "先听声纹。"),
            tool_turn("audio_sim", "再听一次。"),
            answer_turn(truth, "还是他。"),
        ],
        "answer before audio_sim": [answer_turn(truth, "不用工具。")],
    }[kind]


class ScriptedGeneration:
    """Stands in for verl's LLM server client (the vLLM replicas): `generate` returns the next
    scripted assistant turn of the rollout, as token ids ending in the end-of-turn token, and
    records the context each turn was generated from. Rollouts are told apart by request id, which
    verl makes `det-<priority>` under rollout.full_determinism."""

    def __init__(self, tokenizer, scripts: list[list[str]]):
        self.tokenizer = tokenizer
        self.pending = {f"det-{i}": list(turns) for i, turns in enumerate(scripts)}
        self.contexts = {request_id: [] for request_id in self.pending}

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.contexts[request_id].append(self.tokenizer.decode(prompt_ids))
        text = self.pending[request_id].pop(0) + self.tokenizer.eos_token
        return TokenOutput(
            token_ids=self.tokenizer.encode(text, add_special_tokens=False), stop_reason="completed"
        )


@pytest.fixture(scope="module")
def demo_env(repo_root, demo_labels):
    series = load_series(SERIES, str(repo_root / "data" / "demo"))
    labels = read_labels(demo_labels, series)
    return SpeakerEnv(series, labels.lines, protocol="hermes", known=labels.characters), labels


def pick_lines(env: SpeakerEnv, labels, count: int) -> list[int]:
    """Lines with a closed truth among at least two named candidates, so a wrong answer exists."""
    from plugins.speaker_rec.correctness import is_open_truth

    picked = []
    for index in sorted(env.labels):
        line, names = env.series.lines[index], env.labels[index].names
        if (
            line.speaker in names
            and len(names) >= 3
            and not is_open_truth(line.speaker, line.kind, labels.characters)
        ):
            picked.append(index)
        if len(picked) == count:
            return picked
    raise AssertionError(f"the demo series has fewer than {count} suitable lines")


@pytest.fixture(scope="module")
def tool_server_url(repo_root, demo_labels, tmp_path_factory):
    from tools.common.ports import free_port
    from tools.common.process import running_server

    log_path = tmp_path_factory.mktemp("tool-server") / "server.log"
    args = ["--series", SERIES, "--labels", str(demo_labels), "--data-dir", "data/demo"]
    with running_server(args, port=free_port(), log_path=log_path) as (url, _):
        yield url


@pytest.fixture(scope="module")
def rollout(repo_root, tiny_model, demo_env, tool_server_url):
    """Run every scripted rollout through verl's agent loop worker, then score and normalise
    them."""
    from hydra import compose, initialize_config_dir
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from tools.sr.export_rl import row

    env, labels = demo_env
    with initialize_config_dir(config_dir=str(repo_root / "recipes" / "rl"), version_base=None):
        config = compose(
            config_name="speaker_rec_grpo",
            overrides=[
                f"actor_rollout_ref.model.path={tiny_model}",
                "actor_rollout_ref.rollout.full_determinism=true",
            ],
        )

    rows, scripts, expected, groups = [], [], [], []
    for group, index in zip(GROUPS, pick_lines(env, labels, len(GROUPS)), strict=True):
        truth = env.series.lines[index].speaker
        wrong = next(name for name in env.labels[index].names if name not in (truth, env.other))
        for kind, reward in GROUPS[group]:
            rows.append(row(env, labels, index, "train"))
            scripts.append(script(kind, truth, wrong))
            expected.append((group, kind, reward))
            groups.append(index)

    def column(key):
        values = np.empty(len(rows), dtype=object)
        values[:] = [copy.deepcopy(r[key]) for r in rows]
        return values

    # The fields verl's RLHFDataset gives each row, with n rollouts of a prompt repeated as the
    # trainer does.
    batch = DataProto(
        non_tensor_batch={
            "raw_prompt": column("prompt"),
            "data_source": column("data_source"),
            "reward_model": column("reward_model"),
            "extra_info": column("extra_info"),
            "tools_kwargs": np.array([r["extra_info"]["tools_kwargs"] for r in rows], dtype=object),
            "index": np.array(groups, dtype=object),
            "priority": np.arange(len(rows), dtype=np.int64),
        },
        meta_info={},
    )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DRAMAKIT_TOOL_SERVER_URL", tool_server_url)
        patch.chdir(
            repo_root
        )  # verl resolves tools.yaml and the reward file against the working directory
        worker = AgentLoopWorker(config, llm_client=None)
        generation = ScriptedGeneration(worker.tokenizer, scripts)
        worker.llm_client = generation
        output = asyncio.run(worker.generate_sequences(batch))
        reward_worker = RewardLoopWorker(config)
        scored = reward_worker.loop.run_until_complete(reward_worker.compute_score_batch(output))

    token_rewards = reward_worker.reward_manager.assemble_rm_scores(
        output, [s["reward_score"] for s in scored]
    )
    estimator = get_adv_estimator_fn(config.algorithm.adv_estimator)
    advantages, _ = estimator(
        token_level_rewards=token_rewards,
        response_mask=output.batch["response_mask"],
        index=output.non_tensor_batch["index"],
        norm_adv_by_std_in_grpo=config.algorithm.norm_adv_by_std_in_grpo,
    )
    return {
        "env": env,
        "rows": rows,
        "expected": expected,
        "generation": generation,
        "output": output,
        "scored": scored,
        "advantages": advantages,
        "tokenizer": worker.tokenizer,
    }


def response_text(result, i: int) -> str:
    output = result["output"]
    length = int(output.batch["attention_mask"][i, output.batch["prompts"].shape[1] :].sum())
    return result["tokenizer"].decode(
        output.batch["responses"][i, :length], skip_special_tokens=True
    )


def test_every_scripted_turn_was_generated_and_observations_came_from_the_server(rollout):
    env, rows = rollout["env"], rollout["rows"]
    assert all(not turns for turns in rollout["generation"].pending.values()), (
        "every scripted turn was asked for"
    )
    for i, (_group, kind, _) in enumerate(rollout["expected"]):
        line = rows[i]["extra_info"]["line"]
        text = response_text(rollout, i)
        audio = env.toolset.run("audio_sim", line, env.labels[line])
        if kind in ("good", "wrong", "duplicate", "good with two tools"):
            assert f"<tool_response>\n{audio}\n</tool_response>" in text, (kind, text)
        if kind == "duplicate":
            repeated = env.start(line).judge.message("repeated_call", "audio_sim", "zh")
            assert f"<tool_response>\n{repeated}\n</tool_response>" in text, text
        if kind == "good with two tools":
            relation = env.toolset.run("char_relation", line, env.labels[line])
            assert f"<tool_response>\n{relation}\n</tool_response>" in text, text
    # The prompt the model saw is the row's prompt, with the offered tools in Qwen3's tools section.
    first_context = rollout["generation"].contexts["det-0"][0]
    assert (
        rows[0]["prompt"][1]["content"] in first_context and '"name": "audio_sim"' in first_context
    )


def test_rewards_from_verls_reward_loop_are_ours(rollout):
    scored = rollout["scored"]
    for (group, kind, reward), result in zip(rollout["expected"], scored, strict=True):
        info = result["reward_extra_info"]
        assert result["reward_score"] == pytest.approx(reward), (group, kind, info)
        assert info["score"] == result["reward_score"]
    by_kind = {
        kind: result["reward_extra_info"]
        for (_, kind, _), result in zip(rollout["expected"], scored, strict=True)
    }
    assert (by_kind["duplicate"]["duplicates"], by_kind["duplicate"]["turns"]) == (1, 3)
    assert (by_kind["malformed"]["format_ok"], by_kind["malformed"]["answers"]) == (0, 0)
    assert (by_kind["wrong"]["correct"], by_kind["wrong"]["format_ok"]) == (0, 1)
    assert by_kind["good with two tools"]["turns"] == 3


def test_grpo_advantages_normalise_rewards_within_each_group(rollout):
    import torch

    advantages, mask = rollout["advantages"], rollout["output"].batch["response_mask"]
    expected = rollout["expected"]
    for group in GROUPS:
        members = [i for i, (g, _, _) in enumerate(expected) if g == group]
        rewards = torch.tensor([expected[i][2] for i in members])
        normalised = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
        for i, value in zip(members, normalised, strict=True):
            generated = mask[i].bool()
            assert generated.any()
            assert torch.allclose(
                advantages[i][generated], value.expand(int(generated.sum())), atol=1e-5
            )
            assert torch.all(advantages[i][~generated] == 0), (
                "tool responses and padding carry no advantage"
            )
    sign = {
        kind: float(advantages[i][mask[i].bool()][0])
        for i, (g, kind, _) in enumerate(expected)
        if g == "A"
    }
    assert sign["good"] > sign["duplicate"] > 0 > sign["wrong"] > sign["malformed"]
