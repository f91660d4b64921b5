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
from dataclasses import dataclass

PROTOCOLS = ("hermes", "tags")
TOOL_NAMES = ("audio_sim", "char_relation", "video_cap_brief", "video_cap_detailed")

# Bounds on what is parsed inside a turn (the turn itself is scanned in linear time whatever its
# length). A valid call of these argument-free tools is about 50 characters at depth 2; the rule
# messages name these limits, so a model that breaks one is told which.
MAX_TOOL_CALL_CHARS = 4096
MAX_TOOL_CALL_DEPTH = 16

THINK = ("<think>", "</think>")
ANSWER = ("<answer>", "</answer>")
TOOL_CALL = ("<tool_call>", "</tool_call>")
TAG_TOOL = ("<tool>", "</tool>")


@dataclass(frozen=True)
class Action:
    """What one assistant turn asks for.

    kind is "tool" (name = tool name), "answer" (name = the answer text) or "invalid"
    (error = a reason code, one of plugins.speaker_rec.rules.FORMAT_REASONS; for "unclosed_tag"
    name is the tag left open)."""

    kind: str
    name: str | None = None
    think: str = ""
    error: str | None = None


def invalid(reason: str, think: str = "", name: str | None = None) -> Action:
    return Action("invalid", name, think=think, error=reason)


def scan_blocks(text: str, tag: tuple[str, str], limit: int) -> tuple[list[str], bool]:
    """The contents of the first `limit` non-overlapping `<tag>…</tag>` blocks, each closed by the
    first closing tag after its opening (what `re.findall(r"<tag>(.*?)</tag>", text, re.DOTALL)`
    returns), and whether an opening tag was left without a closing one after it. Time linear in
    len(text): the regex rescans the rest of the text from every opening tag that is never closed,
    which is quadratic."""
    opening, closing = tag
    found, position = [], 0
    while len(found) < limit:
        start = text.find(opening, position)
        if start < 0:
            return found, False
        end = text.find(closing, start + len(opening))
        if end < 0:  # no closing tag after this opening, so none after any later one either
            return found, True
        found.append(text[start + len(opening) : end])
        position = end + len(closing)
    return found, False


def blocks(text: str, tag: tuple[str, str], limit: int) -> list[str]:
    """The block contents of `scan_blocks`."""
    return scan_blocks(text, tag, limit)[0]


def _first_think(text: str) -> str:
    thinks = blocks(text, THINK, 1)
    return thinks[0].strip() if thinks else ""


def parse_turn(text: str, protocol: str) -> Action:
    """Parse the text of one assistant turn; never raises on any text (ValueError only for an
    unknown protocol) and takes time linear in its length."""
    if protocol == "hermes":
        return _parse_hermes(text)
    if protocol == "tags":
        return _parse_tags(text)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def _no_action(think: str, *scans: tuple[str, tuple[list[str], bool]]) -> Action:
    """The turn holds no complete action: name an action tag opened but never closed, if any."""
    for opening, (_, unclosed) in scans:
        if unclosed:
            return invalid("unclosed_tag", think, opening)
    return invalid("no_action", think)


def _parse_hermes(text: str) -> Action:
    think = _first_think(text)
    calls, answers = scan_blocks(text, TOOL_CALL, 2), scan_blocks(text, ANSWER, 2)
    n_actions = len(calls[0]) + len(answers[0])
    if n_actions == 0:
        return _no_action(think, (TOOL_CALL[0], calls), (ANSWER[0], answers))
    if n_actions > 1:
        return invalid("several_actions", think)
    if answers[0]:
        return Action("answer", answers[0][0].strip(), think)
    return _tool_from_json(calls[0][0], think)


