"""Teacher trajectories for speaker recognition: `make traces SERIES=... TEACHER_URL=...
TEACHER_MODEL=...`.

For every selected line a teacher (any OpenAI-compatible API, or the offline `oracle`) is
asked to solve it with tools through the SR environment; each finished trajectory becomes one
JSONL record: messages (normalised: hermes tool calls are always structured), tool calls,
answer, correctness under both rules, completeness, teacher, timing.

Resume rule: the output is append-only and one record is one line
(tools.common.fileio.AppendOnlyJsonl);
a rerun skips lines that already have a record and cuts off a torn last line, so a crash loses at
most the lines that were in flight and never duplicates one. A run holds a lock on its output: a
second run on the same output exits 2 naming the first one's pid; a file that already holds two
records of one line is refused with the count (`--dedupe` keeps the first of each).
"""

import argparse
import asyncio
import logging
import random
import sys
import time
from pathlib import Path

from plugins.redaction import redact_logs
from plugins.speaker_rec.env import SpeakerEnv, Trajectory
from plugins.speaker_rec.protocol import Action, render_turn
from plugins.speaker_rec.series import SeriesError
from tools.common.fileio import OutputError
from tools.common.series_args import (
    add_rollout_args,
    add_series_args,
    load_series_and_labels,
    rollout_env,
)
from tools.sr.rollout import (
    _append_turn,
    line_truth,
    open_output,
    run_api,
    teacher_client,
    trajectory_record,
    write_records,
)
from tools.sr.selection import parse_rates, select_lines

logger = logging.getLogger(__name__)


class OracleTeacher:
    """Deterministic, format-correct teacher for the demo and tests: calls audio_sim and a
    seeded choice of the other offered tools, for real, then answers the ground truth (or the
    "other" label when the truth is not a candidate). Never the default when a URL is given."""

    name = "oracle"

    def __init__(self, seed: int):
        self.seed = seed

    def plan(self, trajectory: Trajectory, truth: str) -> list[Action]:
        tools = [t for t in trajectory.env.toolset.available if t != "audio_sim"]
        rng = random.Random(f"{self.seed}:{trajectory.index}")
        chosen = ["audio_sim"] + sorted(
            rng.sample(tools, rng.randint(0, len(tools))), key=tools.index
        )
        other = trajectory.env.other
        answer = truth if truth in trajectory.label.names else other
        zh = trajectory.env.language == "zh"
        actions = [
            Action("tool", name, f"调用 {name} 获取线索。" if zh else f"Check {name}.")
            for name in chosen
        ]
        actions.append(
            Action(
                "answer",
                answer,
                f"综合线索，说话人是{answer}。"
                if zh
                else f"Putting the clues together, the speaker is {answer}.",
            )
        )
        return actions


def run_oracle(env: SpeakerEnv, teacher: OracleTeacher, index: int, truth: str) -> dict:
    """One oracle trajectory; same record shape as an API trajectory."""
    started = time.perf_counter()
    trajectory = env.start(index)
    messages = env.prompt(index)
    for action in teacher.plan(trajectory, truth):
        step = trajectory.step(action)
        _append_turn(
            messages,
            env,
            render_turn(action, env.protocol),
            action,
            step.observation,
            structured=None,
        )
        if step.done:
            break
    return trajectory_record(
        env,
        trajectory,
        messages,
        truth,
        teacher={"kind": "oracle", "seed": teacher.seed},
        seconds=time.perf_counter() - started,
        requests=0,
        hint_used=False,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.traces",
        description="Ask a teacher model to solve selected lines with tools and store one "
        "trajectory per "
        "line (JSONL, resumable; exit 1 when some lines failed and a rerun should retry "
        "them). The API key "
        "comes from OPENAI_API_KEY. --teacher oracle needs no API: it answers the ground truth "
        "deterministically (for demos and tests; records say so).",
    )
    add_series_args(parser, labels=True)
    parser.add_argument(
        "--out", required=True, type=Path, help="traces.jsonl (appended to, resumable)"
    )
    parser.add_argument(
        "--teacher",
        choices=("api", "oracle"),
        default=None,
        help="default: api when --teacher-url is given, else an error",
    )
    parser.add_argument(
        "--teacher-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    parser.add_argument("--teacher-model", help="model name at the teacher endpoint")
    add_rollout_args(parser)
    parser.add_argument(
        "--select",
        default="wrong=1,low_score=1,close=1,confident=0.1",
        help="sampling rate per sample type (default: %(default)s)",
    )
    parser.add_argument("--limit", type=int, help="at most this many lines (after selection)")
    parser.add_argument("--seed", type=int, default=0, help="seeds line selection and the oracle")
    parser.add_argument("--workers", type=int, default=8, help="concurrent trajectories")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="retries per request (429, 5xx, timeouts), with exponential back-off",
    )
    parser.add_argument(
        "--no-hint-retry",
        action="store_true",
        help="do not retry a wrong trajectory with the ground truth as a hint",
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="when --out already holds several records of one line, keep the first of each "
        "(default: refuse, naming the count)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    redact_logs()

    teacher_kind = args.teacher or ("api" if args.teacher_url else None)
    if teacher_kind is None:
        parser.error("give --teacher-url (and --teacher-model) or --teacher oracle")
    if teacher_kind == "api" and not (args.teacher_url and args.teacher_model):
        parser.error("--teacher api needs --teacher-url and --teacher-model")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the teacher over the selected lines, appending to --out; 1 while lines failed, 2 on
    bad input."""
    try:
        rates = parse_rates(args.select)
        series, labels = load_series_and_labels(args)
    except (SeriesError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = rollout_env(args, series, labels)
    selected = select_lines(series, labels.lines, rates, args.seed)
    if args.limit is not None:
        selected = selected[: args.limit]

    if args.teacher == "oracle":
        oracle = OracleTeacher(args.seed)

        async def solve(i: int) -> dict:
            return run_oracle(env, oracle, i, line_truth(env, i))
    else:
        client = teacher_client(args.teacher_url, args.timeout, args.retries)
        sampling = {
            "temperature": args.temperature,
            "top_p": args.top_p,
            "max_tokens": args.max_tokens,
        }

        async def solve(i: int) -> dict:
            return await run_api(
                env,
                client,
                args.teacher_model,
                i,
                line_truth(env, i),
                sampling=sampling,
                hints=not args.no_hint_retry,
            )

    try:
        with open_output(args.out, args.dedupe) as output:
            todo = [i for i in selected if i not in output.keys]
            logger.info(
                "%d lines selected, %d already done, %d to run",
                len(selected),
                len(selected) - len(todo),
                len(todo),
            )
            failed = asyncio.run(write_records(output, todo, solve, args.workers))
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
