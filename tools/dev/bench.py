"""Benchmarks for `make bench`: figures are ratios measured within one run.

The machines are shared and noisy, so each figure compares our code with a baseline timed
in the same process, back to back: the series loader against the bare file reads it cannot
avoid (json.load of every file, np.load of every array); prepare's table
(tools/dev/bench_prepare.py: accuracy by our rules and the published one, candidates, time and peak
memory per series, and on a synthetic series of `--synthetic-lines` lines built from the largest,
written to runs/bench_prepare/); and the traces loop with 64 workers against a
stand-in teacher (its own process) that answers after a fixed 200 ms, against the ideal of
64 × 5 turns per second. The tool server (tools/dev/bench_tool_server.py: observations/s, latency,
memory after 100k trajectories) and multi-port eval scaling (tools/dev/bench_eval.py: N ports
against
N × one port) and model-output parsing on hostile turns (tools/dev/bench_parse.py) have modules of
their own.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.series import SERIES_NAME, load_series
from tools.common import process
from tools.common.fileio import atomic_write_json, atomic_write_text
from tools.common.ports import free_port
from tools.dev import bench_eval, bench_parse, bench_prepare, bench_tool_server
from tools.dev.bench_prepare import prepare_command
from tools.sr import rollout

REPO = Path(__file__).resolve().parents[2]


def bare_read(root: Path) -> int:
    """Read every JSON and .npy file of a series without validating anything."""
    n = 0
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            with path.open(encoding="utf-8") as f:
                json.load(f)
            n += 1
        elif path.suffix == ".npy":
            np.load(path)
            n += 1
    return n


def best_of(repeats: int, fn, *args) -> float:
    """Fastest of `repeats` wall-clock timings (the least disturbed by other load)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(*args)
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_loader(data_dir: Path, name: str, repeats: int) -> dict:
    """Loader time, bare-read time and their ratio for one series."""
    loader = best_of(repeats, load_series, name, data_dir)
    bare = best_of(repeats, bare_read, data_dir / name)
    lines = len(load_series(name, data_dir))
    return {
        "series": name,
        "lines": lines,
        "load_s": round(loader, 3),
        "bare_read_s": round(bare, 3),
        "load_over_bare_read": round(loader / bare, 2),
        "lines_per_s": int(lines / loader),
    }


def bench_traces(
    data_dir: Path, name: str, workers: int = 64, latency: float = 0.2, trajectories: int = 1280
) -> dict:
    """Turns per second of the traces loop against a stand-in teacher with a fixed latency,
    as a share of the ideal `workers / latency`; each trajectory is two turns (audio_sim,
    answer). The teacher runs in its own process, as a remote API would."""
    with tempfile.TemporaryDirectory(prefix="bench_traces_") as tmp:
        labels_path, out = Path(tmp) / "labels.json", Path(tmp) / "traces.jsonl"
        subprocess.run(
            prepare_command(data_dir, name, labels_path),
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        series = load_series(name, data_dir)
        labels = read_labels(labels_path, series)
        env = SpeakerEnv(series, labels.lines, known=labels.characters)
        lines = sorted(labels.lines)
        todo = [lines[i % len(lines)] for i in range(trajectories)]
        port = free_port()
        teacher = process.start(
            [
                sys.executable,
                "-m",
                "tools.dev.scripted_openai",
                "--port",
                str(port),
                "--latency",
                str(latency),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            url = f"http://127.0.0.1:{port}/v1"
            process.wait_ready(url, 30, teacher)
            client = rollout.teacher_client(url, timeout=30, retries=0)

            async def solve(i: int) -> dict:
                return await rollout.run_api(
                    env, client, "stand-in", i, "", sampling={}, hints=False
                )

            started, cpu = time.perf_counter(), time.process_time()
            with rollout.open_output(out) as output:
                asyncio.run(rollout.write_records(output, todo, solve, workers))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            process.stop(teacher)
        turns = sum(
            json.loads(line)["turns"] for line in out.read_text(encoding="utf-8").splitlines()
        )
    ideal = workers / latency
    return {
        "bench": "traces",
        "series": name,
        "workers": workers,
        "teacher_latency_s": latency,
        "trajectories": trajectories,
        "turns": turns,
        "turns_per_s": round(turns / seconds, 1),
        "ideal_turns_per_s": ideal,
        "over_ideal": round(turns / seconds / ideal, 3),
        "client_cpu_cores": round(cpu / seconds, 2),
        "target_over_ideal": 0.85,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.bench",
        description="Benchmark the series loader and prepare on every series found under the given "
        "drama_data directories, and prepare on a synthetic series built from the largest one; "
        "prints one JSON record per figure.",
    )
    parser.add_argument(
        "data_dirs", nargs="+", type=Path, help="directories holding <series>/ folders"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings per figure, the best is kept"
    )
    parser.add_argument("--no-prepare", action="store_true", help="skip the prepare figures")
    parser.add_argument(
        "--no-traces", action="store_true", help="skip the traces throughput figure"
    )
    parser.add_argument(
        "--no-tool-server", action="store_true", help="skip the tool server figures (about 2 min)"
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the multi-port eval scaling figures"
    )
    parser.add_argument(
        "--no-parse", action="store_true", help="skip the hostile model-output parsing figures"
    )
    parser.add_argument(
        "--synthetic-lines",
        type=int,
        default=60_000,
        help="lines of the synthetic series for prepare (0: none; default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic series (default: %(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run every benchmark asked for, one JSON record per figure; 1 when no series was found."""
    found = []
    for data_dir in args.data_dirs:
        if not data_dir.is_dir():
            print(f"skip {data_dir}: not present", file=sys.stderr)
            continue
        for sub in sorted(p.parent for p in data_dir.glob("*/subtitle_data")):
            if SERIES_NAME.match(sub.name):
                record = bench_loader(data_dir, sub.name, args.repeats)
                found.append((record["lines"], data_dir, sub.name))
                print(json.dumps({"bench": "loader", **record}), flush=True)
    if not args.no_parse:
        print(json.dumps(bench_parse.measure_all()), flush=True)
    demo = [(d, n) for _, d, n in found if n == "chun_jiang"]
    if demo and not args.no_traces:
        print(json.dumps(bench_traces(*demo[0])), flush=True)
    if demo and not args.no_tool_server:
        print(json.dumps(bench_tool_server.measure_all(*demo[0])), flush=True)
    if demo and not args.no_eval:
        print(json.dumps(bench_eval.measure_all(*demo[0])), flush=True)
    if not args.no_prepare and found:
        rows = bench_prepare.measure_all(
            args.data_dirs, synthetic_lines=args.synthetic_lines, seed=args.seed
        )
        for record in rows:
            print(json.dumps({"bench": "prepare", **record}, ensure_ascii=False), flush=True)
        out_dir = REPO / "runs" / "bench_prepare"
        atomic_write_json(out_dir / "bench_prepare.json", {"bench": "prepare", "rows": rows})
        atomic_write_text(out_dir / "bench_prepare.md", bench_prepare.markdown(rows))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
