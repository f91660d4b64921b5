"""Hostile model output: the linear-time parser agrees with the regex grammar it replaces on every
turn that grammar accepts, never raises on adversarial turns up to the server's body limit, and
names the bound a turn breaks (a seeded generator of our own: Hypothesis is not installed)."""

import json
import random
import re

import pytest

from plugins.speaker_rec.protocol import (
    MAX_TOOL_CALL_CHARS,
    MAX_TOOL_CALL_DEPTH,
    PROTOCOLS,
    Action,
    action_from_openai,
    blocks,
    parse_turn,
)
from plugins.speaker_rec.rules import FORMAT_REASONS, MESSAGES, Judge
from plugins.speaker_rec.server import DEFAULT_MAX_BODY_BYTES
from tools.dev.bench_parse import adversarial_actions

# The grammar as it was written before (regexes that backtrack quadratically): the reference.
THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
TAG_TOOL = re.compile(r"<tool>(.*?)</tool>", re.DOTALL)
TAGS_TURN = re.compile(
    r"^\s*<think>((?:(?!</?think>).)*)</think>\s*<(tool|answer)>([^<]*)</\2>\s*$", re.DOTALL
)


def reference(text: str, protocol: str) -> Action:
    thinks = THINK.findall(text)
    think = thinks[0].strip() if thinks else ""
    if protocol == "tags":
        match = TAGS_TURN.match(text)
        if match:
            think, kind, name = match.groups()
            return Action("tool" if kind == "tool" else "answer", name.strip(), think.strip())
        n = len(TAG_TOOL.findall(text)) + len(ANSWER.findall(text))
        reason = (
            "no_action"
            if n == 0
            else "several_actions"
            if n > 1
            else "missing_think"
            if len(thinks) != 1
            else "bad_layout"
        )
        return Action("invalid", think=think, error=reason)
    calls, answers = TOOL_CALL.findall(text), ANSWER.findall(text)
    if len(calls) + len(answers) != 1:
        return Action(
            "invalid", think=think, error="no_action" if not calls + answers else "several_actions"
        )
    if answers:
        return Action("answer", answers[0].strip(), think)
    try:
        call = json.loads(calls[0])
    except ValueError:
        return Action("invalid", think=think, error="bad_tool_call")
    if (
        not isinstance(call, dict)
        or not isinstance(call.get("name"), str)
        or not isinstance(call.get("arguments"), dict)
    ):
        return Action("invalid", think=think, error="bad_tool_call")
    return Action("tool", call["name"].strip(), think)


PIECES = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool>",
    "</tool>",
    " ",
    "\n",
    "\u3000",
    "x",
    "林晚",
    "<",
    ">",
    "/",
    "audio_sim",
    '{"name": "audio_sim", "arguments": {}}',
    '{"name": " x ", "arguments": {"a": [1]}}',
    "[",
    "{",
    '"',
]


SKELETONS = [
    ["<think>", "</think>", "<tool>", "</tool>"],
    ["<think>", "</think>", "<answer>", "</answer>"],
    ["<think>", "</think>", "<tool_call>", "</tool_call>"],
]


def random_turns(seed: int, n: int):
    """Random turns: half free sequences of pieces, half the skeleton of a valid turn with a few
    random pieces between its tags (so both valid and near-valid turns are common)."""
    rng = random.Random(seed)

    def filler() -> str:
        return "".join(rng.choice(PIECES) for _ in range(rng.choice((0, 0, 1, 1, 2))))

    for _ in range(n):
        if rng.random() < 0.5:
            yield "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        else:
            yield filler() + "".join(tag + filler() for tag in rng.choice(SKELETONS))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_parser_accepts_exactly_what_the_regex_grammar_accepted(protocol):
    refined = {"no_action": {"no_action", "unclosed_tag"}}
    valid = 0
    for text in random_turns(seed=15, n=20_000):
        expected, got = reference(text, protocol), parse_turn(text, protocol)
        if expected.kind != "invalid":
            valid += 1
            assert got == expected, text
        else:
            assert got.kind == "invalid" and got.think == expected.think, text
            assert got.error in refined.get(expected.error, {expected.error}), text
    assert valid > 300  # the generator does reach valid turns


