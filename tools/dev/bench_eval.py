"""Benchmark of tools.sr.evaluate's multi-port scaling, for `make bench` (tools.dev.bench calls
`run`) and
`python -m tools.dev.bench_eval`.

N stand-in servers (tools.dev.scripted_openai, each in its own process, answering after a fixed
latency; two turns per trajectory: audio_sim, then the answer) are evaluated with ports 1..N
for N = 1, 2, 4, 8, through the same engine as `python -m tools.sr.evaluate`. The figure is the
throughput in turns per second at N ports over N times the throughput at one port, measured
in the same run (target >= 0.9); next to it, the throughput over what the servers allowed at
the request latency they actually showed (stand-ins and client share this machine's cores, so
their latency grows with N on a small box). Lines of the demo series repeat so that every port gets
`trajectories_per_port` trajectories. The default latency, 0.5 s, is still shorter than a real
model's turn; at 0.2 s, eight stand-ins (Python HTTP servers) and the client on 2 cores measure
mostly the stand-ins' own CPU contention (scaling 0.85 at 8 ports, with their latency up 10%).
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

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.series import load_series
from tools.common import process
from tools.common.fileio import AppendOnlyJsonl
from tools.common.ports import free_port
from tools.sr import prepare
from tools.sr.eval_pool import RetryPolicy, run_pool

REPO = Path(__file__).resolve().parents[2]
TARGET_SCALING = 0.9


def start_stand_ins(n: int, latency: float) -> list[tuple[subprocess.Popen, str]]:
    """`n` scripted servers, each its own process, ready to answer."""
    servers = []
    try:
        for _ in range(n):
            port = free_port()
            proc = process.start(
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
            servers.append((proc, f"http://127.0.0.1:{port}/v1"))
            process.wait_ready(servers[-1][1], 30, proc)
    except BaseException:
        stop_stand_ins(servers)
        raise
    return servers


def stop_stand_ins(servers: list[tuple[subprocess.Popen, str]]) -> None:
    for proc, _ in servers:
        process.stop(proc)


def measure_all(
    data_dir: Path | str = REPO / "data" / "demo",
    series_name: str = "chun_jiang",
    ports: tuple[int, ...] = (1, 2, 4, 8),
    latency: float = 0.5,
    concurrency: int = 8,
    trajectories_per_port: int = 48,
) -> dict:
    """Throughput of the eval engine at each port count and its scaling over N x one port."""
    data_dir = Path(data_dir)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        labels_path = Path(tmp) / "labels.json"
        if (
            prepare.main(
                [
                    "--series",
                    series_name,
                    "--data-dir",
                    str(data_dir),
                    "--out",
                    str(labels_path),
                    "--quiet",
                ]
            )
            != 0
        ):
            raise RuntimeError(f"prepare failed on {series_name}")
        series = load_series(series_name, data_dir)
        labels = read_labels(labels_path, series)
        env = SpeakerEnv(series, labels.lines, known=labels.characters)
        lines = sorted(labels.lines)
        servers = start_stand_ins(max(ports), latency)
        try:
            figures = []
            for n in ports:
                todo = [lines[i % len(lines)] for i in range(trajectories_per_port * n)]
                out = Path(tmp) / f"results-{n}.jsonl"
                started, cpu = time.perf_counter(), time.process_time()
                with AppendOnlyJsonl(out, key=lambda record: record["line"]) as output:
                    failed, _ = asyncio.run(
                        run_pool(
                            env,
                            [url for _, url in servers[:n]],
                            "stand-in",
                            todo,
                            output,
                            sampling={},
                            concurrency=concurrency,
                            timeout=30,
                            policy=RetryPolicy(retries=0),
                        )
                    )
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                records = [
                    json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()
                ]
                turns = sum(r["turns"] for r in records)
                latencies = [s for r in records for s in r["latency_s"]]
                figures.append(
                    {
                        "ports": n,
                        "trajectories": len(todo),
                        "failed": failed,
                        "turns": turns,
                        "seconds": round(seconds, 2),
                        "turns_per_s": round(turns / seconds, 1),
                        "mean_request_s": round(sum(latencies) / len(latencies), 3),
                        "client_cpu_cores": round(cpu / seconds, 2),
                    }
                )
        finally:
            stop_stand_ins(servers)
    single = figures[0]["turns_per_s"] / figures[0]["ports"]
    for figure in figures:
        figure["over_ports_x_single"] = round(figure["turns_per_s"] / (figure["ports"] * single), 3)
        # The share of what the servers allowed at the latency they actually showed: separates the
        # client's own overhead from servers slowed down by sharing the machine's cores.
        figure["over_bound_at_measured_latency"] = round(
            figure["turns_per_s"] * figure["mean_request_s"] / (figure["ports"] * concurrency), 3
        )
    return {
        "bench": "eval_ports",
        "series": series_name,
        "latency_s": latency,
        "concurrency_per_port": concurrency,
        "ideal_turns_per_s_per_port": concurrency / latency,
        "figures": figures,
        "min_scaling": min(f["over_ports_x_single"] for f in figures),
        "target_scaling": TARGET_SCALING,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.bench_eval",
        description="Throughput of tools.sr.evaluate against 1, 2, 4, 8 stand-in servers (own "
        "processes, fixed "
        "latency) as a ratio of N x the one-port throughput; prints one JSON record.",
    )
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--series", default="chun_jiang")
    parser.add_argument(
        "--ports", default="1,2,4,8", help="port counts to measure (default: %(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.5,
        help="stand-in answer latency, seconds "
        "(default: %(default)s, shorter than any real model's turn)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="trajectories at a time per port"
    )
    parser.add_argument("--trajectories-per-port", type=int, default=48)
    return parser


def _port_counts(spec: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); ValueError when it is not a comma-separated list of counts."""
    return tuple(int(p) for p in spec.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ports = _port_counts(args.ports)
    except ValueError:
        parser.error(f"--ports: not a comma-separated list of counts: {args.ports!r}")
    if ports[0] != 1 or any(p < 1 for p in ports):
        parser.error("--ports: the first count must be 1 (the baseline)")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Measure and print the scaling figures; 1 when the scaling is under its target."""
    result = measure_all(
        args.data_dir,
        args.series,
        _port_counts(args.ports),
        args.latency,
        args.concurrency,
        args.trajectories_per_port,
    )
    print(json.dumps(result), flush=True)
    return 0 if result["min_scaling"] >= TARGET_SCALING else 1


if __name__ == "__main__":
    sys.exit(main())
