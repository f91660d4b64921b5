"""Both tool-call protocols: parsing never raises, rendering round-trips, bad turns get reasons."""

import pytest

from plugins.speaker_rec.protocol import Action, action_from_openai, parse_turn, render_turn
from plugins.speaker_rec.rules import FORMAT_REASONS, MESSAGES


@pytest.mark.parametrize("protocol", ["hermes", "tags"])
@pytest.mark.parametrize(
    "action",
    [
        Action("tool", "audio_sim", "先听声音。"),
        Action("tool", "video_cap_detailed", "看看画面"),
        Action("answer", "林晚", "声音最像林晚。"),
        Action("answer", "其他", "都不像"),
    ],
)
def test_render_then_parse_round_trips(protocol, action):
    assert parse_turn(render_turn(action, protocol), protocol) == action


HERMES = {
    '<think>x</think><tool_call>{"name": "audio_sim", "arguments": {}}</tool_call>': (
        "tool",
        "audio_sim",
        None,
    ),
    '<tool_call>{"name": "char_relation", "arguments": {}}</tool_call>': (
        "tool",
        "char_relation",
        None,
    ),
    # verl's hermes parser drops a call without an arguments object; so do we
    '<tool_call>{"name": "char_relation"}</tool_call>': ("invalid", None, "bad_tool_call"),
    '<tool_call>{"name": "char_relation", "arguments": "{}"}</tool_call>': (
        "invalid",
        None,
        "bad_tool_call",
    ),
    "<think>x</think>\n<answer> 林朗 </answer>": ("answer", "林朗", None),
    "<think>只想不做</think>": ("invalid", None, "no_action"),
    "": ("invalid", None, "no_action"),
    '<tool_call>{"name": "audio_sim"}</tool_call><answer>林晚</answer>': (
        "invalid",
        None,
        "several_actions",
    ),
    '<tool_call>{"name": "a"}</tool_call><tool_call>{"name": "b"}</tool_call>': (
        "invalid",
        None,
        "several_actions",
    ),
    "<tool_call>{name: audio_sim}</tool_call>": ("invalid", None, "bad_tool_call"),
    '<tool_call>["audio_sim"]</tool_call>': ("invalid", None, "bad_tool_call"),
}


@pytest.mark.parametrize("text", sorted(HERMES))
def test_parse_hermes(text):
    kind, name, error = HERMES[text]
    action = parse_turn(text, "hermes")
    assert (action.kind, action.name, action.error) == (kind, name, error)


TAGS = {
    "<think>先听</think>\n<tool>audio_sim</tool>": ("tool", "audio_sim", None),
    "  <think>a</think><answer>林晚</answer>\n": ("answer", "林晚", None),
    "<tool>audio_sim</tool>": ("invalid", None, "missing_think"),
    "<think>a</think><think>b</think><tool>audio_sim</tool>": ("invalid", None, "missing_think"),
    "<think>a</think>我觉得<tool>audio_sim</tool>": ("invalid", None, "bad_layout"),
    "<think>a</think><tool>audio_sim</tool><answer>林晚</answer>": (
        "invalid",
        None,
        "several_actions",
    ),
    "<think>a</think>": ("invalid", None, "no_action"),
}


@pytest.mark.parametrize("text", sorted(TAGS))
def test_parse_tags(text):
    kind, name, error = TAGS[text]
    action = parse_turn(text, "tags")
    assert (action.kind, action.name, action.error) == (kind, name, error)


def test_structured_tool_calls_take_precedence_in_hermes():
    call = {"id": "c1", "type": "function", "function": {"name": "audio_sim", "arguments": "{}"}}
    assert action_from_openai("<think>听</think>", [call], "hermes") == Action(
        "tool", "audio_sim", "听"
    )
    assert action_from_openai("", [call, call], "hermes").error == "several_actions"
    assert action_from_openai("<answer>林晚</answer>", [call], "hermes").error == "several_actions"
    assert action_from_openai("<answer>林晚</answer>", None, "hermes") == Action("answer", "林晚")


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown protocol 'xml'"):
        parse_turn("<answer>a</answer>", "xml")


def test_every_format_reason_has_a_message_in_both_languages():
    for language in ("zh", "en"):
        assert set(FORMAT_REASONS) <= set(MESSAGES[language])
    assert set(MESSAGES["zh"]) == set(MESSAGES["en"])
