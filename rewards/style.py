"""verl reward: the probability that a response is in a target style, by the style classifier.

The score is P(target | "用户问题：<question>\\n回答：<response>") from a classifier trained by
`python -m tools.style train`, read either from its HTTP service (`python -m tools.style serve`)
or from a local model directory loaded once per process. Everything is configured through verl's
`reward_kwargs`, never through environment variables:

    reward.custom_reward_function.path=rewards/style.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.service_url=http://127.0.0.1:8765   # or
    +reward.custom_reward_function.reward_kwargs.model_path=runs/style-tiny
    +reward.custom_reward_function.reward_kwargs.target=helpful   # optional, see below

verl 0.9.1 reads only `reward.custom_reward_function` (the top-level `custom_reward_function` of
older configs is not read by main_ppo; only the fully-async entry point migrates it), merges
`reward_kwargs` into every call, and scores one
response per call, concurrently from a thread pool (NaiveRewardManager → run_in_executor); its
list-taking BatchRewardManager is no longer reachable from `load_reward_manager`. So batching
happens in `plugins.style.scorers`: concurrent calls in one process share one /predict_batch request
or forward pass, and the scorer (model or service client) is made once per process, on first use.

The target style is `target` from reward_kwargs when set (one style for the whole run), else the
sample's ground truth: a style name (Chinese or English) or {"target": name}. Hydra's override
grammar takes non-ASCII values only quoted: `...reward_kwargs.target='有帮助'` (or the English
name). The question comes from `extra_info[question_key]` (default "question"); verl does not
pass the prompt itself.
"""

from __future__ import annotations

import re

from plugins.style.labels import LabelSet, format_input
from plugins.style.scorers import get_scorer

# The classifier was trained on visible answers, not on a reasoning model's hidden thoughts.
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def _target_id(labels: LabelSet, target, ground_truth) -> int:
    if target is None:
        target = ground_truth.get("target") if isinstance(ground_truth, dict) else ground_truth
    try:
        return labels.id_of(str(target))
    except KeyError:
        raise ValueError(
            f"target style {target!r} (from reward_kwargs target, else ground_truth) is "
            f"not one of {labels.names} / {labels.english_names}"
        ) from None


def compute_score(
    data_source,
    solution_str: str,
    ground_truth,
    extra_info: dict | None = None,
    *,
    target: str | None = None,
    service_url: str | None = None,
    model_path: str | None = None,
    question_key: str = "question",
    batch_size: int = 32,
    timeout_s: float = 60.0,
    **kwargs,
) -> dict:
    """Score one response: `score` = P(target style), plus `p_<style>` for every style (logged by
    verl).

    `kwargs` takes what verl adds on its own (e.g. reward_router_address) and is otherwise
    unused."""
    scorer = get_scorer(service_url, model_path, timeout_s, batch_size)
    target_id = _target_id(scorer.labels, target, ground_truth)
    question = (extra_info or {}).get(question_key) or ""
    answer = _THINK_BLOCK.sub("", solution_str)
    probabilities = scorer.probabilities([format_input(str(question), answer)])[0]
    return {
        "score": probabilities[target_id],
        **{
            f"p_{name}": p
            for name, p in zip(scorer.labels.english_names, probabilities, strict=True)
        },
    }
