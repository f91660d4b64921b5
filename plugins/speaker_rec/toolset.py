"""The four speaker-recognition tools, all argument-free and bound to the line being judged.

- `audio_sim`: voiceprint similarity of each candidate (the scores prepare computed);
- `char_relation`: known relations among the candidates;
- `video_cap_brief`: scene summaries around the line (±90 s);
- `video_cap_detailed`: visual detail right around the line (±10 s).

A tool whose data the series lacks is not offered. Outputs are plain text in the series'
language; the same function serves traces, the tool server, evaluation and the reward.
"""

import functools
from dataclasses import dataclass

from plugins.speaker_rec.protocol import TOOL_NAMES
from plugins.speaker_rec.series import Caption, Series

BRIEF_WINDOW_S = 90.0
DETAILED_WINDOW_S = 10.0

DESCRIPTIONS = {
    "zh": {
        "audio_sim": "返回这句台词的声纹与每个候选人声纹的相似度（0 到 1，越高越像）。",
        "char_relation": "返回候选人之间已知的人物关系。",
        "video_cap_brief": "返回这句台词前后一两分钟的场景概述。",
        "video_cap_detailed": "返回这句台词前后几秒的画面细节描述。",
    },
    "en": {
        "audio_sim": "Voiceprint similarity (0 to 1, higher is closer) between this line and each "
        "candidate.",
        "char_relation": "Known relations among the candidates.",
        "video_cap_brief": "A summary of the scene within a minute or two of this line.",
        "video_cap_detailed": "Visual detail within a few seconds of this line.",
    },
}

TEXT = {
    "zh": {
        "audio_header": "声纹相似度（越高越像）：",
        "no_score": "无声纹参照",
        "relation": "{a}是{b}的{rel}",
        "no_relation": "候选人之间没有已知的人物关系。",
        "no_caption": "这段时间没有画面描述。",
        "at_line": "（这句台词所在）",
    },
    "en": {
        "audio_header": "Voiceprint similarity (higher is closer):",
        "no_score": "no voiceprint reference",
        "relation": "{a} is {b}'s {rel}",
        "no_relation": "No known relations among the candidates.",
        "no_caption": "No scene description for this time.",
        "at_line": " (at this line)",
    },
}


def tool_schema(name: str, language: str) -> dict:
    """The OpenAI `tools=` entry of one tool (argument-free) in a language ("zh", else English)."""
    if name not in TOOL_NAMES:
        raise ValueError(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}")
    description = DESCRIPTIONS["zh" if language == "zh" else "en"][name]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    }


@dataclass(frozen=True)
class LineLabel:
    """What prepare says about one line: its pseudo-label, its candidate list (best first,
    the "other" label last, scores None where there is no voiceprint score), the margin
    between the top two scores, and its sample type."""

    pseudo_label: str
    candidates: tuple[tuple[str, float | None], ...]
    margin: float
    sample_type: str

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.candidates]


class Toolset:
    """The tools of one series, in one language."""

    def __init__(self, series: Series, language: str):
        self.series = series
        self.language = "zh" if language == "zh" else "en"
        self.text = TEXT[self.language]

    @functools.cached_property
    def available(self) -> tuple[str, ...]:
        """Tools whose data this series has, in the canonical order (the series does not change,
        and the tool server asks on every call)."""
        has = {
            "audio_sim": True,
            "char_relation": self.series.relations is not None,
            "video_cap_brief": self.series.captions is not None
            and bool(self.series.captions.brief),
            "video_cap_detailed": self.series.captions is not None
            and bool(self.series.captions.detailed),
        }
        return tuple(name for name in TOOL_NAMES if has[name])

    def describe(self, name: str) -> str:
        return DESCRIPTIONS[self.language][name]

    def openai_schema(self) -> list[dict]:
        """The offered tools as OpenAI `tools=` entries (no parameters)."""
        return [tool_schema(name, self.language) for name in self.available]

    def run(self, name: str, line_index: int, label: LineLabel) -> str:
        """Output of tool `name` for line `line_index` whose candidates are in `label`."""
        if name not in self.available:
            raise KeyError(f"tool {name!r} is not available for series {self.series.name!r}")
        return getattr(self, f"_{name}")(self.series.lines[line_index], label)

    def _audio_sim(self, line, label: LineLabel) -> str:
        rows = [self.text["audio_header"]]
        for i, (name, score) in enumerate(label.candidates, 1):
            shown = self.text["no_score"] if score is None else f"{score:.3f}"
            rows.append(f"{i}. {name}: {shown}")
        return "\n".join(rows)

    def _char_relation(self, line, label: LineLabel) -> str:
        names = set(label.names)
        rows = [
            self.text["relation"].format(a=a, b=b, rel=rel)
            for a, b, rel in self.series.relations.edges
            if a in names and b in names and a != b
        ]
        return "\n".join(rows) if rows else self.text["no_relation"]

    def _video_cap_brief(self, line, label: LineLabel) -> str:
        return self._captions(self.series.captions.brief, line, BRIEF_WINDOW_S)

    def _video_cap_detailed(self, line, label: LineLabel) -> str:
        return self._captions(self.series.captions.detailed, line, DETAILED_WINDOW_S)

    def _captions(self, captions: list[Caption], line, window: float) -> str:
        lo, hi = line.abs_start - window, line.abs_end + window
        rows = []
        for caption in captions:
            if (
                caption.abs_end >= lo
                and caption.abs_start <= hi
                and caption.episode == line.episode
            ):
                here = caption.abs_start <= line.abs_end and caption.abs_end >= line.abs_start
                rows.append(caption.text + (self.text["at_line"] if here else ""))
        return "\n".join(rows) if rows else self.text["no_caption"]
