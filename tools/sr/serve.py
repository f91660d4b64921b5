"""OpenAI-compatible model servers, one per port: `make serve PORTS=1-8 MODEL=...` / `make
stop-serve`.

Port offset i serves on BASE_PORT+i. With GPUs, each is `vllm serve` on GPU i-1
(CUDA_VISIBLE_DEVICES); without, `llamafactory-cli api` with the huggingface backend (it binds
0.0.0.0 unless API_HOST is set, so we always set it). Each server runs in its own process
group; its pid file `RUN_DIR/port-<port>.pid` (JSON) holds the pid, the command line and the
kernel's start time of the process, so `stop` kills only a process that is still the one we
started, never a later process that reused the pid. Logs go to `RUN_DIR/port-<port>.log`.
tools.sr.evaluate spreads its lines over the same ports.
"""

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools.common.fileio import atomic_write_json
from tools.common.ports import port_in_use
from tools.common.process import start as start_process
from tools.common.process import stop_group, wait_ready
from tools.sr.port_ranges import parse_ranges

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "llamafactory")
STOP_GRACE_S = 30.0


def pid_file(run_dir: Path, port: int) -> Path:
    return run_dir / f"port-{port}.pid"


def log_file(run_dir: Path, port: int) -> Path:
    return run_dir / f"port-{port}.log"


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None when it is gone.
    Together with the pid it names one process for good: a reused pid starts later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after the last ')' are
    # fixed.
    return int(stat.rsplit(")", 1)[1].split()[19])


def gpu_count() -> int:
    """GPUs that nvidia-smi lists (0 when it is missing or fails)."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return (
        sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
        if listing.returncode == 0
        else 0
    )


def server_command(backend: str, args: argparse.Namespace, port: int) -> list[str]:
    """The command line of one server."""
    bin_dir = Path(sys.executable).parent
    if backend == "vllm":
        # Hermes tool calls over `tools=` need vLLM's tool parser; no reasoning parser, so the
        # `<think>` block stays in `content`, as in training and as tools.sr.evaluate parses it.
        return [
            str(bin_dir / "vllm"),
            "serve",
            str(args.model),
            "--host",
            args.host,
            "--port",
            str(port),
            "--served-model-name",
            args.served_name,
            "--max-model-len",
            str(args.max_model_len),
            "--gpu-memory-utilization",
            str(args.gpu_mem_util),
            "--enable-auto-tool-choice",
            "--tool-call-parser",
            "hermes",
            *shlex.split(args.server_args),
        ]
    return [
        str(bin_dir / "llamafactory-cli"),
        "api",
        "--model_name_or_path",
        str(args.model),
        "--template",
        args.template,
        "--infer_backend",
        "huggingface",
        *shlex.split(args.server_args),
    ]


def server_env(backend: str, args: argparse.Namespace, port: int, offset: int) -> dict:
    env = {**os.environ}
    if backend == "vllm":
        env["CUDA_VISIBLE_DEVICES"] = str(offset - 1)
    else:
        env.update(API_HOST=args.host, API_PORT=str(port), API_MODEL_NAME=args.served_name)
    return env


def read_pid_file(path: Path) -> dict | None:
    """The pid file's record, or None when it cannot be read (treated as stale)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        int(record["pid"]), int(record["start_ticks"])
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_ours(record: dict | None) -> bool:
    """Whether the process a pid file names is still running and is the one we started."""
    return record is not None and process_start_ticks(record["pid"]) == record["start_ticks"]


def start(args: argparse.Namespace) -> int:
    """Start one server per port offset, wait until all answer /v1/models; on any failure stop
    the ones this call started and exit non-zero."""
    offsets = parse_ranges(args.ports, "--ports")
    backend = args.backend
    if backend == "auto":
        backend = "vllm" if gpu_count() > 0 else "llamafactory"
    if backend == "vllm" and min(offsets) < 1:
        raise ValueError("--ports: offsets start at 1 with vLLM (offset i uses GPU i-1)")
    ports = [args.base_port + i for i in offsets]
    for port in ports:
        path = pid_file(args.run_dir, port)
        if path.exists():
            if is_ours(read_pid_file(path)):
                raise ValueError(
                    f"{path}: a server we started is still running on port {port}; "
                    "run `python -m tools.sr.serve stop` first"
                )
            logger.warning("%s: stale pid file (its process is gone), removed", path)
            path.unlink()
        if port_in_use(args.host, port):
            raise ValueError(f"port {port} on {args.host} is already in use")
    args.run_dir.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        for offset, port in zip(offsets, ports, strict=True):
            command = server_command(backend, args, port)
            proc = start_process(
                command,
                log_file(args.run_dir, port),
                env=server_env(backend, args, port, offset),
                append=True,
            )
            started.append((port, proc))
            atomic_write_json(
                pid_file(args.run_dir, port),
                {
                    "pid": proc.pid,
                    "port": port,
                    "offset": offset,
                    "backend": backend,
                    "command": command,
                    "model": str(args.model),
                    "served_name": args.served_name,
                    "host": args.host,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "start_ticks": process_start_ticks(proc.pid),
                },
            )
            logger.info(
                "port %d: pid %d, %s (log %s)",
                port,
                proc.pid,
                backend,
                log_file(args.run_dir, port),
            )
        for port, proc in started:
            url = f"http://{args.host}:{port}/v1"
            try:
                wait_ready(url, args.ready_timeout, proc)
            except (RuntimeError, TimeoutError) as e:
                tail = log_file(args.run_dir, port).read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"{e}; last lines of {log_file(args.run_dir, port)}:\n{tail}"
                ) from None
            logger.info("ready: %s (served name %s)", url, args.served_name)
    except BaseException:
        for port, _ in started:
            stop_port(args.run_dir, port)
        raise
    print(" ".join(f"http://{args.host}:{port}/v1" for port in ports))
    return 0


