"""What the tool server bounds below its handlers: connections and log lines.

aiohttp has no timeout for reading a request's head (its keep-alive timeout only closes
connections idle between requests), so a client that sends half a request line holds a connection
and a descriptor forever. `ConnectionGuard` wraps aiohttp's protocol factory: every connection
is counted (beyond `max_connections`, a new one gets a 503 with Retry-After and is closed), and
one that has not delivered a complete request head `header_timeout` seconds after it opened or
after its first byte of the next request is aborted by a periodic check. The server's middleware
tells the guard when a request reaches its handler (`request_started` / `request_ended`); the
body's own timeout is the handler's business.

`SafeLogFilter` keeps the log useful under hostile clients: no traceback for a client that
hangs up or sends a malformed request (one line naming the exception type instead), any
Authorization value, bearer token or URL userinfo redacted (plugins.redaction), and at most
`burst` lines per message template per `window` seconds, with a count of what was suppressed.
"""

import asyncio
import logging
import time

from aiohttp import web

from plugins.redaction import RedactingFilter, install_filter

BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the time its pending request head started."""

    __slots__ = ("guard", "head_started", "in_request", "inner", "transport")

    def __init__(self, guard: "ConnectionGuard", inner: asyncio.Protocol):
        self.guard, self.inner = guard, inner
        self.transport = None
        self.head_started: float | None = None
        self.in_request = False

    def connection_made(self, transport) -> None:
        guard = self.guard
        if len(guard.open) >= guard.max_connections:
            guard.refused += 1
            body = (
                b'{"error": "the server holds its limit of %d connections '
                b'(--max-connections); retry later"}' % guard.max_connections
            )
            transport.write(BUSY_RESPONSE % (len(body), body))
            transport.close()
            self.inner = None
            return
        self.transport = transport
        self.head_started = time.monotonic()  # a new connection owes its first request head
        guard.open[transport] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.head_started is None and not self.in_request:
            self.head_started = time.monotonic()
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc) -> None:
        if self.inner is not None:
            self.guard.open.pop(self.transport, None)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class ConnectionGuard:
    """Counts connections, refuses those beyond `max_connections` and aborts those whose request
    head takes longer than `header_timeout` seconds (see the module docstring)."""

    def __init__(self, max_connections: int, header_timeout: float):
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open: dict[object, GuardedConnection] = {}
        self.refused = 0
        self.timed_out = 0

    def factory(self, server: web.Server):
        """A protocol factory for loop.create_server wrapping aiohttp's `server`."""
        return lambda: GuardedConnection(self, server())

    def request_started(self, transport) -> None:
        connection = self.open.get(transport)
        if connection is not None:
            connection.head_started, connection.in_request = None, True

    def request_ended(self, transport) -> None:
        connection = self.open.get(transport)
        if connection is not None:
            connection.in_request = False

    def check(self) -> int:
        """Abort connections whose request head is overdue; returns how many."""
        deadline = time.monotonic() - self.header_timeout
        overdue = [
            c
            for c in self.open.values()
            if c.head_started is not None and c.head_started < deadline
        ]
        for connection in overdue:
            connection.head_started = None
            connection.transport.abort()
        self.timed_out += len(overdue)
        return len(overdue)

    async def run(self) -> None:
        """Check for overdue request heads until cancelled."""
        period = max(0.05, min(1.0, self.header_timeout / 4))
        while True:
            await asyncio.sleep(period)
            self.check()


# Client-side failures: a hang-up, a reset, a malformed request. Logged as one line, never a
# traceback.
CLIENT_ERRORS = (ConnectionError, TimeoutError, asyncio.CancelledError, asyncio.IncompleteReadError)
try:  # aiohttp's own names for them, where this version has them
    from aiohttp import ClientConnectionResetError
    from aiohttp.http_exceptions import HttpProcessingError

    CLIENT_ERRORS += (ClientConnectionResetError, HttpProcessingError)
except ImportError:  # pragma: no cover - older aiohttp
    pass


class SafeLogFilter(RedactingFilter):
    """Redacts credentials, drops tracebacks of client errors and rate-limits each message
    template to `burst` lines per `window` seconds (see the module docstring)."""

    def __init__(
        self,
        secrets: tuple[str, ...] = (),
        burst: int = 10,
        window: float = 60.0,
        max_keys: int = 1024,
    ):
        super().__init__(secrets)
        self.burst, self.window, self.max_keys = burst, window, max_keys
        self.counts: dict[
            tuple, list
        ] = {}  # (logger, template) -> [window start, lines, suppressed]
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        state = self.counts.get(key)
        suppressed_before = 0
        if state is None or now - state[0] >= self.window:
            suppressed_before = state[2] if state else 0
            if len(self.counts) >= self.max_keys:
                self.counts.clear()
            state = self.counts[key] = [now, 0, 0]
        state[1] += 1
        if state[1] > self.burst:
            state[2] += 1
            self.suppressed_total += 1
            return False
        message = record.getMessage()
        if record.exc_info and isinstance(record.exc_info[1], CLIENT_ERRORS):
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {exc}"
            record.exc_info, record.exc_text = None, None
        if suppressed_before:
            message = f"{message} (and {suppressed_before} more like it, suppressed)"
        record.msg, record.args = message, None
        # redacted, an internal error's traceback included
        return super().filter(record)


def install_log_filter(
    secrets: tuple[str, ...] = (), burst: int = 10, window: float = 60.0
) -> SafeLogFilter:
    """Put one `SafeLogFilter` on every handler of the root logger (call after basicConfig)."""
    return install_filter(SafeLogFilter(secrets, burst, window))
