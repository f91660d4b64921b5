"""The multi-port engine behind tools.sr.evaluate: a pool of OpenAI-compatible endpoints with
bounded
concurrency per port, per-request timeout and retries with exponential back-off, and failover.

A port that fails `max_failures` times in a row (connection errors, timeouts, 408/409/429/5xx) is
dropped for the rest of the run; a trajectory that was running on it starts again on a live
port, and since every worker takes its next line from one shared queue, the dropped port's
share of the remaining lines goes to the live ports. When no port is left, `AllPortsDead` ends
the run. Used by tools.sr.evaluate and tools.dev.bench_eval.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import openai

from plugins.redaction import redact
from plugins.speaker_rec.env import SpeakerEnv
from tools.common.fileio import AppendOnlyJsonl
from tools.sr import rollout

logger = logging.getLogger(__name__)

# Status codes that say "the server is busy or broken", not "this request is wrong".
TRANSIENT_STATUS = {408, 409, 429}


class PortDead(Exception):
    """The port a trajectory was running on was dropped; run the line elsewhere."""


class AllPortsDead(Exception):
    """Every port was dropped; the run cannot go on."""


@dataclass
class Endpoint:
    """One server: its base URL (…/v1), client, load and health."""

    url: str
    client: object
    in_flight: int = 0
    consecutive_failures: int = 0
    dead: bool = False
    trajectories: int = 0

    @property
    def port(self) -> int:
        """The URL's port, or its scheme's default (a hosted endpoint names none)."""
        parsed = urlparse(self.url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)


@dataclass
class RetryPolicy:
    """Per-request retries on one port, and when a port counts as dead."""

    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_failures: int = 3


class PortPool:
    """Endpoints with at most `concurrency` trajectories each at a time."""

    def __init__(self, urls: list[str], concurrency: int, timeout: float, policy: RetryPolicy):
        # Retries are ours (they count towards the port's health); the client must not retry.
        self.endpoints = [
            Endpoint(url, rollout.teacher_client(url, timeout, retries=0)) for url in urls
        ]
        self.concurrency = concurrency
        self.policy = policy
        self._changed = asyncio.Condition()

    def live(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.dead]

    async def acquire(self) -> Endpoint:
        """A live endpoint with a free slot (the least loaded); waits for one; raises
        AllPortsDead when none is left."""
        async with self._changed:
            while True:
                live = self.live()
                if not live:
                    raise AllPortsDead("every port failed repeatedly and was dropped")
                free = [e for e in live if e.in_flight < self.concurrency]
                if free:
                    endpoint = min(free, key=lambda e: e.in_flight)
                    endpoint.in_flight += 1
                    return endpoint
                await self._changed.wait()

    async def release(self, endpoint: Endpoint) -> None:
        async with self._changed:
            endpoint.in_flight -= 1
            self._changed.notify_all()

    async def failed(self, endpoint: Endpoint, error: Exception) -> None:
        """Count a transient failure; drop the port after `max_failures` in a row."""
        endpoint.consecutive_failures += 1
        if not endpoint.dead and endpoint.consecutive_failures >= self.policy.max_failures:
            endpoint.dead = True
            logger.warning(
                "port %d dropped after %d failures in a row (last: %s); %d ports left",
                endpoint.port,
                endpoint.consecutive_failures,
                error,
                len(self.live()),
            )
            async with self._changed:
                self._changed.notify_all()

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()


class PortSession:
    """The requests of one trajectory on one endpoint; quacks like the AsyncOpenAI client for
    `rollout.api_attempt` (its `post`), adding our retries, back-off and latency log."""

    def __init__(self, pool: PortPool, endpoint: Endpoint):
        self.pool, self.endpoint = pool, endpoint
        self.latency_s: list[float] = []
        self.retried = 0

    async def post(self, path: str, *, cast_to, body: dict):
        policy = self.pool.policy
        for attempt in range(policy.retries + 1):
            if self.endpoint.dead:
                raise PortDead(redact(self.endpoint.url))
            started = time.perf_counter()
            try:
                response = await self.endpoint.client.post(path, cast_to=cast_to, body=body)
            except (openai.APIConnectionError, openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                if status is not None and status < 500 and status not in TRANSIENT_STATUS:
                    raise  # the request itself is wrong: retrying or moving it cannot help
                await self.pool.failed(self.endpoint, e)
                if self.endpoint.dead:
                    raise PortDead(redact(self.endpoint.url)) from e
                if attempt == policy.retries:
                    raise
                self.retried += 1
                await asyncio.sleep(min(policy.max_backoff_s, policy.backoff_s * 2**attempt))
                continue
            self.endpoint.consecutive_failures = 0
            self.latency_s.append(round(time.perf_counter() - started, 4))
            return response
        raise AssertionError("unreachable")


async def evaluate_line(
    env: SpeakerEnv, pool: PortPool, model: str, index: int, sampling: dict
) -> dict:
    """One line's trajectory on some live port, started again elsewhere when its port is
    dropped; the record is traces' plus the port that served it, the requests retried on the
    way (on every port tried) and the latency of each request of the final trajectory."""
    retried = 0
    while True:
        endpoint = await pool.acquire()
        session = PortSession(pool, endpoint)
        started = time.perf_counter()
        try:
            trajectory, messages, requests = await rollout.api_attempt(
                env, session, model, index, sampling, hint=None
            )
        except PortDead:
            retried += session.retried + 1
            logger.info("line %d moves off dropped port %d", index, endpoint.port)
            continue
        finally:
            await pool.release(endpoint)
        endpoint.trajectories += 1
        record = rollout.trajectory_record(
            env,
            trajectory,
            messages,
            rollout.line_truth(env, index),
            teacher={"kind": "api", "model": model},
            seconds=time.perf_counter() - started,
            requests=requests,
            hint_used=False,
        )
        return {
            **record,
            "port": endpoint.port,
            "attempts": retried + session.retried,
            "latency_s": session.latency_s,
        }


async def run_pool(
    env: SpeakerEnv,
    urls: list[str],
    model: str,
    todo: list[int],
    output: AppendOnlyJsonl,
    *,
    sampling: dict,
    concurrency: int,
    timeout: float,
    policy: RetryPolicy,
) -> tuple[int, PortPool]:
    """Evaluate `todo` over the endpoints, appending one record per line to `output` (an entered
    `rollout.open_output`); returns
    (lines failed, the pool) and raises AllPortsDead when every port was dropped."""
    pool = PortPool(urls, concurrency, timeout, policy)
    try:

        async def solve(index: int) -> dict:
            return await evaluate_line(env, pool, model, index, sampling)

        failed = await rollout.write_records(
            output, todo, solve, concurrency * len(urls), desc="eval", stop_on=(AllPortsDead,)
        )
    finally:
        await pool.close()
    return failed, pool
