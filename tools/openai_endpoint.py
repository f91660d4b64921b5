"""Small helpers for OpenAI-compatible endpoints on this machine: a free loopback port, and
waiting until a server answers `GET /v1/models`. Used by the benchmarks and the tests that
start servers (llamafactory-cli api, the scripted teacher)."""

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `<url>/models` until it answers 200; raise TimeoutError after `timeout` seconds,
    or RuntimeError as soon as `proc` (the server's process, if given) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f} s")
        time.sleep(0.2)
