"""Benchmark of the speaker-recognition tool server: `python -m tools.dev.bench_tool_server`
(tools.dev.bench calls `run`).

The server runs in its own process on the demo series; a load generator in this process (asyncio,
one keep-alive connection per request in flight, bodies assembled from pre-encoded parts) drives
trajectories of five steps,
the four real tool calls then an answer, followed by verl-tool's finish:

- one trajectory per request at 1, 64 and 256 concurrent trajectories: observations per second
  (every answered item counts, the finish too) and request latency p50/p99;
- 64-trajectory batched requests over 100,000 trajectories, 10,000 of which stop after two
  steps and never finish, so only the idle sweep frees them: observations per second, and the
  server's RSS (from /proc) after a warm-up and again after the sweep. The warm-up runs first so
  that the allocator's growth on the first requests is not counted as a leak.

The load generator shares the machine's cores with the server; its own CPU use is reported, and
so is each side's CPU per observation, which does not depend on how busy the machine is.

Then, against a second server with the default idle timeout and limits (`run_hostile`):

- /health polled every 10 ms while hostile 8 MB actions (tools.dev.bench_parse's families) are
posted
  one after another: its worst and p99 latency (target: within 100 ms);
- 1,000,000 trajectories that never finish and 1,000,000 finishes of ids never seen, in batches of
  1,000: the server's RSS once its live-trajectory cap is full and after all of them (target:
  within 10% of the full-cap figure: the caps, not the clients, bound the memory).
"""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
from tqdm import tqdm

from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import TOOL_NAMES, Action, render_turn
from plugins.speaker_rec.series import load_series
from plugins.speaker_rec.server import DEFAULT_MAX_BODY_BYTES, TOKEN_ENV
from plugins.speaker_rec.trajectory_store import DEFAULT_MAX_LIVE
from tools.common.ports import free_port
from tools.common.process import running_server
from tools.dev.bench_parse import adversarial_actions

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# Targets on 2 cores at 256 concurrent trajectories; the anchor is verl-tool's own server with a
# trivial echo tool: 874-988 obs/s at 256 concurrent, p99 about 400 ms.
TARGET_OBS_PER_S = 1500.0
TARGET_P99_MS = 100.0
TARGET_RSS_GROWTH = 0.10
TARGET_HEALTH_MS = 100.0
HOSTILE_FAMILIES = (
    "repeat '<tool_call>'",
    "repeat '<think>'",
    "interleaved tags",
    "open call then text",
    "lone surrogates",
    "nested [ unclosed call",
    "huge think, valid call",
)
STEPS = len(TOOL_NAMES) + 2  # four tools, the answer, the finish


