"""The speaker-recognition tool server: `python -m plugins.speaker_rec.server --series NAME --labels
PATH`.

One asyncio process (aiohttp) holds the SR environment of every series it serves and the state
of each trajectory in flight. It speaks verl-tool's wire format, so a verl-tool trainer can
point at it unchanged, and our verl adapter (plugins.speaker_rec.verl_tool) calls it too:

    POST /get_observation   {"trajectory_ids": [str], "actions": [str], "extra_fields": [{"series":
    str,
                             "line": int, "protocol": "hermes"|"tags" (optional), "call_seq": int
                             (optional)}],
                             "finish": [bool], "is_last_step": [bool]}     (five lists of equal
                             length)
                         -> {"observations": [str], "dones": [bool], "valids": [bool]}
    GET  /health            {"status": "ok", "series": [...], "live_trajectories": N}
    GET  /metrics           requests, observations, status counts, latency p50/p99, freed-by-reason,
                            refusals by bound, open connections, limits

As in verl-tool: `finish` ends a trajectory without performing its action (observation "",
done, valid); `is_last_step` performs the action, then ends the trajectory; `valid` says
whether the action was accepted. An action is one raw assistant turn, judged by the SR
environment (rules, duplicates, turn limit): a tool call returns the tool's output, a turn that
breaks a rule returns the rule's message with valid=false (done only at the turn limit), a valid
answer ends the trajectory. A problem with one item (unknown series, line without a label, bad
protocol, an id that already finished, an internal error) answers that item with an error
observation, valid=false and done=true, and never fails the batch; a malformed request as a whole
gets a 4xx with a JSON error. State is freed on finish, last step, done, and after
`--idle-timeout` seconds without use (verl's tool agent loop never sends finish: its rollouts
end on a turn without a tool call, so the sweep is what frees them).

Retries: an item whose extra_fields.call_seq repeats the trajectory's last call with the same
action gets that call's reply again (also after the final step: the finished id keeps its last
reply); the same call_seq with another action is refused (valid=false) and not judged.

Bounds (each a flag, all shown by /metrics under "limits"): at most --max-live live trajectories
(a new one beyond it gets an error item; live ones keep working), at most --max-tombstones
finished ids remembered, and only ids that were live; at most --max-connections connections
(beyond: 503 with Retry-After), a request head within --header-timeout seconds of the
connection's opening or the request's first byte, a body within --body-timeout (else 408), idle
keep-alive connections closed after --keepalive-timeout; bodies up to --max-body-bytes (413) and
only as application/json (415); trajectory ids up to MAX_ID_CHARS characters; the parsing of model
output bounded by plugins.speaker_rec.protocol. Bodies of OFFLOAD_BYTES or more are judged in a
worker thread so /health stays responsive. Log lines are rate-limited per kind (--log-burst),
never carry a credential, and a client's hang-up or malformed request is one line, not a
traceback (plugins.speaker_rec.http_guard).

Binds 127.0.0.1 by default. A bearer token from DRAMAKIT_TOOL_TOKEN (at least MIN_TOKEN_CHARS
characters) is required to bind any other address, and is checked on /get_observation and
/metrics whenever it is set.
Started by `make rl` (tools.sr.rl), the tests, and tools.dev.bench_tool_server.
"""

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import resource
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.http_guard import ConnectionGuard, install_log_filter
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import MAX_TOOL_CALL_CHARS, MAX_TOOL_CALL_DEPTH, PROTOCOLS
from plugins.speaker_rec.rules import RuleConfig
from plugins.speaker_rec.series import SeriesError, load_series
from plugins.speaker_rec.tool_endpoint import DEFAULT_PORT, TOKEN_ENV, is_loopback
from plugins.speaker_rec.trajectory_store import (
    DEFAULT_MAX_LIVE,
    DEFAULT_MAX_TOMBSTONES,
    TrajectoryStore,
)

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 600.0
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 60.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 75.0
MIN_TOKEN_CHARS = 16
MAX_ID_CHARS = 256
# Bodies from this size on are decoded and judged in a worker thread (see build_app).
OFFLOAD_BYTES = 1024 * 1024
# The request's lists and the type every item must have.
FIELDS = (
    ("trajectory_ids", str),
    ("actions", str),
    ("extra_fields", dict),
    ("finish", bool),
    ("is_last_step", bool),
)
LATENCY_WINDOW = 4096
PROTECTED_PATHS = ("/get_observation", "/metrics")


