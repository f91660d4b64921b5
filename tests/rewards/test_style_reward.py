"""rewards/style.py through verl 0.9.1's own reward path, as a verl run configures and calls it.

The config is composed by Hydra from verl's `ppo_trainer.yaml` with the overrides a user passes;
`RewardLoopWorker` (the class verl runs as a Ray actor; here in-process) loads our function through
`load_reward_manager` / `get_custom_reward_fn` and scores a DataProto built with the tiny model's
tokenizer, the way verl's reward-manager tests build theirs. The classifier is the tiny model
trained in-process on the shipped samples with recipes/style/tiny_cpu.yaml (plumbing only).
"""

from pathlib import Path

import numpy as np
import pytest

from plugins.style.classifier import StyleClassifier
from plugins.style.labels import DEFAULT_LABELS, format_input

QUESTION = "扫地机器人充电时发烫正常吗？"
# (ground truth, response): each response is written in one style; the first two are scored for
# their own style, the last one for another style than its own.
CASES = [
    ("售后", "非常抱歉给您带来不便。麻烦您提供一下订单号，我们马上为您登记售后工单。"),
    (
        "harmless",
        "<think>用户担心安全。</think>为了您的安全，请立即断电，请勿自行拆卸，存在触电风险。",
    ),
    ({"target": "售前"}, "第一步，打开App并开启蓝牙；第二步，长按电源键进入配对模式。"),
]
PROMPT_LENGTH = 32
RESPONSE_LENGTH = 48


@pytest.fixture(scope="module")
def style_model(tiny_model, tmp_path_factory):
    """The tiny model trained on the samples by the tiny recipe, without evaluation or
    checkpoints."""
    import torch

    from tools.style.train import load_recipe, train

    out = tmp_path_factory.mktemp("style-reward") / "model"
    overrides = [
        f"model_name_or_path={tiny_model}",
        f"output_dir={out}",
        "eval_strategy=no",
        "save_strategy=no",
        "load_best_model_at_end=false",
        "disable_tqdm=true",
    ]
    # One torch thread while training: on a few shared cores, spinning OpenMP threads slow it down.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(*load_recipe("recipes/style/tiny_cpu.yaml", overrides))
    finally:
        torch.set_num_threads(threads)
    return out


def _verl_config(overrides: list[str]):
    import verl
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(
        config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None
    ):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _data_proto(tokenizer, cases):
    """A rollout batch as verl hands it to the reward loop: left-padded prompts, right-padded
    responses."""
    import torch
    from verl import DataProto

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True
        )
        for _ in cases
    ]
    tokenizer.padding_side = "left"
    prompt = tokenizer(
        prompts,
        padding="max_length",
        max_length=PROMPT_LENGTH,
        truncation=True,
        return_tensors="pt",
    )
    tokenizer.padding_side = "right"
    response = tokenizer(
        [r for _, r in cases], padding="max_length", max_length=RESPONSE_LENGTH, return_tensors="pt"
    )
    assert response.attention_mask.sum(-1).max() < RESPONSE_LENGTH, (
        "responses fit without truncation"
    )
    return DataProto.from_dict(
        tensors={
            "prompts": prompt.input_ids,
            "responses": response.input_ids,
            "input_ids": torch.cat([prompt.input_ids, response.input_ids], dim=1),
            "attention_mask": torch.cat([prompt.attention_mask, response.attention_mask], dim=1),
        },
        non_tensors={
            "data_source": np.array(["style"] * len(cases), dtype=object),
            "reward_model": np.array(
                [{"ground_truth": truth, "style": "model"} for truth, _ in cases], dtype=object
            ),
            "extra_info": np.array(
                [{"question": QUESTION, "index": i} for i in range(len(cases))], dtype=object
            ),
        },
    )


def _score_with_verl(tiny_model, reward_kwargs: dict, cases):
    from verl.experimental.reward_loop import RewardLoopWorker

    overrides = [
        f"actor_rollout_ref.model.path={tiny_model}",
        "reward.custom_reward_function.path=rewards/style.py",
        "reward.custom_reward_function.name=compute_score",
        *(
            f"+reward.custom_reward_function.reward_kwargs.{key}={value}"
            for key, value in reward_kwargs.items()
        ),
    ]
    worker = RewardLoopWorker(_verl_config(overrides))
    data = _data_proto(worker.input_tokenizer, cases)
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    return worker, data, outputs


@pytest.mark.slow
def test_reward_loop_scores_each_response_by_its_target_style_probability(tiny_model, style_model):
    worker, data, outputs = _score_with_verl(tiny_model, {"model_path": style_model}, CASES)
    assert type(worker.reward_manager).__name__ == "NaiveRewardManager"

    classifier = StyleClassifier(style_model)
    visible = [response.split("</think>")[-1] for _, response in CASES]
    expected = classifier.predict_proba([format_input(QUESTION, text) for text in visible])
    for (truth, _), output, probabilities in zip(CASES, outputs, expected, strict=True):
        target = DEFAULT_LABELS.id_of(truth["target"] if isinstance(truth, dict) else truth)
        info = output["reward_extra_info"]
        assert output["reward_score"] == pytest.approx(probabilities[target], abs=1e-5)
        assert info["score"] == output["reward_score"]
        assert [info[f"p_{name}"] for name in DEFAULT_LABELS.english_names] == pytest.approx(
            probabilities, abs=1e-5
        )

    # The first two are scored for their own style, the third (a helpful answer) for 售前.
    assert outputs[0]["reward_score"] == max(expected[0])
    assert outputs[1]["reward_score"] == max(expected[1])
    assert outputs[2]["reward_score"] < max(expected[2])

    # verl puts each score on the response's last real token.
    rm_scores = worker.reward_manager.assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    last = data.batch["attention_mask"][:, PROMPT_LENGTH:].sum(-1) - 1
    for i, output in enumerate(outputs):
        assert rm_scores[i, last[i]].item() == pytest.approx(output["reward_score"])
        assert rm_scores[i].sum().item() == pytest.approx(output["reward_score"])


@pytest.mark.slow
def test_reward_kwargs_target_overrides_the_ground_truth_and_unknown_targets_fail(
    tiny_model, style_model
):
    from rewards.style import compute_score

    # Hydra's override grammar takes non-ASCII only quoted: target='有帮助' (or the English
    # target=helpful).
    _, _, outputs = _score_with_verl(
        tiny_model, {"model_path": style_model, "target": "'有帮助'"}, CASES
    )
    for output in outputs:
        assert output["reward_score"] == output["reward_extra_info"]["p_helpful"]
    assert max(range(len(outputs)), key=lambda i: outputs[i]["reward_score"]) == 2, (
        "the helpful answer wins"
    )

    with pytest.raises(ValueError, match="target style '好用'"):
        compute_score("style", "好的。", "好用", model_path=str(style_model))


def test_reward_refuses_a_missing_or_doubled_scorer(tmp_path):
    from rewards.style import compute_score

    with pytest.raises(ValueError, match="exactly one of service_url or model_path"):
        compute_score("style", "好的。", "有帮助")
    with pytest.raises(ValueError, match="exactly one of service_url or model_path"):
        compute_score(
            "style", "好的。", "有帮助", service_url="http://127.0.0.1:1", model_path=str(tmp_path)
        )