def test_blocks_is_findall_in_linear_time():
    for text in random_turns(seed=3, n=5000):
        for tag, pattern in (
            (("<think>", "</think>"), THINK),
            (("<tool_call>", "</tool_call>"), TOOL_CALL),
        ):
            assert blocks(text, tag, 10**9) == pattern.findall(text)
            assert blocks(text, tag, 1) == pattern.findall(text)[:1]


@pytest.mark.parametrize("size", [1000, DEFAULT_MAX_BODY_BYTES])
def test_adversarial_turns_up_to_the_body_limit_never_raise(size):
    for name, text in adversarial_actions(size).items():
        for protocol in PROTOCOLS:
            action = parse_turn(text, protocol)
            if name.startswith("huge think") and protocol == "hermes":
                assert action.kind == "tool" and action.name == "audio_sim", name
            elif (
                name == "nested [ in a string"
                and protocol == "hermes"
                and size < MAX_TOOL_CALL_CHARS
            ):
                assert action.kind == "tool"  # brackets in a string are no nesting: an unknown tool
            else:
                assert action.kind == "invalid" and action.error in FORMAT_REASONS, (
                    name,
                    protocol,
                    action.error,
                )
            assert action_from_openai(text, None, protocol) == action


@pytest.mark.parametrize(
    ("text", "reason", "name"),
    [
        ("<tool_call>" + "[" * 100_000 + "</tool_call>", "tool_call_too_long", None),
        (
            "<tool_call>"
            + "[" * (MAX_TOOL_CALL_DEPTH + 1)
            + "]" * (MAX_TOOL_CALL_DEPTH + 1)
            + "</tool_call>",
            "tool_call_too_deep",
            None,
        ),
        (
            '<tool_call>{"name": "audio_sim", "arguments": {"a": '
            + "[" * 900
            + "]" * 900
            + "}}</tool_call>",
            "tool_call_too_deep",
            None,
        ),
        (
            '<tool_call>{"name": "a", "arguments": {"s": "' + "[" * 200 + '"}}</tool_call>',
            None,
            "a",
        ),
        ('<tool_call>{"name": "\\ud800", "arguments": {}}</tool_call>', None, "\ud800"),
        ('<tool_call>{"name": "\\x", "arguments": {}}</tool_call>', "bad_tool_call", None),
        ("<think>a</think><tool_call>" + "x" * 10, "unclosed_tag", "<tool_call>"),
        ("<think>a</think><answer>林晚", "unclosed_tag", "<answer>"),
    ],
)
def test_bounds_and_unbalanced_tags_are_named(text, reason, name):
    action = parse_turn(text, "hermes")
    assert action.error == reason
    assert action.name == name


def test_messages_name_the_limits_and_cut_long_names():
    judge = Judge(["林晚", "other"], ("audio_sim",))
    assert str(MAX_TOOL_CALL_CHARS) in judge.message("tool_call_too_long", None, "en")
    assert str(MAX_TOOL_CALL_DEPTH) in judge.message("tool_call_too_deep", None, "zh")
    assert (
        judge.message("unclosed_tag", "<tool_call>", "en")
        == "Format error: <tool_call> is opened but never closed."
    )
    assert len(judge.message("answer_not_candidate", "x" * 10**6, "en")) < 300
    for language in ("zh", "en"):
        assert set(FORMAT_REASONS) <= set(MESSAGES[language])


def test_malformed_structured_calls_are_invalid_turns():
    assert action_from_openai(None, [{"function": {"name": 7}}], "hermes").error == "bad_tool_call"
    assert action_from_openai(None, [{"function": None}], "hermes") == Action("tool", "")
    assert action_from_openai(None, [{}], "hermes") == Action("tool", "")