def json_depth_exceeds(payload: str, limit: int) -> bool:
    """Whether brackets outside JSON strings nest deeper than `limit` in `payload` (linear; the
    JSON decoder recurses once per level and raises RecursionError on deep input)."""
    if payload.count("[") + payload.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in payload:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _tool_from_json(payload: str, think: str) -> Action:
    if len(payload) > MAX_TOOL_CALL_CHARS:
        return invalid("tool_call_too_long", think)
    if json_depth_exceeds(payload, MAX_TOOL_CALL_DEPTH):
        return invalid("tool_call_too_deep", think)
    try:
        call = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return invalid("bad_tool_call", think)
    # verl's hermes parser drops a call without "arguments", so such a call is no call at all.
    if (
        not isinstance(call, dict)
        or not isinstance(call.get("name"), str)
        or not isinstance(call.get("arguments"), dict)
    ):
        return invalid("bad_tool_call", think)
    return Action("tool", call["name"].strip(), think)


def _strict_tags_turn(text: str) -> Action | None:
    """The action of a well-formed tags turn, or None. Well-formed: optional whitespace, one
    `<think>` block holding no think tag, optional whitespace, `<tool>NAME</tool>` or
    `<answer>NAME</answer>` with no `<` in NAME, optional whitespace, nothing else."""
    body = text.lstrip()
    if not body.startswith(THINK[0]):
        return None
    end = body.find(THINK[1], len(THINK[0]))
    if end < 0 or body.find(THINK[0], len(THINK[0]), end) >= 0:
        return None
    think = body[len(THINK[0]) : end]
    rest = body[end + len(THINK[1]) :].lstrip()
    for kind, (opening, closing) in (("tool", TAG_TOOL), ("answer", ANSWER)):
        if rest.startswith(opening):
            stop = rest.find("<", len(opening))
            if (
                stop < 0
                or not rest.startswith(closing, stop)
                or rest[stop + len(closing) :].strip()
            ):
                return None
            return Action(kind, rest[len(opening) : stop].strip(), think.strip())
    return None


def _parse_tags(text: str) -> Action:
    action = _strict_tags_turn(text)
    if action is not None:
        return action
    thinks = blocks(text, THINK, 2)
    think = thinks[0].strip() if thinks else ""
    tools, answers = scan_blocks(text, TAG_TOOL, 2), scan_blocks(text, ANSWER, 2)
    n_actions = len(tools[0]) + len(answers[0])
    if n_actions == 0:
        return _no_action(think, (TAG_TOOL[0], tools), (ANSWER[0], answers))
    if n_actions > 1:
        return invalid("several_actions", think)
    if len(thinks) != 1:
        return invalid("missing_think", think)
    return invalid("bad_layout", think)


def _function_name(call) -> object:
    """The function name of one structured tool call (a dict or the OpenAI client's object)."""
    function = call.get("function") if isinstance(call, dict) else getattr(call, "function", None)
    return function.get("name") if isinstance(function, dict) else getattr(function, "name", None)


def action_from_openai(content: str | None, tool_calls: list | None, protocol: str) -> Action:
    """The action of an OpenAI chat-completion message: structured tool calls (hermes over
    `tools=`) take precedence over text; otherwise the text is parsed as a turn."""
    content = content if isinstance(content, str) else ""
    if protocol == "hermes" and tool_calls:
        think = _first_think(content)
        if len(tool_calls) > 1 or blocks(content, ANSWER, 1) or blocks(content, TOOL_CALL, 1):
            return invalid("several_actions", think)
        name = _function_name(tool_calls[0])
        if name is not None and not isinstance(name, str):
            return invalid("bad_tool_call", think)
        return Action("tool", (name or "").strip(), think)
    return parse_turn(content, protocol)


def render_turn(action: Action, protocol: str) -> str:
    """The text a well-formed model would have produced for `action` (for SFT data and
    the oracle teacher); inverse of `parse_turn` for valid actions."""
    if action.kind not in ("tool", "answer"):
        raise ValueError("only tool and answer actions can be rendered")
    think = (
        f"<think>\n{action.think}\n</think>\n\n"
        if protocol == "hermes"
        else f"<think>{action.think}</think>\n"
    )
    if action.kind == "answer":
        return f"{think}<answer>{action.name}</answer>"
    if protocol == "hermes":
        call = json.dumps({"name": action.name, "arguments": {}}, ensure_ascii=False)
        return f"{think}<tool_call>\n{call}\n</tool_call>"
    if protocol == "tags":
        return f"{think}<tool>{action.name}</tool>"
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
