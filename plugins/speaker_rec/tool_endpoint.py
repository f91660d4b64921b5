"""Where the speaker-recognition tool server is and how it is guarded: the names the server, the
verl tool adapter and the launcher (tools.sr.rl) share, in a module light enough for every rollout
worker to import."""

import ipaddress

# The bearer token: required to bind a non-loopback address, sent as "Authorization: Bearer ...".
TOKEN_ENV = "DRAMAKIT_TOOL_TOKEN"
# The server's URL as the rollout workers reach it; read at call time, so a launcher can set it.
URL_ENV = "DRAMAKIT_TOOL_SERVER_URL"
DEFAULT_PORT = 8100
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or "localhost"): what servers bind without a flag."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