class Bodies:
    """Request bodies assembled from pre-encoded parts: the client must stay cheap, since it
    shares the cores with the server."""

    def __init__(self, series: str, lines: list[int], answers: dict[int, str]):
        turns = [render_turn(Action("tool", name, "x"), "hermes") for name in TOOL_NAMES]
        self.lines = lines
        self.actions = [json.dumps(turn).encode() for turn in turns]
        self.answers = {
            line: json.dumps(render_turn(Action("answer", name, "x"), "hermes")).encode()
            for line, name in answers.items()
        }
        self.extras = {
            line: json.dumps({"series": series, "line": line}).encode() for line in lines
        }

    def item(self, trajectory: int, step: int) -> tuple[bytes, bytes, bytes, bytes]:
        """(id, action, extra_fields, finish) of one trajectory's step, JSON-encoded."""
        line = self.lines[trajectory % len(self.lines)]
        action = self.actions[step] if step < len(TOOL_NAMES) else self.answers[line]
        finish = b"true" if step == STEPS - 1 else b"false"
        return b'"t%d"' % trajectory, action, self.extras[line], finish

    def body(self, items: list[tuple[bytes, bytes, bytes, bytes]]) -> bytes:
        ids, actions, extras, finish = zip(*items, strict=True)
        return (
            b'{"trajectory_ids":[%s],"actions":[%s],"extra_fields":[%s],"finish":[%s],"is_last_step":[%s]}'
            % (
                b",".join(ids),
                b",".join(actions),
                b",".join(extras),
                b",".join(finish),
                b",".join([b"false"] * len(items)),
            )
        )


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Connection:
    """One keep-alive HTTP/1.1 connection that posts pre-encoded JSON bodies: a load generator
    about three times cheaper per request than aiohttp's client (which also splits every request
    into two TCP segments), so the cores it shares with the server go to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes):
        self.reader, self.writer, self.head = reader, writer, head

    @classmethod
    async def open(cls, url: str, path: str) -> "Connection":
        parsed = urlparse(url)
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        return cls(reader, writer, head)

    async def post(self, body: bytes) -> bytes:
        """Send one request and return the response body; raise on a status other than 200."""
        self.writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = next(
            int(row[15:])
            for row in head.lower().split(b"\r\n")
            if row.startswith(b"content-length:")
        )
        reply = await self.reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"server answered {status.decode()}: {reply[:200]!r}")
        return reply

    async def get(self, path: str) -> bytes:
        """GET `path` on this connection and return the response body."""
        self.writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(row[15:])
            for row in head.lower().split(b"\r\n")
            if row.startswith(b"content-length:")
        )
        return await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def drive(
    url: str,
    server_pid: int,
    bodies: Bodies,
    trajectories: range,
    *,
    concurrency: int,
    batch: int,
    stop_after: dict[int, int] | None = None,
    desc: str,
) -> dict:
    """Run `trajectories` through the server, `concurrency` requests in flight (one connection
    each), each carrying the same step of `batch` trajectories; `stop_after` maps a trajectory
    to the step count it stops at (never finishing). Returns throughput, latency and CPU figures."""
    stop_after = stop_after or {}
    groups = [trajectories[i : i + batch] for i in range(0, len(trajectories), batch)]
    queue = list(reversed(groups))
    latencies: list[float] = []
    items = 0
    connections = [await Connection.open(url, "/get_observation") for _ in range(concurrency)]
    cpu0, server0, started = time.process_time(), cpu_seconds(server_pid), time.perf_counter()
    with tqdm(total=len(trajectories), desc=desc, unit="traj", mininterval=2.0, leave=False) as bar:

        async def worker(connection: Connection) -> None:
            nonlocal items
            while queue:
                group = queue.pop()
                for step in range(STEPS):
                    members = [t for t in group if step < stop_after.get(t, STEPS)]
                    if not members:
                        break
                    body = bodies.body([bodies.item(t, step) for t in members])
                    sent = time.perf_counter()
                    await connection.post(body)
                    latencies.append(time.perf_counter() - sent)
                    items += len(members)
                bar.update(len(group))

        try:
            await asyncio.gather(*(worker(c) for c in connections))
        finally:
            for connection in connections:
                connection.close()
    wall = time.perf_counter() - started
    client_cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(server_pid) - server0
    # CPU per observation does not depend on how busy the shared machine is; wall-clock figures do.
    return {
        "observations": items,
        "seconds": round(wall, 2),
        "obs_per_s": round(items / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "client_cpu": round(client_cpu / wall, 2),
        "server_cpu": round(server_cpu / wall, 2),
        "server_obs_per_cpu_s": round(items / max(server_cpu, 1e-9)),
        "client_obs_per_cpu_s": round(items / max(client_cpu, 1e-9)),
    }


async def live_count(url: str) -> int:
    """The server's count of live trajectories, from /health."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        return (await response.json())["live_trajectories"]


