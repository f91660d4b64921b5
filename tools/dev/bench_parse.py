"""Benchmark of model-output parsing on hostile turns: `python -m tools.dev.bench_parse`
(tools.dev.bench
calls `run`).

Every adversarial family of `adversarial_actions` (repeated opening tags of every kind, JSON nested
far beyond any limit, unbalanced and interleaved tags, invalid escapes, a valid call behind a huge
think) is built at 1 MB and at 8 MB and parsed in both protocols by plugins.speaker_rec.protocol,
and scored by rewards.speaker_rec (which splits a rollout into turns first). Figures are CPU
seconds of this process (one core), so they do not depend on how busy the machine is; the 8 MB /
1 MB ratio shows the growth (linear: about 8). The tests feed the same families to the parser.
"""

import argparse
import json
import sys
import time

from plugins.speaker_rec.protocol import PROTOCOLS, parse_turn
from rewards.speaker_rec import DATA_SOURCE, compute_score

MB = 1024 * 1024
TARGET_SECONDS = 1.0
VALID_CALL = '<tool_call>\n{"name": "audio_sim", "arguments": {}}\n</tool_call>'
# Opening and closing tags of both protocols, and the turn boundaries of a decoded rollout.
TAGS = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool>",
    "</tool>",
    "<tool_response>",
    "</tool_response>",
    "\nuser\n",
    "\nassistant\n",
)


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // max(1, len(unit)))


def adversarial_actions(size: int) -> dict[str, str]:
    """Named hostile assistant turns of about `size` characters each."""
    actions = {f"repeat {tag.strip()!r}": _fill(tag, size) for tag in TAGS}
    half = size // 2
    actions.update(
        {
            "nested [ in a call": "<tool_call>" + _fill("[", size) + "</tool_call>",
            "nested { in a call": "<tool_call>" + _fill('{"a":', size) + "</tool_call>",
            "nested [ unclosed call": "<tool_call>" + _fill("[", size),
            "nested [ in a string": '<tool_call>{"name": "'
            + _fill("[", size)
            + '", "arguments": {}}</tool_call>',
            "open then close tags": _fill("<tool_call>", half) + _fill("</tool_call>", half),
            "interleaved tags": _fill("<think><tool_call><answer><tool></think>", size),
            "unbalanced nesting": _fill("<think><think></think><answer><tool_call></answer>", size),
            "open call then text": "<tool_call>" + _fill("x", size),
            "lone surrogates": _fill("\ud800<answer>\udfff", size),
            "bad escapes in a call": "<tool_call>"
            + _fill('{"name": "\\ud800\\x\\u12', size)
            + "</tool_call>",
            "huge think, valid call": "<think>" + _fill("a", size) + "</think>" + VALID_CALL,
            "tool responses never closed": _fill("\nuser\n<tool_response>", size),
            "users never answered": _fill("\nuser\n<think>", size),
            "many empty turns": _fill("\nuser\n\nassistant\n", size),
        }
    )
    return actions


def _cpu_seconds(fn, *args) -> float:
    started = time.process_time()
    fn(*args)
    return time.process_time() - started


def _score(text: str, protocol: str) -> dict:
    return compute_score(
        DATA_SOURCE,
        text,
        {"truth": "a", "candidates": ["a", "other"], "other": "other", "open_set": False},
        {"protocol": protocol},
    )


def measure_all(sizes: tuple[int, ...] = (MB, 8 * MB)) -> dict:
    """Worst CPU seconds over the families and protocols at each size, parse and reward apart."""
    worst: dict[str, dict[int, tuple[float, str]]] = {"parse": {}, "reward": {}}
    for size in sizes:
        for name, text in adversarial_actions(size).items():
            for protocol in PROTOCOLS:
                for part, fn in (("parse", parse_turn), ("reward", _score)):
                    seconds = _cpu_seconds(fn, text, protocol)
                    if seconds >= worst[part].get(size, (-1.0, ""))[0]:
                        worst[part][size] = (seconds, f"{name} ({protocol})")
    result: dict = {
        "bench": "parse",
        "families": len(adversarial_actions(1024)),
        "protocols": list(PROTOCOLS),
    }
    for part, by_size in worst.items():
        result[part] = {
            f"{size // MB}MB": {"cpu_s": round(seconds, 4), "worst": where}
            for size, (seconds, where) in by_size.items()
        }
        small, large = by_size[min(sizes)][0], by_size[max(sizes)][0]
        result[part]["growth_largest_over_smallest"] = round(large / max(small, 1e-6), 1)
    result["targets"] = {
        f"{part}_{size // MB}MB_under_{TARGET_SECONDS:g}s": {
            "measured": round(worst[part][size][0], 4),
            "met": worst[part][size][0] < TARGET_SECONDS,
        }
        for part in worst
        for size in sizes
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.bench_parse",
        description="Time model-output parsing and the reward on hostile turns of 1 MB and 8 MB "
        "(CPU seconds, one core; the worst family per size). Prints one JSON record; exit 1 when a "
        "target is missed.",
    )
    parser.add_argument(
        "--sizes-mb", type=int, nargs="+", default=[1, 8], help="turn sizes (default: 1 8)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes_mb):
        parser.error("--sizes-mb must be positive")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Measure and print the parsing figures; 1 when a target is missed."""
    result = measure_all(tuple(size * MB for size in args.sizes_mb))
    print(json.dumps(result), flush=True)
    return 0 if all(target["met"] for target in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
