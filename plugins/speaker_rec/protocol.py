"""Parse and render one assistant turn in either tool-call protocol.

- **hermes** (default): Qwen3-native `<think>…</think>`, then one
  `<tool_call>{"name": ..., "arguments": {}}</tool_call>` or one `<answer>NAME</answer>`.
  Over the OpenAI API the tool call arrives as a structured `tool_calls` entry instead.
- **tags** (DramaSR-LRM release): `<think>…</think>` followed by exactly one bare
  `<tool>NAME</tool>` or `<answer>NAME</answer>`.

Parsing never raises on model output: a malformed turn becomes an `Action` of kind
"invalid" with a reason code, which the rules turn into an error message for the model.
Used by traces, the tool server, evaluation and the reward.
"""

import json
import re
from dataclasses import dataclass

PROTOCOLS = ("hermes", "tags")
TOOL_NAMES = ("audio_sim", "char_relation", "video_cap_brief", "video_cap_detailed")

THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
TAG_TOOL = re.compile(r"<tool>(.*?)</tool>", re.DOTALL)
# A tags turn: optional whitespace, one think block, one action tag, nothing else.
TAGS_TURN = re.compile(r"^\s*<think>((?:(?!</?think>).)*)</think>\s*<(tool|answer)>([^<]*)</\2>\s*$", re.DOTALL)


@dataclass(frozen=True)
class Action:
    """What one assistant turn asks for.

    kind is "tool" (name = tool name), "answer" (name = the answer text) or "invalid"
    (error = a reason code, one of plugins.speaker_rec.rules.FORMAT_REASONS)."""

    kind: str
    name: str | None = None
    think: str = ""
    error: str | None = None


def invalid(reason: str, think: str = "") -> Action:
    return Action("invalid", think=think, error=reason)


def parse_turn(text: str, protocol: str) -> Action:
    """Parse the text of one assistant turn."""
    if protocol == "hermes":
        return _parse_hermes(text)
    if protocol == "tags":
        return _parse_tags(text)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def _parse_hermes(text: str) -> Action:
    thinks = THINK.findall(text)
    think = thinks[0].strip() if thinks else ""
    calls = TOOL_CALL.findall(text)
    answers = ANSWER.findall(text)
    if len(calls) + len(answers) == 0:
        return invalid("no_action", think)
    if len(calls) + len(answers) > 1:
        return invalid("several_actions", think)
    if answers:
        return Action("answer", answers[0].strip(), think)
    return _tool_from_json(calls[0], think)


def _tool_from_json(payload: str, think: str) -> Action:
    try:
        call = json.loads(payload)
    except json.JSONDecodeError:
        return invalid("bad_tool_call", think)
    # verl's hermes parser drops a call without "arguments", so such a call is no call at all.
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), dict):
        return invalid("bad_tool_call", think)
    return Action("tool", call["name"].strip(), think)


def _parse_tags(text: str) -> Action:
    match = TAGS_TURN.match(text)
    if match:
        think, kind, name = match.groups()
        return Action("tool" if kind == "tool" else "answer", name.strip(), think.strip())
    thinks = THINK.findall(text)
    think = thinks[0].strip() if thinks else ""
    n_actions = len(TAG_TOOL.findall(text)) + len(ANSWER.findall(text))
    if n_actions == 0:
        return invalid("no_action", think)
    if n_actions > 1:
        return invalid("several_actions", think)
    if len(thinks) != 1:
        return invalid("missing_think", think)
    return invalid("bad_layout", think)


def action_from_openai(content: str | None, tool_calls: list | None, protocol: str) -> Action:
    """The action of an OpenAI chat-completion message: structured tool calls (hermes over
    `tools=`) take precedence over text; otherwise the text is parsed as a turn."""
    content = content or ""
    if protocol == "hermes" and tool_calls:
        thinks = THINK.findall(content)
        think = thinks[0].strip() if thinks else ""
        if len(tool_calls) > 1 or ANSWER.search(content) or TOOL_CALL.search(content):
            return invalid("several_actions", think)
        function = tool_calls[0]["function"] if isinstance(tool_calls[0], dict) else tool_calls[0].function
        name = function["name"] if isinstance(function, dict) else function.name
        return Action("tool", (name or "").strip(), think)
    return parse_turn(content, protocol)


def render_turn(action: Action, protocol: str) -> str:
    """The text a well-formed model would have produced for `action` (for SFT data and
    the oracle teacher); inverse of `parse_turn` for valid actions."""
    if action.kind not in ("tool", "answer"):
        raise ValueError("only tool and answer actions can be rendered")
    think = f"<think>\n{action.think}\n</think>\n\n" if protocol == "hermes" else f"<think>{action.think}</think>\n"
    if action.kind == "answer":
        return f"{think}<answer>{action.name}</answer>"
    if protocol == "hermes":
        call = json.dumps({"name": action.name, "arguments": {}}, ensure_ascii=False)
        return f"{think}<tool_call>\n{call}\n</tool_call>"
    if protocol == "tags":
        return f"{think}<tool>{action.name}</tool>"
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