class BadRequest(Exception):
    """The request as a whole is malformed; the message says what is wrong (answered 400)."""


def parse_request(body: bytes) -> tuple[list, ...]:
    """The five lists of a /get_observation body, checked for presence, type and length;
    raises BadRequest naming the problem."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequest(f"body is not valid UTF-8 (byte {e.start})") from None
    except RecursionError:
        raise BadRequest("JSON nested too deeply") from None
    except ValueError as e:
        raise BadRequest(f"malformed JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, not {type(data).__name__}")
    lists = []
    for name, kind in FIELDS:
        if name not in data:
            raise BadRequest(f"missing key {name!r}")
        value = data[name]
        if not isinstance(value, list):
            raise BadRequest(f"{name!r} must be a list, not {type(value).__name__}")
        for i, item in enumerate(value):
            if type(item) is not kind:
                raise BadRequest(f"{name}[{i}] must be {kind.__name__}, not {type(item).__name__}")
        lists.append(value)
    lengths = {name: len(value) for (name, _), value in zip(FIELDS, lists, strict=True)}
    if len(set(lengths.values())) != 1:
        raise BadRequest(f"the lists must have equal lengths, got {lengths}")
    if not lists[0]:
        raise BadRequest("empty batch: the lists hold no items")
    return tuple(lists)


def shown_id(trajectory_id: str) -> str:
    """A trajectory id as quoted in an error message, cut short when long."""
    return repr(trajectory_id if len(trajectory_id) <= 80 else trajectory_id[:80] + "…")


class ToolService:
    """The environments of the served series, the trajectories in flight and the counters;
    everything the HTTP layer calls, with no HTTP in it."""

    def __init__(
        self,
        envs: dict[tuple[str, str], SpeakerEnv],
        idle_timeout: float,
        *,
        max_live: int = DEFAULT_MAX_LIVE,
        max_tombstones: int = DEFAULT_MAX_TOMBSTONES,
    ):
        self.envs = envs
        self.series = sorted({name for name, _ in envs})
        self.store = TrajectoryStore(idle_timeout, max_live=max_live, max_tombstones=max_tombstones)
        self.observations = 0
        self.item_errors = 0
        # Held while a batch is judged off the event loop; whoever touches the state waits for it.
        self.busy = asyncio.Lock()

    def observe_batch(
        self, ids: list, actions: list, extras: list, finish: list, last: list
    ) -> dict:
        """Answer every item of a batch in order; one item's failure never fails the others."""
        observations, dones, valids = [], [], []
        for item in zip(ids, actions, extras, finish, last, strict=True):
            try:
                observation, done, valid = self.observe(*item)
            except Exception:  # an internal bug on one item must not fail the batch
                logger.exception("internal error on trajectory %s", shown_id(item[0]))
                observation, done, valid = self._error(
                    item[0], "internal error while judging this action"
                )
            observations.append(observation)
            dones.append(done)
            valids.append(valid)
        self.observations += len(ids)
        return {"observations": observations, "dones": dones, "valids": valids}

    def observe(
        self, trajectory_id: str, action: str, extra: dict, finish: bool, last: bool
    ) -> tuple[str, bool, bool]:
        """(observation, done, valid) for one assistant turn of one trajectory."""
        if finish:
            self.store.free(trajectory_id, "finish")
            return "", True, True
        if len(trajectory_id) > MAX_ID_CHARS:
            return self._error(
                trajectory_id, f"a trajectory id holds at most {MAX_ID_CHARS} characters"
            )
        resolved = self._resolve(extra)
        if isinstance(resolved, str):
            return self._error(trajectory_id, resolved)
        env, line, seq = resolved
        # A retry must repeat the call it retries: the action's hash tells a retry from a reused
        # call_seq.
        fingerprint = hash(action) if seq is not None else None
        entry = self.store.get(trajectory_id)
        if entry is None:
            tombstone = self.store.finished(trajectory_id)
            if tombstone is not None:
                if seq is not None and seq == tombstone.seq:
                    if fingerprint == tombstone.action:
                        return tombstone.reply  # a client's retry of the final call
                    return self._reused_seq(trajectory_id, seq, done=True)
                return self._error(
                    trajectory_id,
                    f"trajectory {shown_id(trajectory_id)} already finished; "
                    "a new trajectory needs a new id",
                )
            if not self.store.has_room():
                return self._error(
                    trajectory_id,
                    f"the server holds its limit of {self.store.max_live} live "
                    "trajectories (--max-live); retry this trajectory later",
                )
            entry = self.store.add(trajectory_id, env.start(line))
        elif entry.trajectory.env is not env or entry.trajectory.index != line:
            return self._error(
                trajectory_id,
                f"trajectory {shown_id(trajectory_id)} is for line "
                f"{entry.trajectory.index} of {entry.trajectory.env.series.name} "
                f"({entry.trajectory.env.protocol}), not this request's",
            )
        elif seq is not None and seq == entry.last_seq:
            if fingerprint == entry.last_action:
                return entry.last_reply  # a client's retry of a call already judged
            return self._reused_seq(trajectory_id, seq, done=False)
        step = entry.trajectory.step_text(action)
        reply = (step.observation, step.done or last, step.valid)
        if step.done or last:
            self.store.free(
                trajectory_id,
                "done" if step.done else "last_step",
                seq=seq,
                action=fingerprint,
                reply=reply,
            )
        else:
            entry.last_seq, entry.last_action, entry.last_reply = seq, fingerprint, reply
        return reply

    def _reused_seq(self, trajectory_id: str, seq: int, *, done: bool) -> tuple[str, bool, bool]:
        """Refuse a call_seq already used with another action; the trajectory itself is kept."""
        self.item_errors += 1
        return (
            f"error: call_seq {seq} of trajectory {shown_id(trajectory_id)} was already "
            "used for another action; a new call needs a new call_seq",
            done,
            False,
        )

    def _resolve(self, extra: dict) -> tuple[SpeakerEnv, int, int | None] | str:
        """The environment, line and call number an item's extra_fields name, or what is wrong."""
        series, line = extra.get("series"), extra.get("line")
        protocol, seq = extra.get("protocol", "hermes"), extra.get("call_seq")
        if not isinstance(series, str):
            return "extra_fields.series must be a series name (string)"
        if protocol not in PROTOCOLS:
            return f"extra_fields.protocol must be one of {list(PROTOCOLS)}"
        env = self.envs.get((series, protocol))
        if env is None:
            return f"unknown series {series!r}; this server serves {self.series}"
        if type(line) is not int or line not in env.labels:
            return f"extra_fields.line must be a labelled line of {series} (an integer index)"
        if seq is not None and type(seq) is not int:
            return "extra_fields.call_seq must be an integer when given"
        return env, line, seq

    def _error(self, trajectory_id: str, reason: str) -> tuple[str, bool, bool]:
        self.item_errors += 1
        self.store.free(trajectory_id, "error")
        return f"error: {reason}", True, False


