"""Processes we start and must stop: start one with its output in a log, in its own process
group; wait until it answers over HTTP; stop exactly what we started, by pid (SIGTERM to its
group, a grace period, SIGKILL, reap). Used by the launchers (serve, rl), the benchmarks and the
tests; plugins/ does not import it (run-time code starts no servers)."""

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 30.0


def start(
    command: list[str],
    log_path: Path | None = None,
    *,
    env: dict | None = None,
    cwd: Path | None = None,
    append: bool = False,
) -> subprocess.Popen:
    """Start `command` as the leader of its own process group (Ctrl-C reaches only us, and
    `stop` can end its whole group), stdin closed, stdout and stderr into `log_path` (or
    nowhere)."""
    with open(log_path or os.devnull, "ab" if append else "wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_http_ok(
    url: str, timeout: float, proc: subprocess.Popen | None = None, interval: float = 0.2
) -> bytes:
    """Poll GET `url` until it answers 200 and return the body; raise TimeoutError after
    `timeout` seconds, or RuntimeError as soon as `proc` (the server's process, if given) has
    exited."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the server at {url} exited with {proc.returncode} before it was ready"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return reply.read()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f} s")
        time.sleep(interval)


def wait_ready(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `<url>/models` of an OpenAI-compatible base URL until it answers 200 (see
    wait_http_ok)."""
    wait_http_ok(f"{url}/models", timeout, proc)


def wait_healthy(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> dict:
    """Poll the tool server's `<url>/health` until it answers 200 and return its JSON (see
    wait_http_ok)."""
    return json.loads(wait_http_ok(f"{url}/health", timeout, proc, interval=0.1))


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid`; a group already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def reap(pid: int) -> None:
    """Collect the exit status when `pid` is our own child (started in this process), so it
    does not linger as a zombie that still looks alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_group(pid: int, alive: Callable[[], bool], grace: float = STOP_GRACE_S) -> None:
    """Stop the process group led by `pid` while `alive()` says it is still the process we
    started: SIGTERM to the group, wait up to `grace` seconds, then SIGKILL to the group."""
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        reap(pid)
        time.sleep(0.2)
    if alive():
        logger.warning("pid %d ignored SIGTERM for %.0f s, killing its group", pid, grace)
        signal_group(pid, signal.SIGKILL)
        while alive():
            reap(pid)
            time.sleep(0.1)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> int:
    """Stop a process `start` started (its whole group, see stop_group); returns its exit status."""
    if proc.poll() is None:
        stop_group(proc.pid, lambda: proc.poll() is None, grace)
    return proc.wait()


@contextlib.contextmanager
def running_server(
    args: list[str],
    *,
    port: int,
    env: dict | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
):
    """Run the tool server (`python -m plugins.speaker_rec.server ARGS --port PORT`) from the
    repository root on 127.0.0.1; yield its base URL and process once /health answers, then stop
    exactly that process and check it shut down cleanly. For tests, benchmarks and launchers."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = start(
        [sys.executable, "-m", "plugins.speaker_rec.server", *args, "--port", str(port)],
        log_path,
        env=env,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout, proc)
        yield url, proc
    finally:
        returncode = stop(proc)
    if returncode != 0:
        raise RuntimeError(f"the tool server exited with {returncode} on SIGTERM")
