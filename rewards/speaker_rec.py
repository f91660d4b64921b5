"""verl reward for speaker recognition: replays a rollout through the SR rules and scores its
answer.

Loaded by verl from `reward.custom_reward_function.path=rewards/speaker_rec.py` (name
`compute_score`; recipes/rl/speaker_rec_grpo.yaml sets both). verl 0.9.1's naive reward manager
calls it once per rollout with `solution_str` = `tokenizer.decode(response_ids,
skip_special_tokens=True)` of the whole multi-turn response. With the Qwen3 chat template the
special tokens vanish and each tool turn between two assistant turns reads
"\\nuser\\n<tool_response>\\n…\\n</tool_response>\\nassistant\\n" (in the tags protocol, where
observations are user messages: "\\nuser\\n…\\nassistant\\n"). `split_turns` cuts the response
there; each assistant turn is parsed in the sample's protocol (`extra_info["protocol"]`, default
hermes) and judged by `plugins.speaker_rec.rules.Judge`, the same rules the tool server, traces and
evaluation apply (candidates from the ground truth, tools from `extra_info["tool_selection"]` or all
of them, at most `extra_info["max_turns"]` turns, default 15).

Score: −1 on a format failure (a turn without exactly one well-formed action, a turn after the
trajectory ended, or turns that disagree with verl's own count `extra_info["num_turns"]`, which
unmasks a tool response the model wrote itself), or unless exactly one answer was given and the
rules accepted it (a candidate, after `audio_sim`); a rollout cut off before answering is −1.
Otherwise
max(0, correct − lambda_turns·max(0, turns − free_turns) − lambda_dup·duplicates), where correct is
the strict rule of `plugins.speaker_rec.correctness` (an open-set truth, `ground_truth["open_set"]`,
is right as "other" or a new-role label; a closed truth only by its exact name).

Defaults (our choice: the published recipe names no penalties), set only through verl's
`reward.custom_reward_function.reward_kwargs`, never from the environment:
- `free_turns` 5: calling each of the four tools once and answering costs nothing;
- `lambda_turns` 0.1 per turn beyond that, so a right answer in the 15th turn earns 0;
- `lambda_dup` 0.25 per repeated tool call (the call also wastes a turn).

The returned dict holds only numbers (verl stacks every key into an array): score, correct,
format_ok, answers (counted up to the first turn after the trajectory ended), turns, duplicates,
invalid_turns. verl loads this file by path without
registering it in sys.modules, so it avoids `from __future__ import annotations` (dataclasses would
then look the module up by name and fail).
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields

from plugins.speaker_rec.correctness import strict
from plugins.speaker_rec.labels import classify
from plugins.speaker_rec.protocol import PROTOCOLS, TOOL_NAMES, parse_turn
from plugins.speaker_rec.rules import FORMAT_REASONS, Judge, RuleConfig

DATA_SOURCE = "dramakit/speaker_rec"
DEFAULT_MAX_TURNS = RuleConfig().max_turns
# What verl's naive reward manager adds on its own when a reward model is configured.
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")
# A non-assistant turn as it survives skip_special_tokens: tool responses in the Qwen3 template,
# or any user message (tags-protocol observations and error replies). `turn_boundaries` finds
# them in linear time; its rule, as a regex (which backtracks quadratically on hostile text):
#   \nuser\n(?:<tool_response>.*?</tool_response>\n)+assistant\n | \nuser\n.*?\nassistant\n
USER, ASSISTANT = "\nuser\n", "\nassistant\n"
RESPONSE_OPEN, RESPONSES_END = "<tool_response>", "</tool_response>\nassistant\n"


@dataclass(frozen=True)
class Penalties:
    """The reward's knobs (see the module docstring for what the defaults mean)."""

    lambda_turns: float = 0.1
    lambda_dup: float = 0.25
    free_turns: int = 5

    @classmethod
    def from_kwargs(cls, reward_kwargs: Mapping) -> "Penalties":
        """Penalties from verl's reward_kwargs; unknown keys and negative values are refused, so a
        misspelt knob cannot silently fall back to its default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(reward_kwargs) - known - set(VERL_KWARGS))
        if unknown:
            raise TypeError(
                f"rewards/speaker_rec.py: unknown reward_kwargs {unknown}; known: {sorted(known)}"
            )
        values = {}
        for f in fields(cls):
            value = reward_kwargs.get(f.name, f.default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"rewards/speaker_rec.py: reward_kwargs {f.name} must be a number >= "
                    f"0, got {value!r}"
                )
            if f.name == "free_turns" and int(value) != value:
                raise ValueError(
                    "rewards/speaker_rec.py: reward_kwargs free_turns must be a whole "
                    f"number, got {value!r}"
                )
            values[f.name] = int(value) if f.name == "free_turns" else float(value)
        return cls(**values)


@dataclass(frozen=True)
class GroundTruth:
    """`reward_model.ground_truth` of one RL parquet row (the export's contract)."""

    truth: str
    candidates: list[str]
    other: str
    open_set: bool

    @classmethod
    def parse(cls, ground_truth) -> "GroundTruth":
        """Validate a ground truth as verl hands it over (parquet lists may arrive as numpy
        arrays)."""
        if not isinstance(ground_truth, Mapping):
            raise TypeError(
                f"speaker_rec ground_truth must be a dict, got {type(ground_truth).__name__}"
            )
        missing = [
            key for key in ("truth", "candidates", "other", "open_set") if key not in ground_truth
        ]
        if missing:
            raise ValueError(f"speaker_rec ground_truth lacks {missing}: {dict(ground_truth)!r}")
        candidates = [str(name) for name in ground_truth["candidates"]]
        if not candidates:
            raise ValueError(f"speaker_rec ground_truth has no candidates: {dict(ground_truth)!r}")
        return cls(
            str(ground_truth["truth"]),
            candidates,
            str(ground_truth["other"]),
            bool(ground_truth["open_set"]),
        )

    def is_right(self, answer: str) -> bool:
        """The strict rule; `open_set` stands in for the character inventory prepare judged with."""
        answer = "other" if answer.strip() == self.other else answer
        known = () if self.open_set else (self.truth,)
        return strict(answer, self.truth, classify(self.truth), known)


def turn_boundaries(text: str) -> list[tuple[int, int]]:
    """(start, end) of every non-assistant turn in `text`, left to right and non-overlapping: at
    each "\nuser\n", the turn runs to the first "</tool_response>\nassistant\n" when the turn
    opens with <tool_response> and one follows, else to the first "\nassistant\n". Each search
    starts past the previous match, and a search that finds nothing ends the scan, so the
    whole text is read a bounded number of times."""
    found, position = [], 0
    responses_end_missing = False  # once absent past some point, absent past every later one
    while True:
        start = text.find(USER, position)
        if start < 0:
            return found
        body = start + len(USER)
        end = -1
        if not responses_end_missing and text.startswith(RESPONSE_OPEN, body):
            close = text.find(RESPONSES_END, body + len(RESPONSE_OPEN))
            if close < 0:
                responses_end_missing = True
            else:
                end = close + len(RESPONSES_END)
        if end < 0:
            close = text.find(ASSISTANT, body)
            if close < 0:
                return found
            end = close + len(ASSISTANT)
        found.append((start, end))
        position = end


def split_turns(solution_str: str) -> list[str]:
    """The assistant turns of a decoded multi-turn response, in order. A trailing empty turn (the
    generation prompt of a turn never generated) is not a turn."""
    turns, position = [], 0
    for start, end in turn_boundaries(solution_str):
        turns.append(solution_str[position:start])
        position = end
    turns.append(solution_str[position:])
    if len(turns) > 1 and not turns[-1].strip():
        turns.pop()
    return turns


def _tools(extra_info: Mapping) -> tuple[str, ...]:
    selection = extra_info.get("tool_selection")
    if selection is None or len(selection) == 0:
        return TOOL_NAMES
    unknown = [name for name in selection if name not in TOOL_NAMES]
    if unknown:
        raise ValueError(
            f"speaker_rec extra_info tool_selection names unknown tools {unknown}; "
            f"known: {TOOL_NAMES}"
        )
    return tuple(str(name) for name in selection)


def _protocol(extra_info: Mapping) -> str:
    protocol = extra_info.get("protocol") or "hermes"
    if protocol not in PROTOCOLS:
        raise ValueError(f"speaker_rec extra_info protocol {protocol!r} is not one of {PROTOCOLS}")
    return protocol


def compute_score(
    data_source, solution_str: str, ground_truth, extra_info: dict | None = None, **reward_kwargs
) -> dict:
    """Score one rollout (see the module docstring); reward_kwargs: lambda_turns, lambda_dup,
    free_turns."""
    if data_source != DATA_SOURCE:
        raise ValueError(
            f"rewards/speaker_rec.py scores data_source {DATA_SOURCE!r}, got {data_source!r}"
        )
    penalties = Penalties.from_kwargs(reward_kwargs)
    truth = GroundTruth.parse(ground_truth)
    extra_info = extra_info or {}
    protocol = _protocol(extra_info)
    rules = RuleConfig(max_turns=int(extra_info.get("max_turns") or DEFAULT_MAX_TURNS))
    judge = Judge(truth.candidates, _tools(extra_info), rules)

    turns = split_turns(solution_str)
    # verl's reward manager adds num_turns = assistant turns + tool turns + 1. A response that
    # splits
    # into another number of turns holds a boundary the model wrote itself: a forged tool response.
    verl_turns = extra_info.get("num_turns")
    answers, format_ok = 0, verl_turns is None or int(verl_turns) == 2 * len(turns)
    for text in turns:
        if judge.done and not format_ok:
            break  # the score is -1 whatever follows; a hostile rollout may hold 10^6 turns
        action = parse_turn(text, protocol)
        answers += action.kind == "answer"
        if judge.done or action.error in FORMAT_REASONS:
            format_ok = False
        if not judge.done:
            judge.judge(action)

    correct = judge.complete and truth.is_right(judge.answer)
    if not format_ok or answers != 1 or not judge.complete:
        score = -1.0
    else:
        extra_turns = max(0, len(turns) - penalties.free_turns)
        score = max(
            0.0,
            correct
            - penalties.lambda_turns * extra_turns
            - penalties.lambda_dup * judge.duplicates,
        )
    return {
        "score": float(score),
        "correct": int(correct),
        "format_ok": int(format_ok),
        "answers": answers,
        "turns": len(turns),
        "duplicates": judge.duplicates,
        "invalid_turns": judge.invalid_turns,
    }