def stop_port(run_dir: Path, port: int, grace: float = STOP_GRACE_S) -> str:
    """Stop the server of one pid file (its whole process group) if it is still ours, remove
    the file; returns what happened: 'stopped', 'stale' or 'absent'."""
    path = pid_file(run_dir, port)
    if not path.exists():
        return "absent"
    record = read_pid_file(path)
    if not is_ours(record):
        path.unlink()
        return "stale"
    # start_new_session made the server its group's leader: the group is the pid.
    stop_group(record["pid"], lambda: is_ours(record), grace)
    path.unlink()
    return "stopped"


def pid_files(run_dir: Path, ports: list[int] | None) -> list[int]:
    """Ports that have a pid file in `run_dir` (all, or those in `ports`)."""
    found = sorted(
        int(p.stem.split("-", 1)[1])
        for p in run_dir.glob("port-*.pid")
        if p.stem.split("-", 1)[1].isdigit()
    )
    return [p for p in found if ports is None or p in ports]


def stop(args: argparse.Namespace) -> int:
    ports = (
        [args.base_port + i for i in parse_ranges(args.ports, "--ports")] if args.ports else None
    )
    for port in pid_files(args.run_dir, ports):
        outcome = stop_port(args.run_dir, port)
        logger.info(
            "port %d: %s",
            port,
            {
                "stopped": "stopped",
                "stale": "stale pid file removed (process gone)",
                "absent": "no pid file",
            }[outcome],
        )
    return 0


def status(args: argparse.Namespace) -> int:
    """One JSON line per pid file: port, pid, running (ours), ready (/v1/models answers)."""
    for port in pid_files(args.run_dir, None):
        record = read_pid_file(pid_file(args.run_dir, port)) or {}
        running = is_ours(record or None)
        ready = False
        if running:
            try:
                with urllib.request.urlopen(
                    f"http://{record.get('host', '127.0.0.1')}:{port}/v1/models", timeout=2
                ) as reply:
                    ready = reply.status == 200
            except OSError:
                pass
        print(
            json.dumps(
                {
                    "port": port,
                    "pid": record.get("pid"),
                    "backend": record.get("backend"),
                    "model": record.get("model"),
                    "running": running,
                    "ready": ready,
                },
                ensure_ascii=False,
            )
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.serve",
        description="Start, stop or list OpenAI-compatible model servers, one per port offset i on "
        "BASE_PORT+i: `vllm serve` on GPU i-1, or `llamafactory-cli api` on a machine "
        "without GPUs. "
        "Pid files and logs live in --run-dir; stop ends only the processes this tool started.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-port", type=int, default=8000, help="port of offset 0 (default: %(default)s)"
    )
    common.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs/serve"),
        help="pid files and logs (default: %(default)s)",
    )
    begin = sub.add_parser(
        "start", parents=[common], help="start servers and wait until they answer"
    )
    begin.add_argument("--ports", required=True, help="port offsets, e.g. 1-8 or 1,3")
    begin.add_argument(
        "--model", required=True, type=Path, help="model directory (a full-SFT output dir works)"
    )
    begin.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: vllm when nvidia-smi lists GPUs, else llamafactory (default: %(default)s)",
    )
    begin.add_argument(
        "--served-name", help="model name clients ask for (default: the model directory's name)"
    )
    begin.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    begin.add_argument(
        "--template",
        default="qwen3_nothink",
        help="LLaMA-Factory chat template, as in SFT (llamafactory backend; default: %(default)s)",
    )
    begin.add_argument(
        "--max-model-len",
        type=int,
        default=32768,
        help="vLLM --max-model-len (default: %(default)s)",
    )
    begin.add_argument(
        "--gpu-mem-util",
        type=float,
        default=0.9,
        help="vLLM --gpu-memory-utilization (default: %(default)s)",
    )
    begin.add_argument(
        "--server-args",
        default="",
        help="more arguments for every server's command line, one shell-quoted string, e.g. "
        '"--chat-template tpl.jinja" for vLLM',
    )
    begin.add_argument(
        "--ready-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for each server's /v1/models (default: %(default)s)",
    )
    end = sub.add_parser("stop", parents=[common], help="stop the servers of the pid files")
    end.add_argument(
        "--ports", help="only these port offsets (default: every pid file in --run-dir)"
    )
    sub.add_parser("status", parents=[common], help="one JSON line per pid file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Start, stop or report the servers; 2 on bad input, 1 when a server fails."""
    try:
        if args.action == "start":
            if not args.model.is_dir():
                raise ValueError(f"--model {args.model}: not a directory")
            args.served_name = args.served_name or args.model.resolve().name
            return start(args)
        return stop(args) if args.action == "stop" else status(args)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