def measure_all(
    data_dir: Path | str = REPO / "data" / "demo",
    series: str = "chun_jiang",
    *,
    concurrencies: tuple[int, ...] = (1, 64, 256),
    trajectories_per_level: dict[int, int] | None = None,
    memory_trajectories: int = 100_000,
    never_finish: int = 10_000,
    batch: int = 64,
    idle_timeout: float = 2.0,
    flood_items: int = 1_000_000,
) -> dict:
    """Benchmark the tool server on `series`; returns one dict of figures with their targets
    (`flood_items` 0: without the hostile figures of `run_hostile`)."""
    per_level = trajectories_per_level or {1: 300, 64: 3000, 256: 5000}
    with tempfile.TemporaryDirectory(prefix="bench_tool_server_") as tmp:
        labels_path = Path(tmp) / "labels.json"
        # prepare's own errors (an unknown series, a malformed one) reach the terminal.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.sr.prepare",
                "--series",
                series,
                "--data-dir",
                str(data_dir),
                "--out",
                str(labels_path),
                "--quiet",
            ],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        loaded = load_series(series, data_dir)
        labels = read_labels(labels_path, loaded)
        lines = sorted(labels.lines)
        bodies = Bodies(series, lines, {line: labels.lines[line].names[0] for line in lines})
        args = [
            "--series",
            series,
            "--labels",
            str(labels_path),
            "--data-dir",
            str(data_dir),
            "--idle-timeout",
            str(idle_timeout),
            "--log-level",
            "WARNING",
        ]
        with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, proc):
            result: dict = {
                "bench": "tool_server",
                "series": series,
                "lines": len(lines),
                "server_rss_start_mib": round(rss_mib(proc.pid), 1),
            }
            asyncio.run(
                drive(url, proc.pid, bodies, range(3000), concurrency=64, batch=1, desc="warm-up")
            )
            asyncio.run(
                drive(
                    url,
                    proc.pid,
                    bodies,
                    range(3000, 3000 + 64 * 200),
                    concurrency=4,
                    batch=batch,
                    desc="warm-up batched",
                )
            )
            next_id = 3000 + 64 * 200
            for concurrency in concurrencies:
                n = per_level.get(concurrency, 1000)
                result[f"concurrent_{concurrency}"] = asyncio.run(
                    drive(
                        url,
                        proc.pid,
                        bodies,
                        range(next_id, next_id + n),
                        concurrency=concurrency,
                        batch=1,
                        desc=f"{concurrency} concurrent",
                    )
                )
                next_id += n
            time.sleep(idle_timeout * 2)  # let the sweep settle before the memory baseline
            rss_warm = rss_mib(proc.pid)
            span = range(next_id, next_id + memory_trajectories)
            # Every tenth trajectory of the first never_finish*10 stops after two steps, unfinished.
            stop_after = {t: 2 for t in span[: never_finish * 10 : 10]}
            result[f"batched_{batch}"] = asyncio.run(
                drive(
                    url,
                    proc.pid,
                    bodies,
                    span,
                    concurrency=4,
                    batch=batch,
                    stop_after=stop_after,
                    desc="100k batched",
                )
            )
            result[f"batched_{batch}"]["trajectories"] = memory_trajectories
            result[f"batched_{batch}"]["never_finished"] = len(stop_after)
            live_before_sweep = asyncio.run(live_count(url))
            deadline = time.monotonic() + idle_timeout * 5 + 5
            while asyncio.run(live_count(url)) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(
                idle_timeout * 2
            )  # the tombstones expire one idle timeout after the trajectories
            rss_after = rss_mib(proc.pid)
            result["memory"] = {
                "rss_after_warmup_mib": round(rss_warm, 1),
                "rss_after_100k_mib": round(rss_after, 1),
                "growth": round(rss_after / rss_warm - 1, 4),
                "live_before_sweep": live_before_sweep,
                "live_after_sweep": asyncio.run(live_count(url)),
            }
        hostile = (
            run_hostile(data_dir, series, labels_path, lines[0], flood_items=flood_items)
            if flood_items
            else None
        )
    top = result[f"concurrent_{max(concurrencies)}"]
    result["targets"] = {
        "obs_per_s_at_max_concurrency": {
            "measured": top["obs_per_s"],
            "target": TARGET_OBS_PER_S,
            "met": top["obs_per_s"] >= TARGET_OBS_PER_S,
        },
        "p99_ms_at_max_concurrency": {
            "measured": top["p99_ms"],
            "target": TARGET_P99_MS,
            "met": top["p99_ms"] <= TARGET_P99_MS,
        },
        "rss_growth": {
            "measured": result["memory"]["growth"],
            "target": TARGET_RSS_GROWTH,
            "met": abs(result["memory"]["growth"]) <= TARGET_RSS_GROWTH
            and result["memory"]["live_after_sweep"] == 0,
        },
    }
    if hostile is not None:
        result["targets"].update(hostile.pop("targets"))
        result["hostile"] = hostile
    return result


