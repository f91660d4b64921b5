"""Scene scripts: lines `Name：「text」` / `Name:「text」` (Chat-Haruhi style), Chinese or English.

Used by tools/roleplay/dialogue_parse.py, which turns what is found here into utterances that go
through
the same attribution report and sample building as prose. This module only reads one line:
- the text runs from the first 「 to the 」 that closes it, so nested 「」 inside a line (「契约」)
  stay part of the text; a line whose brackets never close is `unbalanced`;
- two speakers glued on one line (`A：「…」B：「…」`, a lost line break) are split and reported
  as `glued_speakers`; other text after the closing bracket is reported as `trailing_text`;
- wiki markup is removed (`'''Scene'''`, `''(To Penny)''`, `[[Apartment 4A]]`); a stage direction
  in the text gives the addressee (`(To Penny)`) or says the line is not said to anyone present
  (`(On phone)`, `(Into phone)`);
- a line without a name, `Scene`, or narration (旁白, Narrator) is a direction, not speech; one that
  says the scene or time moves on (`Scene`, `(Time shift)`, `Cut to …`) is a scene break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "「", "」"
# The name, a colon of either width, then the opening bracket.
HEAD = re.compile(r"\s*(?P<name>[^「」“”\"：:\n]{0,40}?)\s*[：:]\s*「")
NARRATION_NAMES = {"旁白", "narrator", "narration", "scene", "场景", "画外音"}
SCENE_NAMES = {"scene", "场景"}
SCENE_SHIFT = re.compile(
    r"\btime shift\b|\bcut to\b|\bscene\b|\blater\b|\bnext (?:day|morning)\b|"
    r"场景|转场|第二天|次日|片刻之后|不久之后",
    re.IGNORECASE,
)
ITALIC = re.compile(r"'{2,}(.*?)'{2,}")
HTML_TAG = re.compile(r"<[^<>]{1,300}>")
LINK = re.compile(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]")
DIRECTION = re.compile(r"[(（]([^()（）]*)[)）]")
ADDRESSEE = re.compile(
    r"^\s*(?:to|at)\s+(?:the\s+)?(?!(?:all|everyone|everybody|them|both|group|others)\b)"
    r"([A-Za-z][\w.'-]*(?:\s+[A-Z][\w.'-]*)?)\b|^\s*(?:对|向)(\w{1,6})$",
    re.IGNORECASE,
)
ELSEWHERE = re.compile(
    r"\b(?:on|into|on the) (?:the )?(?:phone|intercom|radio|webcam|camera|computer)\b|"
    r"\bvoice ?mail\b|\bto (?:himself|herself|themselves|self|camera)\b|\bsinging\b|电话|自言自语",
    re.IGNORECASE,
)
ELSEWHERE_ADDRESSEE = "<elsewhere>"


@dataclass
class ScriptLine:
    """One speaker's line of a script paragraph: `start` indexes the text in the paragraph."""

    name: str
    text: str
    start: int
    addressee: str | None = None  # a name, ELSEWHERE_ADDRESSEE, or None when not given
    direction: bool = False  # a stage direction or narration, not speech
    scene_break: bool = False


@dataclass
class ParsedParagraph:
    lines: list[ScriptLine]
    problem: str | None = None  # glued_speakers, trailing_text, unbalanced


def clean_name(name: str) -> str:
    """A speaker label without wiki markup and outer spaces."""
    return LINK.sub(r"\1", name).replace("'''", "").replace("''", "").strip()


def _closing(paragraph: str, start: int) -> int:
    """Index of the 」 that closes the 「 just before `start`, or -1."""
    depth = 1
    for i in range(start, len(paragraph)):
        if paragraph[i] == OPEN:
            depth += 1
        elif paragraph[i] == CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return -1


def looks_like_script_line(paragraph: str) -> bool:
    """True when the paragraph opens like `Name：「`."""
    return HEAD.match(paragraph) is not None


def parse_paragraph(paragraph: str) -> ParsedParagraph | None:
    """The script lines of one paragraph, or None when it is not a script line at all."""
    lines: list[ScriptLine] = []
    pos, problem = 0, None
    while True:
        head = HEAD.match(paragraph, pos)
        if head is None:
            if not lines:
                return None
            if paragraph[pos:].strip():
                problem = problem or "trailing_text"
            return ParsedParagraph(lines, problem)
        text_start = head.end()
        close = _closing(paragraph, text_start)
        if close < 0:
            return ParsedParagraph(lines, "unbalanced")
        lines.append(_script_line(head.group("name"), paragraph[text_start:close], text_start))
        pos = close + 1
        if len(lines) > 1:
            problem = "glued_speakers"
        if not paragraph[pos:].strip():
            return ParsedParagraph(lines, problem)


def _script_line(raw_name: str, raw_text: str, start: int) -> ScriptLine:
    name = clean_name(raw_name)
    addressee = None
    directions = []

    def italic(m: re.Match) -> str:
        directions.append(m.group(1))
        return " "

    text = ITALIC.sub(italic, HTML_TAG.sub("", raw_text))
    for m in DIRECTION.finditer(text):
        directions.append(m.group(1))
    spoken = DIRECTION.sub(" ", LINK.sub(r"\1", text))
    spoken = re.sub(r"\s+", " ", spoken).strip()
    for direction in directions:
        inner = DIRECTION.sub(lambda m: m.group(1), direction)
        if ELSEWHERE.search(inner):
            addressee = ELSEWHERE_ADDRESSEE
        elif m := ADDRESSEE.search(inner.strip()):
            addressee = (m.group(1) or m.group(2)).strip()
    is_direction = not name or name.lower() in NARRATION_NAMES or not spoken
    if is_direction:
        whole = " ".join([LINK.sub(r"\1", raw_text).replace("''", " ")])
        scene = name.lower() in SCENE_NAMES or bool(SCENE_SHIFT.search(whole))
        return ScriptLine(name, re.sub(r"\s+", " ", whole).strip(), start, None, True, scene)
    return ScriptLine(name, spoken, start, addressee)