class Metrics:
    """Request counts by endpoint and status, and latencies over a recent window."""

    def __init__(self):
        self.started = time.monotonic()
        self.requests: Counter = Counter()
        self.statuses: Counter = Counter()
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def record(self, path: str, status: int, seconds: float) -> None:
        self.requests[
            path.lstrip("/") if path in ("/get_observation", "/health", "/metrics") else "other"
        ] += 1
        self.statuses[str(status)] += 1
        if path == "/get_observation" and status == 200:
            self.latencies.append(seconds)

    def snapshot(self) -> dict:
        ordered = sorted(self.latencies)

        def percentile(q: float) -> float | None:
            return (
                round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
                if ordered
                else None
            )

        return {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "requests": dict(self.requests),
            "status": dict(self.statuses),
            "4xx": sum(n for code, n in self.statuses.items() if code.startswith("4")),
            "latency_ms": {
                "p50": percentile(0.50),
                "p99": percentile(0.99),
                "window": len(ordered),
            },
        }


def json_response(payload: dict, status: int = 200, *, close: bool = False) -> web.Response:
    # ensure_ascii keeps any lone surrogate a client sent (say, in a tool name echoed back in a
    # rule message) encodable.
    response = web.Response(
        body=json.dumps(payload).encode("ascii"), status=status, content_type="application/json"
    )
    if close:
        response.force_close()
    return response


