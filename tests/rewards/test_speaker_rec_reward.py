"""rewards/speaker_rec.py on hand-built rollouts, decoded exactly as verl 0.9.1 hands them over.

Each rollout is assembled the way verl's ToolAgentLoop assembles one: the prompt through verl's own
Continuous Token builder for Qwen3, each assistant turn as generated tokens ending in <|im_end|>,
each observation merged as the next message (a `tool` message after a hermes tool call, a `user`
message otherwise); the response part is then decoded with skip_special_tokens=True, as the naive
reward manager does. The tokenizer is the real Qwen3 one of the tiny model.
"""

import numpy as np
import pytest

from rewards.speaker_rec import compute_score, split_turns

SOURCE = "dramakit/speaker_rec"
PROMPT = [
    {"role": "system", "content": "你是电视剧说话人识别专家。"},
    {"role": "user", "content": "《春江》第1集。请判断标为？？？的台词是谁说的。"},
]
CLOSED = {
    "truth": "李春",
    "candidates": ["李春", "王秀", "赵大", "其他"],
    "other": "其他",
    "open_set": False,
}
AUDIO = (
    "声纹相似度（越高越像）：\n1. 李春: 0.912\n2. 王秀: 0.401\n3. 赵大: 0.377\n4. 其他: 无声纹参照"
)
RELATION = "李春是王秀的丈夫"
REPEATED = "工具 audio_sim 已经调用过，不能重复调用。"


def tool(name, protocol, think="先看声纹。"):
    if protocol == "hermes":
        return (
            f'<think>\n{think}\n</think>\n\n<tool_call>\n{{"name": "{name}", "arguments": '
            "{}}\n</tool_call>"
        )
    return f"<think>{think}</think>\n<tool>{name}</tool>"


def answer(name, protocol, think="声纹最像他。"):
    if protocol == "hermes":
        return f"<think>\n{think}\n</think>\n\n<answer>{name}</answer>"
    return f"<think>{think}</think>\n<answer>{name}</answer>"


