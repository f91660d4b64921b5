"""Render the speaker-recognition prompt for one line, in Chinese or English.

The user turn shows ±`window` lines of context with their pseudo-labels (the target marked
unknown), episode boundary markers, and the numbered candidate list ending in the "other"
label; the system turn states the rules. In the hermes protocol the tools travel as OpenAI
`tools=`; in the tags protocol they are listed in the system turn by their bare names.
Traces, SFT export, the RL parquet and evaluation all render through `render_prompt`, so a
model is always evaluated on exactly the prompt it was trained on.
"""

from collections.abc import Mapping

from plugins.speaker_rec.series import Series
from plugins.speaker_rec.toolset import LineLabel, Toolset

CONTEXT_WINDOW = 30
UNKNOWN = "？？？"

SYSTEM = {
    "zh": (
        "你是电视剧说话人识别专家。你会看到一部电视剧中的一句目标台词和它前后的台词。"
        "上下文台词前方括号里的说话人是自动标注的，可能有错；目标台词的说话人未知，标为{unknown}。"
        "请借助工具判断目标台词是谁说的。\n\n规则：\n"
        "1. 每一轮先在 <think>…</think> 中思考，然后{action}\n"
        "2. 给出答案之前必须先调用 audio_sim；每个工具最多调用一次。\n"
        "3. 答案必须是候选列表中的一个名字；如果说话人不在列表中、是多人同时说或旁白，回"
        "答“{other}”。\n4. 最多 {max_turns} 轮。"
    ),
    "en": (
        "You are an expert at recognising who speaks each line of a TV drama. You will "
        "see a target line and the lines around it. The speakers in square brackets before the "
        "context lines were "
        "labelled automatically and may be wrong; the target line's speaker is unknown, "
        "shown as {unknown}. Use the tools to decide who speaks the target line.\n\nRules:\n"
        "1. In every turn, think first inside <think>…</think>, then {action}\n"
        "2. Call audio_sim before answering; call each tool at most once.\n"
        "3. The answer must be one of the candidates; if the speaker is not listed, is "
        "several people "
        'at once, or is the narrator, answer "{other}".\n'
        "4. At most {max_turns} turns."
    ),
}

ACTION = {
    ("zh", "hermes"): "要么调用一个工具，要么用 <answer>名字</answer> 给出答案。",
    (
        "zh",
        "tags",
    ): "要么用 <tool>工具名</tool> 调用一个工具（只写工具名，不带括号），要么用 "
    "<answer>名字</answer> 给出答案。",
    ("en", "hermes"): "either call one tool or give the answer as <answer>NAME</answer>.",
    (
        "en",
        "tags",
    ): "either call one tool as <tool>TOOL_NAME</tool> (the bare name, no parentheses) "
    "or give the answer as <answer>NAME</answer>.",
}

TOOLS_HEADER = {"zh": "\n\n可用工具：", "en": "\n\nTools:"}

USER = {
    "zh": "《{series}》第{episode}集。上下文：\n{context}\n\n候选人：\n{candidates}\n\n请判断标"
    "为{unknown}的台词（>>> 所指）是谁说的。",
    "en": "{series}, episode {episode}. Context:\n{context}\n\nCandidates:\n{candidates}\n\n"
    "Who speaks the line marked {unknown} (at >>>)?",
}

EPISODE_MARK = {"zh": "—— 第{episode}集 ——", "en": "—— episode {episode} ——"}


def render_prompt(
    series: Series,
    labels: Mapping[int, LineLabel],
    index: int,
    *,
    protocol: str,
    language: str,
    toolset: Toolset,
    max_turns: int,
    other: str,
    window: int = CONTEXT_WINDOW,
) -> list[dict]:
    """System and user messages for judging line `index`."""
    language = "zh" if language == "zh" else "en"
    system = SYSTEM[language].format(
        unknown=UNKNOWN, action=ACTION[(language, protocol)], other=other, max_turns=max_turns
    )
    if protocol == "tags":
        tools = "\n".join(f"- {name}: {toolset.describe(name)}" for name in toolset.available)
        system += TOOLS_HEADER[language] + "\n" + tools
    label = labels[index]
    candidates = "\n".join(f"{i}. {name}" for i, name in enumerate(label.names, 1))
    user = USER[language].format(
        series=series.name,
        episode=series.lines[index].episode,
        context=_context(series, labels, index, window, language),
        candidates=candidates,
        unknown=UNKNOWN,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _context(
    series: Series, labels: Mapping[int, LineLabel], index: int, window: int, language: str
) -> str:
    """±`window` non-deleted lines around `index`, episode changes marked."""
    kept = _neighbours(series, index, window)
    rows, episode = [], None
    for i in kept:
        line = series.lines[i]
        if line.episode != episode and episode is not None:
            rows.append(EPISODE_MARK[language].format(episode=line.episode))
        episode = line.episode
        speaker = UNKNOWN if i == index else labels[i].pseudo_label
        rows.append(f"{'>>> ' if i == index else ''}[{speaker}] {line.text}")
    return "\n".join(rows)


def _neighbours(series: Series, index: int, window: int) -> list[int]:
    """Indices of up to `window` non-deleted lines on each side of `index`, in order."""
    before, i = [], index - 1
    while i >= 0 and len(before) < window:
        if not series.lines[i].deleted:
            before.append(i)
        i -= 1
    after, i = [], index + 1
    while i < len(series.lines) and len(after) < window:
        if not series.lines[i].deleted:
            after.append(i)
        i += 1
    return before[::-1] + [index] + after
