"""Turn attributed lines (tools/roleplay/dialogue_parse.py) into ShareGPT samples for one character.

Used by `python -m tools.roleplay.dialogue`. The rules, each counted in the report:
- the assistant character's lines become `gpt` turns, the user characters' lines `human` turns
  (with no user configured: every other recognised speaker, one at a time: when a second one
  speaks before the assistant answers, the dialogue restarts from them);
- a third party's line ends the dialogue (`--third-party break`) or joins the human turn under
  its speaker's name (`fold`); it never joins a gpt turn; so does a second person on the user
  side (a third speaker);
- a line said to someone else (对X道 with X not the other side, `(To X)`, `(On phone)`) ends the
  dialogue and is dropped;
- an unattributed line, a chapter heading, a scene break (a shift of time or place, verse, a
  script's scene direction), a long stretch of narration and a line the NSFW
  filter drops all end the dialogue, so no turn is ever glued to a line its speaker did not answer;
- every sample records why it ended (`ended_by`), counted in the report;
- consecutive lines of one role merge into one turn; a dialogue starts with human (a leading
  gpt turn is dropped, or kept in the system prompt) and ends with gpt;
- a dialogue longer than the limits is cut into windows that do not overlap, so no line is
  trained on twice.
"""

import collections
from dataclasses import dataclass, field

from tools.common.fileio import Report
from tools.roleplay.dialogue_parse import (
    NOT_SPEECH,
    OTHER,
    STAGE_DIRECTION,
    THOUGHT,
    WRITING,
    Character,
    Utterance,
)
from tools.roleplay.dialogue_script import ELSEWHERE_ADDRESSEE
from tools.roleplay.nsfw_filter import KeywordFilter

HUMAN, GPT = "human", "gpt"
# Drops that are not speech at all: the dialogue goes on around them (verse that closes a scene
# is a scene break found in the narration that introduces it: 有诗为证, 正是：).
TRANSPARENT_DROPS = {NOT_SPEECH, THOUGHT, WRITING, STAGE_DIRECTION}
THIRD_PARTY_MODES = ("break", "fold")
LEADING_ASSISTANT_MODES = ("drop", "system")


@dataclass(frozen=True)
class Cast:
    """Who is who: the assistant, the user characters (empty: anyone else), and the character
    that first-person narration (我道) belongs to."""

    assistant: Character
    users: tuple[Character, ...] = ()
    narrator: str | None = None

    @property
    def characters(self) -> tuple[Character, ...]:
        named = {c.name for c in (self.assistant, *self.users)}
        extra = (Character(self.narrator),) if self.narrator and self.narrator not in named else ()
        return (self.assistant, *self.users, *extra)


@dataclass(frozen=True)
class BuildOptions:
    """Limits and switches of the sample builder (the command's flags)."""

    system: str = ""
    third_party: str = "break"
    leading_assistant: str = "drop"
    max_turns: int = 16  # messages per sample, human and gpt together
    # Length limits count the spoken text; speaker labels on human turns come on top.
    max_turn_chars: int = 1000
    max_sample_chars: int = 4000
    max_gap_chars: int = 200  # narration between two lines of one dialogue
    max_unanswered_gap_chars: int = 40  # narration between two user lines nobody answered
    nsfw: KeywordFilter | None = None  # None keeps everything


@dataclass
class _Part:
    role: str
    name: str  # who said it: canonical name or the text's own name for an unconfigured speaker
    utterance: Utterance


@dataclass
class _Turn:
    role: str
    parts: list[_Part]

    def text(self, labelled: bool) -> str:
        """The turn's lines joined; `labelled` puts `Name：` before each speaker's run of lines."""
        if not labelled:
            return _join([p.utterance.text for p in self.parts])
        runs: list[tuple[str, list[str]]] = []
        for p in self.parts:
            if runs and runs[-1][0] == p.name:
                runs[-1][1].append(p.utterance.text)
            else:
                runs.append((p.name, [p.utterance.text]))
        return _join([f"{name}：{_join(lines)}" for name, lines in runs])


@dataclass
class Sample:
    """One training conversation and the lines it was made of."""

    conversations: list[dict]
    system: str
    utterances: list[Utterance] = field(default_factory=list)
    ended_by: str = ""  # why the conversation (or this window of it) ended
    source: str = ""  # the file it comes from

    def record(self) -> dict:
        return {"conversations": self.conversations, "system": self.system}

    def text(self) -> str:
        """What duplicate detection compares: the turns, not the system prompt."""
        return "\n".join(turn["value"] for turn in self.conversations)