def build_app(
    service: ToolService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
    guard: ConnectionGuard | None = None,
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
    limits: dict | None = None,
) -> web.Application:
    """The aiohttp application serving `service`; `token`, when given, is required as
    `Authorization: Bearer <token>` on /get_observation and /metrics. `guard` (when serving)
    learns when each request reaches its handler; `limits` are shown by /metrics."""
    metrics = Metrics()
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def guarded(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        if guard is not None:
            guard.request_started(request.transport)
        try:
            if (
                expected is not None
                and request.path in PROTECTED_PATHS
                and not hmac.compare_digest(
                    request.headers.get("Authorization", "").encode("utf-8", "surrogateescape"),
                    expected,
                )
            ):
                response = json_response(
                    {"error": "missing or wrong bearer token (Authorization: Bearer ...)"}, 401
                )
            else:
                try:
                    response = await handler(request)
                except web.HTTPException as e:  # aiohttp's own 404, 405, 413: answered as JSON too
                    response = json_response({"error": e.text or e.reason}, e.status)
        finally:
            if guard is not None:
                guard.request_ended(request.transport)
        metrics.record(request.path, response.status, time.perf_counter() - started)
        return response

    async def get_observation(request: web.Request) -> web.Response:
        # The exact header first: parsing it (request.content_type) costs more than the rest of a
        # check.
        if (
            request.headers.get("Content-Type") != "application/json"
            and request.content_type != "application/json"
        ):
            return json_response(
                {"error": f"Content-Type must be application/json, not {request.content_type!r}"},
                415,
            )
        if request.content_length is not None and request.content_length > max_body_bytes:
            return json_response(
                {
                    "error": f"body of {request.content_length} bytes exceeds the limit of "
                    f"{max_body_bytes} bytes"
                },
                413,
            )
        try:
            # A body that arrived with its head is read at once; only a body still on its way is
            # timed (wait_for costs a task per request, a third of a small request's CPU).
            body = await (
                request.read()
                if request.content.is_eof()
                else asyncio.wait_for(request.read(), body_timeout)
            )
        except TimeoutError:
            return json_response(
                {"error": f"the body did not arrive within {body_timeout:g} s (--body-timeout)"},
                408,
                close=True,
            )
        except ConnectionError:  # the client hung up mid-body: nobody to answer
            return json_response(
                {"error": "connection lost while reading the body"}, 400, close=True
            )
        if len(body) >= OFFLOAD_BYTES:
            return await judge_in_thread(body)
        try:
            lists = parse_request(body)
        except BadRequest as e:
            return json_response({"error": str(e)}, 400)
        if service.busy.locked():  # a large batch is being judged in the worker thread: wait for it
            async with service.busy:
                return json_response(service.observe_batch(*lists))
        return json_response(service.observe_batch(*lists))

    async def judge_in_thread(body: bytes) -> web.Response:
        """Decode and judge a large body in a worker thread, so the event loop keeps answering
        (/health, other clients' connections) between the thread's steps; batches that arrive
        meanwhile wait for it, so the service's state is never touched from two threads at once."""
        loop = asyncio.get_running_loop()
        try:
            lists = await loop.run_in_executor(None, parse_request, body)
        except BadRequest as e:
            return json_response({"error": str(e)}, 400)
        async with service.busy:
            return json_response(await loop.run_in_executor(None, service.observe_batch, *lists))

    async def health(request: web.Request) -> web.Response:
        return json_response(
            {"status": "ok", "series": service.series, "live_trajectories": len(service.store)}
        )

    async def metrics_view(request: web.Request) -> web.Response:
        store = service.store
        return json_response(
            {
                **metrics.snapshot(),
                "observations": service.observations,
                "item_errors": service.item_errors,
                "live_trajectories": len(store),
                "finished_remembered": len(store.tombstones),
                "freed": dict(store.freed),
                "refused": {
                    "live_trajectories_full": store.refused_full,
                    "connections_full": guard.refused if guard else 0,
                    "header_timeouts": guard.timed_out if guard else 0,
                    "tombstones_forgotten": store.tombstones_dropped,
                },
                "connections": len(guard.open) if guard else None,
                "limits": limits or {},
            }
        )

    app = web.Application(middlewares=[guarded], client_max_size=max_body_bytes)
    app.router.add_post("/get_observation", get_observation)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_view)
    return app


