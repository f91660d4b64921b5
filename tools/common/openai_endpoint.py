"""Small helpers for local servers: a free loopback port, whether a port is taken, waiting until a
server answers
(`GET /v1/models` of an OpenAI-compatible endpoint, or any URL), and keeping credentials that users
put in
endpoint URLs (`http://user:key@host/v1`) out of files and logs. Used by the commands, benchmarks
and tests that start servers (llamafactory-cli api, vLLM, the scripted teacher, a Ray head)."""

import logging
import re
import socket
import subprocess
import time
import urllib.request

# The userinfo of a URL anywhere in a text: what follows "scheme://" up to an "@" before the host
# ends.
USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it (user:password@) replaced by `***@`."""
    return USERINFO.sub("***@", text)


class RedactUserinfo(logging.Filter):
    """A logging filter that redacts URL userinfo from every record (libraries log URLs too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = redact(message), None
        return True


def redact_logs() -> None:
    """Install `RedactUserinfo` on every handler of the root logger (call after basicConfig)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactUserinfo())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on (host, port). SO_REUSEADDR as uvicorn and vLLM set it, so
    connections of a just-stopped server lingering in TIME_WAIT do not count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


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
