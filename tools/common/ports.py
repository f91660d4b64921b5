"""Free loopback ports and whether a port is taken, for the commands, benchmarks and tests that
start servers (llamafactory-cli api, vLLM, the scripted teacher, a Ray head, the tool server).
Starting, waiting for and stopping them is tools.common.process; keeping the credentials users
put in endpoint URLs out of files and logs is plugins.redaction."""

import socket


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