def hostile_bodies(
    series: str, line: int, max_body: int = DEFAULT_MAX_BODY_BYTES
) -> dict[str, bytes]:
    """One /get_observation body per hostile family, each as close to `max_body` as it fits."""
    bodies = {}
    for name in HOSTILE_FAMILIES:
        size = max_body - 4096
        while True:
            action = adversarial_actions(size)[name]
            body = json.dumps(
                {
                    "trajectory_ids": [f"hostile-{len(bodies)}"],
                    "actions": [action],
                    "extra_fields": [{"series": series, "line": line}],
                    "finish": [False],
                    "is_last_step": [True],
                }
            ).encode()
            if len(body) <= max_body:
                bodies[name] = body
                break
            size = int(size * max_body / len(body) * 0.99)
    return bodies


async def health_under_load(url: str, bodies: dict[str, bytes], rounds: int = 2) -> dict:
    """/health latencies (polled every 10 ms on its own connection) while `bodies` are posted one
    after another, `rounds` times, and the slowest of those posts."""
    poster = await Connection.open(url, "/get_observation")
    poller = await Connection.open(url, "/health")
    latencies: list[float] = []
    posts: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            sent = time.perf_counter()
            await poller.get("/health")
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(0.01)

    polling = asyncio.create_task(poll())
    try:
        for _ in range(rounds):
            for body in bodies.values():
                sent = time.perf_counter()
                await poster.post(body)
                posts.append(time.perf_counter() - sent)
    finally:
        done.set()
        await polling
        poster.close()
        poller.close()
    return {
        "actions_mib": round(max(map(len, bodies.values())) / 2**20, 2),
        "posts": len(posts),
        "slowest_post_ms": round(1000 * max(posts), 1),
        "health_polls": len(latencies),
        "health_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "health_max_ms": round(1000 * max(latencies), 2),
    }


async def flood(
    url: str, series: str, line: int, count: int, *, finish: bool, prefix: str, batch: int = 1000
) -> int:
    """`count` items in batches: first steps of new trajectories never finished (`finish` False) or
    finishes of ids the server never saw; returns how many items were answered with an error."""
    connection = await Connection.open(url, "/get_observation")
    action = json.dumps(render_turn(Action("tool", "audio_sim", "x"), "hermes")).encode()
    extra = json.dumps({"series": series, "line": line}).encode()
    flag = b"true" if finish else b"false"
    errors = 0
    try:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            ids = b",".join(b'"%s%d"' % (prefix.encode(), i) for i in range(start, start + n))
            body = (
                b'{"trajectory_ids":[%s],"actions":[%s],"extra_fields":[%s],"finish":[%s],"is_last_step":[%s]}'
                % (
                    ids,
                    b",".join([action] * n),
                    b",".join([extra] * n),
                    b",".join([flag] * n),
                    b",".join([b"false"] * n),
                )
            )
            reply = json.loads(await connection.post(body))
            errors += reply["valids"].count(False)
    finally:
        connection.close()
    return errors