def load_envs(
    series_names: list[str], label_paths: list[Path], data_dir: str, max_turns: int
) -> dict[tuple[str, str], SpeakerEnv]:
    """One environment per (series, protocol); raises SeriesError or ValueError naming the
    file and the reason."""
    envs = {}
    for name, path in zip(series_names, label_paths, strict=True):
        series = load_series(name, data_dir)
        labels = read_labels(path, series)
        for protocol in PROTOCOLS:
            envs[(name, protocol)] = SpeakerEnv(
                series,
                labels.lines,
                protocol=protocol,
                rules=RuleConfig(max_turns=max_turns),
                known=labels.characters,
            )
    return envs


@dataclass(frozen=True)
class ServerLimits:
    """Every bound of the HTTP layer, each a command-line flag; shown by /metrics."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S


def descriptor_room(max_connections: int) -> int:
    """Raise the soft limit on open files to hold `max_connections` (plus room for the rest of
    the process) where the hard limit allows; returns how many connections fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + 64
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max_connections if soft == resource.RLIM_INFINITY else min(max_connections, soft - 64)


async def serve(
    service: ToolService,
    host: str,
    port: int,
    *,
    token: str | None,
    limits: ServerLimits = ServerLimits(),
) -> None:
    """Serve until SIGTERM or SIGINT, sweeping idle trajectories and aborting connections whose
    request head is overdue meanwhile."""
    room = descriptor_room(limits.max_connections)
    if room < limits.max_connections:
        logger.warning(
            "only %d connections fit under this process's limit on open files (asked for "
            "--max-connections %d)",
            room,
            limits.max_connections,
        )
    guard = ConnectionGuard(room, limits.header_timeout_s)
    shown = {
        **asdict(limits),
        "max_connections": room,
        "max_live_trajectories": service.store.max_live,
        "max_tombstones": service.store.max_tombstones,
        "idle_timeout_s": service.store.idle_timeout,
        "max_trajectory_id_chars": MAX_ID_CHARS,
        "max_tool_call_chars": MAX_TOOL_CALL_CHARS,
        "max_tool_call_depth": MAX_TOOL_CALL_DEPTH,
    }
    app = build_app(
        service,
        max_body_bytes=limits.max_body_bytes,
        token=token,
        guard=guard,
        body_timeout=limits.body_timeout_s,
        limits=shown,
    )
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.keepalive_timeout_s)
    await runner.setup()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        guard.factory(runner.server), host, port, backlog=1024, reuse_address=True
    )
    watchdog = asyncio.create_task(guard.run())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info(
        "serving %s on http://%s:%d (idle timeout %.0f s, token %s)",
        ", ".join(service.series),
        host,
        port,
        service.store.idle_timeout,
        "required" if token else "off",
    )
    period = max(0.2, min(service.store.idle_timeout / 4, 30.0))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=period)
        except TimeoutError:
            if service.busy.locked():
                continue  # the worker thread is judging a batch; sweep next time
            freed = service.store.sweep()
            if freed:
                logger.info("freed %d idle trajectories; %d live", freed, len(service.store))
    logger.info("stopping: %d trajectories live", len(service.store))
    watchdog.cancel()
    server.close()
    await runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plugins.speaker_rec.server",
        description="Serve the speaker-recognition tools over HTTP in verl-tool's wire format "
        "(POST /get_observation; GET /health, /metrics) for the given series. Binds "
        "127.0.0.1 by default; "
        f"binding any other address needs a bearer token in {TOKEN_ENV}.",
    )
    parser.add_argument(
        "--series", nargs="+", required=True, help="series names (identifiers, not paths)"
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        required=True,
        type=Path,
        help="labels.json of each series, in the order of --series",
    )
    parser.add_argument(
        "--data-dir", default="data/demo", help="directory holding <series>/ (default: %(default)s)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="seconds after which an unused trajectory is freed (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body accepted; larger gets 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-live",
        type=int,
        default=DEFAULT_MAX_LIVE,
        help="live trajectories held at once; a new one beyond it gets an error item "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-tombstones",
        type=int,
        default=DEFAULT_MAX_TOMBSTONES,
        help="finished trajectory ids remembered (for late actions and retries) (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="open connections at once; a new one beyond it gets 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_S,
        help="seconds a connection may take to send a request's head (default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds a request may take to send its body; then 408 (default: %(default)s)",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=DEFAULT_KEEPALIVE_TIMEOUT_S,
        help="seconds an idle keep-alive connection is kept (default: %(default)s)",
    )
    parser.add_argument(
        "--log-burst",
        type=int,
        default=10,
        help="lines per message kind per minute in the log; more are counted, not written "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-turns",
        type=int,
        default=RuleConfig.max_turns,
        help="assistant turns before a trajectory ends (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if len(args.series) != len(args.labels):
        parser.error(
            f"--series names {len(args.series)} series but --labels gives {len(args.labels)} files"
        )
    positive = (
        "idle_timeout",
        "max_body_bytes",
        "max_turns",
        "max_live",
        "max_tombstones",
        "max_connections",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "log_burst",
    )
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Load the series and serve their tools until stopped; 2 on bad input or when it cannot
    listen."""
    token = os.environ.get(TOKEN_ENV) or None
    install_log_filter((token,) if token else (), burst=args.log_burst)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        print(
            f"error: {TOKEN_ENV} holds {len(token)} characters; a token needs at least "
            f"{MIN_TOKEN_CHARS} "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            file=sys.stderr,
        )
        return 2
    if token is None and not is_loopback(args.host):
        print(
            f"error: refusing to bind {args.host} without a token: set {TOKEN_ENV} "
            "(clients then send 'Authorization: Bearer <token>'), or bind 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    try:
        envs = load_envs(args.series, args.labels, args.data_dir, args.max_turns)
    except (SeriesError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    service = ToolService(
        envs, args.idle_timeout, max_live=args.max_live, max_tombstones=args.max_tombstones
    )
    limits = ServerLimits(
        max_body_bytes=args.max_body_bytes,
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        keepalive_timeout_s=args.keepalive_timeout,
    )
    try:
        asyncio.run(serve(service, args.host, args.port, token=token, limits=limits))
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
