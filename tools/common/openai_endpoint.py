"""Small helpers for local servers: a free loopback port, whether a port is taken, and keeping
credentials that users put in endpoint URLs (`http://user:key@host/v1`) out of files and logs.
Used by the commands, benchmarks and tests that start servers (llamafactory-cli api, vLLM, the
scripted teacher, a Ray head); starting, waiting for and stopping them is tools.common.process."""

import logging
import re
import socket

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
