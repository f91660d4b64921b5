"""The judging rules of a speaker-recognition trajectory, in one place.

One tool call or one answer per turn; the tool must exist and be offered for this line;
no tool is called twice; `audio_sim` comes before the answer; the answer is one of the
candidates; at most `max_turns` assistant turns. Traces, the tool server, evaluation and the
reward all judge through `Judge`, so a rule cannot differ between training and scoring.
"""

from dataclasses import dataclass, field

from plugins.speaker_rec.protocol import (
    MAX_TOOL_CALL_CHARS,
    MAX_TOOL_CALL_DEPTH,
    TOOL_NAMES,
    Action,
)

FORMAT_REASONS = (
    "no_action",
    "several_actions",
    "bad_tool_call",
    "missing_think",
    "bad_layout",
    "unclosed_tag",
    "tool_call_too_long",
    "tool_call_too_deep",
)
# A name the model wrote is echoed in a rule message at most this long, so an 8 MB answer does not
# come back as an 8 MB observation.
MAX_ECHOED_NAME = 100

MESSAGES = {
    "zh": {
        "no_action": "格式错误：每轮必须调用一个工具或给出一个答案。",
        "several_actions": "格式错误：每轮只能调用一个工具或给出一个答案，不能同时出现多个。",
        "bad_tool_call": "格式错误：工具调用不是合法的 JSON（需要 name 和 arguments 字段）。",
        "missing_think": "格式错误：每轮必须以一个 <think>…</think> 开头。",
        "bad_layout": "格式错误：每轮只能包含 <think>…</think> 和一个 <tool>…</tool> 或 "
        "<answer>…</answer>。",
        "unclosed_tag": "格式错误：{name} 没有对应的结束标签。",
        "tool_call_too_long": f"格式错误：工具调用超过 {MAX_TOOL_CALL_CHARS} 个字符。",
        "tool_call_too_deep": f"格式错误：工具调用的 JSON 嵌套超过 {MAX_TOOL_CALL_DEPTH} 层。",
        "unknown_tool": "工具 {name} 不存在。可用工具：{tools}。",
        "tool_unavailable": "工具 {name} 对这句台词不可用。可用工具：{tools}。",
        "repeated_call": "工具 {name} 已经调用过，不能重复调用。",
        "answer_before_audio_sim": "回答之前必须先调用 audio_sim。",
        "answer_not_candidate": "答案 {name} 不在候选列表中。请从候选中选择：{candidates}。",
    },
    "en": {
        "no_action": "Format error: each turn must call one tool or give one answer.",
        "several_actions": "Format error: only one tool call or one answer per turn.",
        "bad_tool_call": "Format error: the tool call is not valid JSON with name and arguments "
        "fields.",
        "missing_think": "Format error: every turn must start with one <think>…</think>.",
        "bad_layout": "Format error: a turn holds only <think>…</think> and one <tool>…</tool> or "
        "<answer>…</answer>.",
        "unclosed_tag": "Format error: {name} is opened but never closed.",
        "tool_call_too_long": "Format error: the tool call is longer than "
        f"{MAX_TOOL_CALL_CHARS} characters.",
        "tool_call_too_deep": "Format error: the tool call's JSON nests deeper than "
        f"{MAX_TOOL_CALL_DEPTH} "
        "levels.",
        "unknown_tool": "There is no tool named {name}. Available tools: {tools}.",
        "tool_unavailable": "Tool {name} is not available for this line. Available tools: {tools}.",
        "repeated_call": "Tool {name} was already called; do not call it again.",
        "answer_before_audio_sim": "Call audio_sim before answering.",
        "answer_not_candidate": "The answer {name} is not a candidate. Choose one of: "
        "{candidates}.",
    },
}


@dataclass(frozen=True)
class RuleConfig:
    """Knobs of the rules; the defaults are the published setting (≤15 turns)."""

    max_turns: int = 15
    audio_sim_first: bool = True


@dataclass(frozen=True)
class Verdict:
    """The judgement of one turn: `reason` is None for a valid turn; `done` ends the trajectory."""

    reason: str | None
    done: bool

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass
class Judge:
    """Judges the turns of one trajectory in order and keeps its counts."""

    candidates: list[str]
    tools: tuple[str, ...]
    config: RuleConfig = RuleConfig()
    turns: int = 0
    calls: list[str] = field(default_factory=list)
    duplicates: int = 0
    invalid_turns: int = 0
    answer: str | None = None
    done: bool = False

    def judge(self, action: Action) -> Verdict:
        """Judge the next assistant turn; after `done` no further turn is accepted."""
        if self.done:
            raise RuntimeError("trajectory already finished")
        self.turns += 1
        reason = self._reason(action)
        if reason is None and action.kind == "tool":
            self.calls.append(action.name)
        elif reason is None:
            self.answer = action.name
        else:
            self.invalid_turns += 1
            self.duplicates += reason == "repeated_call"
        self.done = self.answer is not None or self.turns >= self.config.max_turns
        return Verdict(reason, self.done)

    def _reason(self, action: Action) -> str | None:
        if action.kind == "invalid":
            return action.error
        if action.kind == "tool":
            if action.name not in self.tools:
                return "tool_unavailable" if action.name in TOOL_NAMES else "unknown_tool"
            return "repeated_call" if action.name in self.calls else None
        if (
            self.config.audio_sim_first
            and "audio_sim" in self.tools
            and "audio_sim" not in self.calls
        ):
            return "answer_before_audio_sim"
        return None if action.name in self.candidates else "answer_not_candidate"

    @property
    def complete(self) -> bool:
        """Finished with a valid answer (not by running out of turns)."""
        return self.answer is not None

    def message(self, reason: str, name: str | None, language: str) -> str:
        """The error text sent back to the model for an invalid turn (a long `name` cut short)."""
        if name is not None and len(name) > MAX_ECHOED_NAME:
            name = name[:MAX_ECHOED_NAME] + "…"
        template = MESSAGES["zh" if language == "zh" else "en"][reason]
        separator = "、" if language == "zh" else ", "
        return template.format(
            name=name, tools=separator.join(self.tools), candidates=separator.join(self.candidates)
        )
