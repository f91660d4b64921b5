"""The speaker-recognition environment: one series with its labels, in one protocol.

`SpeakerEnv.prompt(i)` renders the prompt for line i; `SpeakerEnv.start(i)` opens a
`Trajectory` that takes assistant turns (text or parsed actions) and returns what goes back
to the model: a tool's output, an error message for a turn that breaks a rule, or nothing
after a valid answer. Traces, the tool server, evaluation and the reward all drive this class.
"""

from dataclasses import dataclass

from plugins.speaker_rec.labels import other_label
from plugins.speaker_rec.prompts import render_prompt
from plugins.speaker_rec.protocol import PROTOCOLS, Action, parse_turn
from plugins.speaker_rec.rules import Judge, RuleConfig
from plugins.speaker_rec.series import Series
from plugins.speaker_rec.toolset import LineLabel, Toolset

# RuleConfig is frozen, so one shared default is safe (it was one default instance before, too)
DEFAULT_RULES = RuleConfig()


@dataclass(frozen=True)
class Step:
    """Result of one assistant turn: `observation` is the text sent back (empty after a
    valid answer), `reason` the broken rule or None, `done` whether the trajectory ended."""

    observation: str
    reason: str | None
    done: bool

    @property
    def valid(self) -> bool:
        return self.reason is None


class SpeakerEnv:
    """A series, its per-line labels from prepare, a protocol and a language. `known` is the
    character inventory answers are judged against (labels.json's `characters`)."""

    def __init__(
        self,
        series: Series,
        labels: dict[int, LineLabel],
        *,
        protocol: str = "hermes",
        language: str | None = None,
        rules: RuleConfig = DEFAULT_RULES,
        known: list[str] | None = None,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        self.series = series
        self.labels = labels
        self.known = known
        self.protocol = protocol
        self.language = language or series.language
        self.rules = rules
        self.toolset = Toolset(series, self.language)
        self.other = other_label(self.language)

    def prompt(self, index: int) -> list[dict]:
        """System and user messages for line `index`."""
        return render_prompt(
            self.series,
            self.labels,
            index,
            protocol=self.protocol,
            language=self.language,
            toolset=self.toolset,
            max_turns=self.rules.max_turns,
            other=self.other,
        )

    def start(self, index: int) -> "Trajectory":
        """A fresh trajectory for line `index`."""
        if index not in self.labels:
            raise KeyError(f"line {index} has no label in this environment")
        return Trajectory(self, index)


class Trajectory:
    """The state of judging one line: which tools were called, how many turns, the answer."""

    def __init__(self, env: SpeakerEnv, index: int):
        self.env = env
        self.index = index
        self.label = env.labels[index]
        self.judge = Judge(self.label.names, env.toolset.available, env.rules)

    def step_text(self, text: str) -> Step:
        """Parse an assistant turn in the environment's protocol, then `step`."""
        return self.step(parse_turn(text, self.env.protocol))

    def step(self, action: Action) -> Step:
        """Judge one assistant turn and produce what goes back to the model."""
        verdict = self.judge.judge(action)
        if not verdict.ok:
            message = self.judge.message(verdict.reason, action.name, self.env.language)
            return Step(message, verdict.reason, verdict.done)
        if action.kind == "tool":
            return Step(
                self.env.toolset.run(action.name, self.index, self.label), None, verdict.done
            )
        return Step("", None, True)