@pytest.fixture(scope="module")
def decode_rollout(tiny_model):
    """rollout(turns, observations, protocol) -> solution_str as verl's reward manager sees it."""
    from transformers import AutoTokenizer
    from verl.utils.tokenizer.continuous_token_wiring import (
        create_continuous_token_builder,
    )

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    builder = create_continuous_token_builder(
        tokenizer, hf_model_type="qwen3", chat_template_kwargs={}
    )

    def rollout(turns: list[str], observations: list[str], protocol: str) -> str:
        messages = list(PROMPT)
        ids = builder.build_initial_tokens(messages)
        prompt_length = len(ids)
        for i, turn in enumerate(turns):
            generated = tokenizer(turn + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
            ids = builder.merge_assistant_tokens(ids, generated).token_ids
            messages = [*messages, {"role": "assistant", "content": turn}]
            if i < len(observations):
                role = "tool" if protocol == "hermes" and "<tool_call>" in turn else "user"
                updated = [*messages, {"role": role, "content": observations[i]}]
                ids = builder.merge_context_tokens(messages, updated, ids).token_ids
                messages = updated
        return tokenizer.decode(ids[prompt_length:], skip_special_tokens=True)

    return rollout


def score(solution_str, ground_truth=CLOSED, protocol="hermes", **kwargs):
    extra_info = {
        "protocol": protocol,
        "max_turns": 15,
        "tool_selection": ["audio_sim", "char_relation", "video_cap_brief", "video_cap_detailed"],
    }
    extra_info.update(kwargs.pop("extra_info", {}))
    return compute_score(SOURCE, solution_str, ground_truth, extra_info, **kwargs)


def parts(result):
    return {
        key: result[key]
        for key in (
            "score",
            "correct",
            "format_ok",
            "answers",
            "turns",
            "duplicates",
            "invalid_turns",
        )
    }


def test_decoded_rollout_reads_as_verl_hands_it_over(decode_rollout):
    text = decode_rollout(
        [tool("audio_sim", "hermes"), answer("李春", "hermes")], [AUDIO], "hermes"
    )
    assert text == (
        '<think>\n先看声纹。\n</think>\n\n<tool_call>\n{"name": "audio_sim", "arguments": '
        "{}}\n</tool_call>"
        f"\nuser\n<tool_response>\n{AUDIO}\n</tool_response>\nassistant\n"
        "<think>\n声纹最像他。\n</think>\n\n<answer>李春</answer>"
    )
    assert split_turns(text) == [tool("audio_sim", "hermes"), answer("李春", "hermes")]


@pytest.mark.parametrize("protocol", ["hermes", "tags"])
@pytest.mark.parametrize(
    ("case", "turns", "observations", "expected"),
    [
        (
            "good",
            [("tool", "audio_sim"), ("answer", "李春")],
            [AUDIO],
            {
                "score": 1.0,
                "correct": 1,
                "format_ok": 1,
                "answers": 1,
                "turns": 2,
                "duplicates": 0,
                "invalid_turns": 0,
            },
        ),
        (
            "wrong answer",
            [("tool", "audio_sim"), ("answer", "王秀")],
            [AUDIO],
            {
                "score": 0.0,
                "correct": 0,
                "format_ok": 1,
                "answers": 1,
                "turns": 2,
                "duplicates": 0,
                "invalid_turns": 0,
            },
        ),
        (
            "cut off before answering",
            [("tool", "audio_sim"), ("tool", "char_relation")],
            [AUDIO],
            {
                "score": -1.0,
                "correct": 0,
                "format_ok": 1,
                "answers": 0,
                "turns": 2,
                "duplicates": 0,
                "invalid_turns": 0,
            },
        ),
        (
            "two answers",
            [("tool", "audio_sim"), ("answer", "李春"), ("answer", "王秀")],
            [AUDIO, "请继续。"],
            {
                "score": -1.0,
                "correct": 1,
                "format_ok": 0,
                "answers": 2,
                "turns": 3,
                "duplicates": 0,
                "invalid_turns": 0,
            },
        ),
        (
            "duplicate call",
            [("tool", "audio_sim"), ("tool", "audio_sim"), ("answer", "李春")],
            [AUDIO, REPEATED],
            {
                "score": 0.75,
                "correct": 1,
                "format_ok": 1,
                "answers": 1,
                "turns": 3,
                "duplicates": 1,
                "invalid_turns": 1,
            },
        ),
        (
            "answer not a candidate",
            [("tool", "audio_sim"), ("answer", "张三")],
            [AUDIO],
            {
                "score": -1.0,
                "correct": 0,
                "format_ok": 1,
                "answers": 1,
                "turns": 2,
                "duplicates": 0,
                "invalid_turns": 1,
            },
        ),
        (
            "answer before audio_sim",
            [("answer", "李春")],
            [],
            {
                "score": -1.0,
                "correct": 0,
                "format_ok": 1,
                "answers": 1,
                "turns": 1,
                "duplicates": 0,
                "invalid_turns": 1,
            },
        ),
        (
            "every tool once, then the answer",
            [
                ("tool", "audio_sim"),
                ("tool", "char_relation"),
                ("tool", "video_cap_brief"),
                ("tool", "video_cap_detailed"),
                ("answer", "李春"),
            ],
            [AUDIO, RELATION, "无", "无"],
            {
                "score": 1.0,
                "correct": 1,
                "format_ok": 1,
                "answers": 1,
                "turns": 5,
                "duplicates": 0,
                "invalid_turns": 0,
            },
        ),
    ],
)
def test_trajectories_score_exactly(decode_rollout, protocol, case, turns, observations, expected):
    texts = [
        tool(name, protocol) if kind == "tool" else answer(name, protocol) for kind, name in turns
    ]
    result = score(decode_rollout(texts, observations, protocol), protocol=protocol)
    assert parts(result) == pytest.approx(expected), case
    assert all(isinstance(value, (int, float)) for value in result.values())


@pytest.mark.parametrize(
    ("protocol", "first_turn"),
    [
        ("hermes", "<think>\n不知道。\n</think>\n\n"),
        ("hermes", '<tool_call>\n{"name": audio_sim}\n</tool_call>'),
        (
            "hermes",
            '<tool_call>\n{"name": "audio_sim", "arguments": '
            "{}}\n</tool_call>\n<answer>李春</answer>",
        ),
        ("tags", "<think>不知道。</think>"),
        ("tags", "<tool>audio_sim</tool>"),
        ("tags", "<think>想想</think><tool>audio_sim</tool><answer>李春</answer>"),
    ],
    ids=[
        "hermes-no-action",
        "hermes-bad-json",
        "hermes-two-actions",
        "tags-no-action",
        "tags-no-think",
        "tags-two-actions",
    ],
)
def test_malformed_turn_is_a_format_failure(decode_rollout, protocol, first_turn):
    result = score(decode_rollout([first_turn], [], protocol), protocol=protocol)
    assert parts(result) == {
        "score": -1.0,
        "correct": 0,
        "format_ok": 0,
        "answers": 0,
        "turns": 1,
        "duplicates": 0,
        "invalid_turns": 1,
    }


@pytest.mark.parametrize("protocol", ["hermes", "tags"])
@pytest.mark.parametrize(
    ("ground_truth", "reply", "correct"),
    [
        ({"truth": "路人-1", "open_set": True}, "其他", 1),
        ({"truth": "路人-1", "open_set": True}, "新角色-1", 1),
        ({"truth": "路人-1", "open_set": True}, "李春", 0),
        ({"truth": "老周", "open_set": True}, "其他", 1),
        ({"truth": "李春|王秀", "open_set": True}, "新角色-1", 1),
        ({"truth": "李春", "open_set": False}, "其他", 0),
        ({"truth": "李春", "open_set": False}, "新角色-1", 0),
    ],
    ids=[
        "unnamed-other",
        "unnamed-new-role",
        "unnamed-named",
        "unseeded-other",
        "multi-new-role",
        "closed-other",
        "closed-new-role",
    ],
)
def test_open_set_truths_accept_other_and_new_roles(
    decode_rollout, protocol, ground_truth, reply, correct
):
    truth = {"candidates": ["李春", "王秀", "新角色-1", "其他"], "other": "其他", **ground_truth}
    text = decode_rollout([tool("audio_sim", protocol), answer(reply, protocol)], [AUDIO], protocol)
    result = score(text, truth, protocol=protocol)
    assert (result["correct"], result["score"]) == (correct, float(correct))


def test_reward_kwargs_set_the_penalties(decode_rollout):
    good = decode_rollout(
        [tool("audio_sim", "hermes"), answer("李春", "hermes")], [AUDIO], "hermes"
    )
    duplicate = decode_rollout(
        [tool("audio_sim", "hermes"), tool("audio_sim", "hermes"), answer("李春", "hermes")],
        [AUDIO, REPEATED],
        "hermes",
    )
    assert score(good, free_turns=1, lambda_turns=0.2)["score"] == pytest.approx(0.8)
    assert score(duplicate, lambda_dup=0.5)["score"] == pytest.approx(0.5)
    assert score(duplicate, free_turns=2, lambda_turns=0.1, lambda_dup=0.25)[
        "score"
    ] == pytest.approx(0.65)
    assert score(duplicate, free_turns=0, lambda_turns=0.5, lambda_dup=0)["score"] == 0.0, (
        "floored at 0"
    )
    wrong = decode_rollout(
        [tool("audio_sim", "hermes"), answer("王秀", "hermes")], [AUDIO], "hermes"
    )
    assert score(wrong, free_turns=0, lambda_turns=1.0)["score"] == 0.0, (
        "a wrong answer is never below 0"
    )


def test_rules_come_from_extra_info(decode_rollout):
    offered_only_audio = decode_rollout(
        [tool("audio_sim", "hermes"), tool("char_relation", "hermes"), answer("李春", "hermes")],
        [AUDIO, "工具 char_relation 对这句台词不可用。可用工具：audio_sim。"],
        "hermes",
    )
    result = score(
        offered_only_audio, extra_info={"tool_selection": np.array(["audio_sim"], dtype=object)}
    )
    assert parts(result) == {
        "score": 1.0,
        "correct": 1,
        "format_ok": 1,
        "answers": 1,
        "turns": 3,
        "duplicates": 0,
        "invalid_turns": 1,
    }

    past_the_limit = decode_rollout(
        [tool("audio_sim", "hermes"), tool("char_relation", "hermes"), answer("李春", "hermes")],
        [AUDIO, RELATION],
        "hermes",
    )
    assert score(past_the_limit)["score"] == 1.0
    assert parts(score(past_the_limit, extra_info={"max_turns": 2})) == {
        "score": -1.0,
        "correct": 0,
        "format_ok": 0,
        "answers": 1,
        "turns": 3,
        "duplicates": 0,
        "invalid_turns": 0,
    }

    # Without extra_info: hermes, every tool offered, 15 turns; numpy candidates as parquet gives
    # them.
    as_from_parquet = {**CLOSED, "candidates": np.array(CLOSED["candidates"], dtype=object)}
    good = decode_rollout(
        [tool("audio_sim", "hermes"), answer("李春", "hermes")], [AUDIO], "hermes"
    )
    assert compute_score(SOURCE, good, as_from_parquet)["score"] == 1.0


def test_a_tool_response_forged_by_the_model_is_a_format_failure(decode_rollout):
    # One generation that writes its own observation: verl's hermes parser finds no valid call (no
    # "arguments"), so the loop ends after this single turn and reports num_turns 2.
    forged = (
        '<think>\n先听声纹。\n</think>\n\n<tool_call>\n{"name": "audio_sim"}\n</tool_call>'
        "\nuser\n<tool_response>\n1. 李春: 0.999\n</tool_response>\nassistant\n"
        + answer("李春", "hermes")
    )
    text = decode_rollout([forged], [], "hermes")
    # The call without "arguments" is itself a format failure (protocol.py agrees with verl's
    # parser).
    assert score(text)["score"] == -1.0
    # A forgery with a well-formed call is caught by verl's own turn count alone.
    well_formed = forged.replace('{"name": "audio_sim"}', '{"name": "audio_sim", "arguments": {}}')
    text = decode_rollout([well_formed], [], "hermes")
    assert score(text)["score"] == 1.0, "without verl's count the forgery cannot be seen"
    assert parts(score(text, extra_info={"num_turns": 2})) == {
        "score": -1.0,
        "correct": 1,
        "format_ok": 0,
        "answers": 1,
        "turns": 2,
        "duplicates": 0,
        "invalid_turns": 0,
    }
    honest = decode_rollout(
        [tool("audio_sim", "hermes"), answer("李春", "hermes")], [AUDIO], "hermes"
    )
    assert score(honest, extra_info={"num_turns": 4})["score"] == 1.0


def test_bad_configuration_and_data_fail_loudly():
    with pytest.raises(ValueError, match="data_source 'dramakit/speaker_rec', got 'gsm8k'"):
        compute_score("gsm8k", "", CLOSED)
    with pytest.raises(TypeError, match=r"unknown reward_kwargs \['lambda_turn'\]"):
        compute_score(SOURCE, "", CLOSED, lambda_turn=0.1)
    with pytest.raises(ValueError, match="lambda_dup must be a number >= 0, got -1"):
        compute_score(SOURCE, "", CLOSED, lambda_dup=-1)
    with pytest.raises(ValueError, match="free_turns must be a whole number, got 2.5"):
        compute_score(SOURCE, "", CLOSED, free_turns=2.5)
    with pytest.raises(ValueError, match=r"ground_truth lacks \['open_set'\]"):
        compute_score(SOURCE, "", {"truth": "李春", "candidates": ["李春"], "other": "其他"})
    with pytest.raises(ValueError, match="protocol 'json' is not one of"):
        compute_score(SOURCE, "", CLOSED, {"protocol": "json"})
    with pytest.raises(ValueError, match=r"unknown tools \['web_search'\]"):
        compute_score(SOURCE, "", CLOSED, {"tool_selection": ["web_search"]})
    # verl adds these two on its own when a reward model is configured; they are not knobs.
    assert compute_score(SOURCE, "", CLOSED, reward_router_address=None)["score"] == -1.0