def _join(pieces: list[str]) -> str:
    """Lines of one turn joined the way the language writes them: CJK directly, others with a
    space."""
    out = pieces[0]
    for piece in pieces[1:]:
        out += piece if out and not out[-1].isascii() else " " + piece
    return out


def where(source: str, utterance: Utterance) -> str:
    """How a report names a line: file, line and column (of the line's text in the file)."""
    if utterance.line:
        return f"{source}:{utterance.line}:{utterance.column}"
    return f"{source}:{utterance.paragraph + 1}"


class DialogueBuilder:
    """Feeds utterances in text order; collects samples and records every drop in `report`."""

    def __init__(self, cast: Cast, options: BuildOptions, report: Report, source: str):
        if options.third_party not in THIRD_PARTY_MODES:
            raise ValueError(f"third_party must be one of {THIRD_PARTY_MODES}")
        if options.leading_assistant not in LEADING_ASSISTANT_MODES:
            raise ValueError(f"leading_assistant must be one of {LEADING_ASSISTANT_MODES}")
        if options.max_turns < 2:
            raise ValueError("max_turns must be at least 2 (one human and one gpt turn)")
        self.cast, self.options, self.report, self.source = cast, options, report, source
        self._user_names = {u.name for u in cast.users}
        self.samples: list[Sample] = []
        self._run: list[_Part] = []
        self._last: Utterance | None = None
        # Why each dialogue ended, for tuning the limits (e.g. --max-gap-chars).
        self.breaks: collections.Counter = collections.Counter()

    def build(self, utterances: list[Utterance]) -> list[Sample]:
        """All samples of one text."""
        for utterance in utterances:
            self._feed(utterance)
        self._close("end_of_text")
        self.report.extra["dialogue_breaks"] = dict(sorted(self.breaks.items()))
        return self.samples

    def _role(self, utterance: Utterance) -> str | None:
        """gpt, human, or None for a third party."""
        if utterance.speaker == self.cast.assistant.name:
            return GPT
        if not self.cast.users or utterance.speaker in self._user_names:
            return HUMAN
        return None

    def _feed(self, u: Utterance) -> None:
        self.report.seen()
        if u.drop is not None:
            self.report.drop(u.drop, where(self.source, u))
            if u.drop not in TRANSPARENT_DROPS:
                self._close(u.drop)
            return
        last, self._last = self._last, u
        if u.break_before:
            self._close(u.break_before)
        elif last is not None and u.chapter != last.chapter:
            self._close("chapter")
        elif last is not None and u.gap_chars > self.options.max_gap_chars:
            self._close("narration_gap")
        if self.options.nsfw is not None and self.options.nsfw.match(u.text):
            self.report.drop("nsfw", where(self.source, u))
            self._close("nsfw")
            return
        name = u.hint if u.speaker == OTHER else u.speaker
        role = self._role(u)
        if role is None:
            if self.options.third_party == "break":
                self.report.drop("third_party", where(self.source, u))
                self._close("third_party")
                return
            role = HUMAN
        elif (
            role == HUMAN
            and self.options.third_party == "break"
            and any(p.role == HUMAN and p.name != name for p in self._run)
        ):
            # A second person on the user side is a third speaker: what the assistant says next
            # may answer either, so the conversation with the first one ends here. When the
            # first one spoke last, this line answers them, not the assistant: it opens nothing.
            replying = self._run[-1].role == HUMAN
            self._close("third_speaker")
            if replying:
                self.report.drop("reply_to_third_speaker", where(self.source, u))
                return
        if (
            role == HUMAN
            and self._run
            and self._run[-1].role == HUMAN
            and u.gap_chars > self.options.max_unanswered_gap_chars
        ):
            # The user spoke, nobody answered, the story went on: the earlier line is not part
            # of what the assistant will answer.
            self._close("unanswered")
        present = {self.cast.assistant.name, name, u.addressee, *(p.name for p in self._run)}
        if self._run and any(n not in present for n in u.narration_names):
            # Someone else acts in the narration between the lines: the exchange is interrupted.
            self._close("third_party_in_narration")
        if u.addressee is not None and not self._said_to_this_conversation(u, role):
            # Said to someone else (a servant, a third character, someone on the phone): not an
            # answer to the user, nor a line the assistant is asked to answer.
            self._close("addressee_change")
            self.report.drop("said_to_someone_else", where(self.source, u))
            return
        self._run.append(_Part(role, name, u))

    def _said_to_this_conversation(self, u: Utterance, role: str) -> bool:
        """Whether a line with a known addressee is said to the other side of this conversation."""
        if u.addressee == ELSEWHERE_ADDRESSEE:
            return False
        if role == HUMAN:
            return u.addressee == self.cast.assistant.name
        humans = {p.name for p in self._run if p.role == HUMAN}
        if humans:
            return u.addressee in humans
        # The assistant opens: fine when said to a possible user.
        return not self.cast.users or u.addressee in self._user_names

    def _drop_parts(self, parts: list[_Part], reason: str) -> None:
        for part in parts:
            self.report.drop(reason, where(self.source, part.utterance))

    def _close(self, cause: str) -> None:
        """End the current dialogue (`cause` says why): merge, trim, cut into windows, emit
        samples."""
        run, self._run = self._run, []
        if not run:
            return
        self.breaks[cause] += 1
        turns: list[_Turn] = []
        for part in run:
            if turns and turns[-1].role == part.role:
                turns[-1].parts.append(part)
            else:
                turns.append(_Turn(part.role, [part]))
        # An over-long turn cannot be cut without changing what was said: drop it, which splits
        # the dialogue into the pieces before and after it.
        piece: list[_Turn] = []
        for turn in turns:
            if len(turn.text(labelled=False)) > self.options.max_turn_chars:
                self._drop_parts(turn.parts, "turn_too_long")
                self._emit_piece(piece, "turn_too_long")
                piece = []
            else:
                piece.append(turn)
        self._emit_piece(piece, cause)

    def _emit_piece(self, turns: list[_Turn], cause: str) -> None:
        if not turns:
            return
        if len({t.role for t in turns}) < 2:
            self._drop_parts([p for t in turns for p in t.parts], "no_exchange")
            return
        opening = None
        if turns[0].role == GPT:
            opening = turns.pop(0)
            if self.options.leading_assistant == "drop":
                self._drop_parts(opening.parts, "leading_assistant")
                opening = None
        if turns[-1].role == HUMAN:
            self._drop_parts(turns.pop().parts, "trailing_user")
        pairs = [(turns[i], turns[i + 1]) for i in range(0, len(turns), 2)]
        window: list[tuple[_Turn, _Turn]] = []
        for pair in pairs:
            if window and (
                2 * (len(window) + 1) > self.options.max_turns
                or self._chars(window + [pair]) > self.options.max_sample_chars
            ):
                self._emit_window(window, opening, "window_limit")
                window, opening = [], None
            if self._chars([pair]) > self.options.max_sample_chars:
                self._drop_parts(pair[0].parts + pair[1].parts, "sample_too_long")
                continue
            window.append(pair)
        self._emit_window(window, opening, cause)

    @staticmethod
    def _chars(pairs: list[tuple[_Turn, _Turn]]) -> int:
        return sum(len(t.text(labelled=False)) for pair in pairs for t in pair)

    def _emit_window(
        self, pairs: list[tuple[_Turn, _Turn]], opening: _Turn | None, cause: str
    ) -> None:
        if not pairs:
            if opening is not None:
                self._drop_parts(opening.parts, "leading_assistant")
            return
        turns = [t for pair in pairs for t in pair]
        # Several people on the human side: say who speaks, or the character answers a blur.
        labelled = len({p.name for t in turns if t.role == HUMAN for p in t.parts}) > 1
        system = self.options.system
        utterances = []
        if opening is not None:
            line = f"{self.cast.assistant.name}：{opening.text(labelled=False)}"
            system = f"{system}\n\n{line}" if system else line
            utterances += [p.utterance for p in opening.parts]
        utterances += [p.utterance for t in turns for p in t.parts]
        conversations = [
            {"from": t.role, "value": t.text(labelled and t.role == HUMAN)} for t in turns
        ]
        self.samples.append(
            Sample(conversations, system, utterances, ended_by=cause, source=self.source)
        )
