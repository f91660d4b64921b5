"""The reward on hostile rollouts: turns split in linear time exactly as the regex rule did, and
compute_score never raises on any decoded output, however large or malformed."""

import random
import re

import pytest

from plugins.speaker_rec.protocol import PROTOCOLS
from rewards.speaker_rec import DATA_SOURCE, compute_score, split_turns
from tools.dev.bench_parse import adversarial_actions

# The rule as it was written before (a regex that backtracks badly on hostile text): the reference.
TURN_BOUNDARY = re.compile(
    r"\nuser\n(?:<tool_response>.*?</tool_response>\n)+assistant\n|\nuser\n.*?\nassistant\n",
    re.DOTALL,
)
PIECES = [
    "\nuser\n",
    "\nassistant\n",
    "<tool_response>",
    "</tool_response>",
    "\n",
    "user",
    "assistant",
    "x",
    "<tool_response>\n",
    "</tool_response>\nassistant\n",
    "<answer>a</answer>",
]
GROUND_TRUTH = {"truth": "a", "candidates": ["a", "other"], "other": "other", "open_set": False}


def reference(text: str) -> list[str]:
    turns = TURN_BOUNDARY.split(text)
    if len(turns) > 1 and not turns[-1].strip():
        turns.pop()
    return turns


def test_turns_split_exactly_as_the_regex_rule():
    rng = random.Random(15)
    for _ in range(20_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 10)))
        assert split_turns(text) == reference(text), repr(text)


@pytest.mark.parametrize("size", [1000, 1024 * 1024])
def test_compute_score_never_raises_on_hostile_output(size):
    for name, text in adversarial_actions(size).items():
        for protocol in PROTOCOLS:
            result = compute_score(DATA_SOURCE, text, GROUND_TRUTH, {"protocol": protocol})
            assert result["score"] == -1.0, name
            assert result["format_ok"] in (0, 1)