def run_hostile(
    data_dir: Path | str, series: str, labels_path: Path, line: int, *, flood_items: int = 1_000_000
) -> dict:
    """/health under hostile 8 MB actions, and RSS under floods of unfinished and unknown
    trajectories,
    against a server with the default idle timeout and limits."""
    args = [
        "--series",
        series,
        "--labels",
        str(labels_path),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "WARNING",
    ]
    with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, proc):
        result: dict = {"bench": "tool_server_hostile", "series": series}
        result["health_under_hostile_actions"] = asyncio.run(
            health_under_load(url, hostile_bodies(series, line))
        )
        rss_start = rss_mib(proc.pid)
        asyncio.run(flood(url, series, line, DEFAULT_MAX_LIVE, finish=False, prefix="fill-"))
        rss_full = rss_mib(proc.pid)
        started = time.perf_counter()
        refused = asyncio.run(flood(url, series, line, flood_items, finish=False, prefix="never-"))
        asyncio.run(flood(url, series, line, flood_items, finish=True, prefix="unknown-"))
        seconds = time.perf_counter() - started
        rss_after = rss_mib(proc.pid)
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
            metrics = json.loads(reply.read())
        result["floods"] = {
            "never_finished": flood_items,
            "unknown_finishes": flood_items,
            "seconds": round(seconds, 1),
            "refused_items": refused,
            "rss_start_mib": round(rss_start, 1),
            "rss_cap_full_mib": round(rss_full, 1),
            "rss_after_mib": round(rss_after, 1),
            "growth_over_full": round(rss_after / rss_full - 1, 4),
            "live_trajectories": metrics["live_trajectories"],
            "finished_remembered": metrics["finished_remembered"],
            "max_live_trajectories": metrics["limits"]["max_live_trajectories"],
        }
    health = result["health_under_hostile_actions"]
    result["targets"] = {
        "health_max_ms_under_hostile_actions": {
            "measured": health["health_max_ms"],
            "target": TARGET_HEALTH_MS,
            "met": health["health_max_ms"] <= TARGET_HEALTH_MS,
        },
        "rss_growth_past_the_caps": {
            "measured": result["floods"]["growth_over_full"],
            "target": TARGET_RSS_GROWTH,
            "met": result["floods"]["growth_over_full"] <= TARGET_RSS_GROWTH,
        },
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.bench_tool_server",
        description="Benchmark the speaker-recognition tool server (its own process) with a local "
        "load generator: observations/s and latency at 1, 64 and 256 concurrent trajectories "
        "and with 64-trajectory "
        "batches; server memory before and after 100,000 trajectories, 10,000 of them "
        "never finished. Prints one JSON record.",
    )
    parser.add_argument(
        "--data-dir", default=str(REPO / "data" / "demo"), help="directory holding <series>/"
    )
    parser.add_argument("--series", default="chun_jiang", help="series name (default: %(default)s)")
    parser.add_argument("--memory-trajectories", type=int, default=100_000)
    parser.add_argument("--never-finish", type=int, default=10_000)
    parser.add_argument(
        "--idle-timeout", type=float, default=2.0, help="the server's idle timeout for the bench"
    )
    parser.add_argument(
        "--flood-items",
        type=int,
        default=1_000_000,
        help="never-finished trajectories and unknown-id finishes sent to the second server "
        "(0: skip the hostile figures; default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (
        args.memory_trajectories < 1
        or args.never_finish < 0
        or args.idle_timeout <= 0
        or args.flood_items < 0
    ):
        parser.error(
            "--memory-trajectories and --idle-timeout must be positive, --never-finish >= 0"
        )
    if args.never_finish * 10 > args.memory_trajectories:
        parser.error("--never-finish may be at most a tenth of --memory-trajectories")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Measure and print the tool server figures; 1 when a target is missed, 2 when prepare
    fails."""
    try:
        result = measure_all(
            args.data_dir,
            args.series,
            memory_trajectories=args.memory_trajectories,
            never_finish=args.never_finish,
            idle_timeout=args.idle_timeout,
            flood_items=args.flood_items,
        )
    except subprocess.CalledProcessError:
        print(
            f"error: prepare failed on {args.series} in {args.data_dir} (its message is above)",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(result), flush=True)
    return 0 if all(target["met"] for target in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
