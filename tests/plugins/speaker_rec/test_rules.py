"""The one implementation of the trajectory rules."""

import pytest

from plugins.speaker_rec.protocol import Action, invalid
from plugins.speaker_rec.rules import Judge, RuleConfig

CANDIDATES = ["林晚", "林朗", "其他"]
TOOLS = ("audio_sim", "char_relation", "video_cap_brief")


def judge(**config) -> Judge:
    return Judge(CANDIDATES, TOOLS, RuleConfig(**config))


def tool(name):
    return Action("tool", name)


def answer(name):
    return Action("answer", name)


def test_good_trajectory():
    j = judge()
    assert j.judge(tool("audio_sim")).ok
    assert j.judge(tool("char_relation")).ok
    verdict = j.judge(answer("林朗"))
    assert verdict.ok and verdict.done and j.complete
    assert (j.turns, j.calls, j.answer, j.duplicates, j.invalid_turns) == (
        3,
        ["audio_sim", "char_relation"],
        "林朗",
        0,
        0,
    )


@pytest.mark.parametrize(
    "turns, reason",
    [
        ([answer("林晚")], "answer_before_audio_sim"),
        ([tool("audio_sim"), answer("赵启明")], "answer_not_candidate"),
        ([tool("audio_sim"), tool("audio_sim")], "repeated_call"),
        ([tool("video_cap_detailed")], "tool_unavailable"),
        ([tool("web_search")], "unknown_tool"),
        ([invalid("several_actions")], "several_actions"),
    ],
)
def test_violations_are_named_and_do_not_end_the_trajectory(turns, reason):
    j = judge()
    verdicts = [j.judge(t) for t in turns]
    assert verdicts[-1].reason == reason and not verdicts[-1].done
    assert j.invalid_turns == 1 and j.answer is None
    assert j.duplicates == (reason == "repeated_call")


def test_turn_budget_ends_without_answer():
    j = judge(max_turns=3)
    j.judge(tool("audio_sim"))
    j.judge(tool("audio_sim"))
    verdict = j.judge(tool("char_relation"))
    assert verdict.ok and verdict.done and not j.complete
    with pytest.raises(RuntimeError):
        j.judge(answer("林晚"))


def test_answer_without_audio_sim_allowed_when_rule_off_or_tool_missing():
    assert judge(audio_sim_first=False).judge(answer("其他")).ok
    assert Judge(CANDIDATES, ("char_relation",)).judge(answer("其他")).ok


@pytest.mark.parametrize(
    "language, expected",
    [
        ("zh", "答案 赵启明 不在候选列表中。请从候选中选择：林晚、林朗、其他。"),
        ("en", "The answer 赵启明 is not a candidate. Choose one of: 林晚, 林朗, 其他."),
    ],
)
def test_error_messages(language, expected):
    assert judge().message("answer_not_candidate", "赵启明", language) == expected
