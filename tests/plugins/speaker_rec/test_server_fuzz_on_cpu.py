"""Fuzz the tool server over real HTTP: 10,000 seeded random or malformed requests.

Bad JSON, invalid UTF-8, wrong list lengths, wrong types, missing keys, empty lists, deeply nested
JSON, bodies beyond the size limit, lone surrogates in ids and actions, unknown series and lines,
random assistant text, wrong methods and paths. Every answer must be a 4xx, or a 200 whose lists
match the batch (with valid=false, done=true where the item itself is bad); never a 5xx; and the
server is still healthy afterwards.
"""

import asyncio
import json
import random
import time

import aiohttp
import pytest

from plugins.speaker_rec.protocol import TOOL_NAMES
from plugins.speaker_rec.server import TOKEN_ENV
from tools.common.ports import free_port
from tools.common.process import running_server

pytestmark = pytest.mark.slow

SERIES = "chun_jiang"
REQUESTS = 10_000
CONCURRENCY = 16
MAX_BODY = 65_536
SEED = 0
FIELDS = ("trajectory_ids", "actions", "extra_fields", "finish", "is_last_step")
SNIPPETS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool>",
    "</tool>",
    '{"name": "audio_sim", "arguments": {}}',
    '{"name": ',
    "林晚",
    "其他",
    "\ud800",
    "\x00",
    "{",
    "}",
    *TOOL_NAMES,
    "nobody",
]


def random_action(rng: random.Random) -> str:
    return "".join(rng.choice(SNIPPETS) for _ in range(rng.randint(0, 8)))


def valid_batch(rng: random.Random, lines: list[int], size: int) -> dict:
    """A well-formed batch of random actions on random lines (some of them unknown or odd)."""
    extras = []
    for _ in range(size):
        extra = {"series": SERIES, "line": rng.choice(lines)}
        if rng.random() < 0.2:
            extra[rng.choice(["series", "line", "protocol", "call_seq"])] = rng.choice(
                ["no_such", -1, 10**9, "5", None, True, 3.0, [], {}, "tags", "hermes", "xml", 7]
            )
        extras.append(extra)
    return {
        "trajectory_ids": [
            rng.choice(["a", "b", "\ud800", "é", str(rng.randint(0, 50))]) for _ in range(size)
        ],
        "actions": [random_action(rng) for _ in range(size)],
        "extra_fields": extras,
        "finish": [rng.random() < 0.1 for _ in range(size)],
        "is_last_step": [rng.random() < 0.1 for _ in range(size)],
    }


def malformed(rng: random.Random, lines: list[int]) -> tuple[str, bytes]:
    """(kind, body) of one request meant to be refused or answered per item."""
    kind = rng.choice(
        [
            "bad_json",
            "bad_utf8",
            "lengths",
            "types",
            "missing",
            "empty",
            "nested",
            "huge",
            "not_object",
            "valid",
            "valid",
            "valid",
            "unknown_series",
            "surrogate",
        ]
    )
    body = valid_batch(rng, lines, rng.randint(1, 8))
    if kind == "bad_json":
        raw = json.dumps(body).encode()
        while True:  # a cut and a suffix that happen to make valid JSON again are drawn anew
            broken = raw[: rng.randint(0, len(raw) - 1)] + rng.choice(
                [b"", b"}", b"]]", b"\x00", b"nul"]
            )
            try:
                json.loads(broken)
            except ValueError:
                return kind, broken
    if kind == "bad_utf8":
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        cut = rng.randint(0, len(raw))
        return kind, raw[:cut] + rng.choice(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
        ) + raw[cut:]
    if kind == "lengths":
        body[rng.choice(FIELDS)].append(rng.choice(["x", True, {}]))
    elif kind == "types":
        field = rng.choice(FIELDS)
        body[field] = rng.choice(
            [
                None,
                1,
                "str",
                {"a": 1},
                [1.5],
                [None],
                [[]],
                [{"x": 1}] if field != "extra_fields" else ["x"],
            ]
        )
    elif kind == "missing":
        del body[rng.choice(FIELDS)]
    elif kind == "empty":
        body = {field: [] for field in FIELDS}
    elif kind == "nested":
        depth = rng.randint(1000, 20000)
        return kind, b"[" * depth + b"]" * depth
    elif kind == "huge":
        body["actions"][0] = "<think>" + "x" * (MAX_BODY + rng.randint(0, 4096)) + "</think>"
    elif kind == "not_object":
        return kind, rng.choice([b"[]", b"null", b"42", b'"text"', b"NaN", b"true"])
    elif kind == "unknown_series":
        for extra in body["extra_fields"]:
            extra["series"] = rng.choice(["../etc/passwd", "no_such", "", "CHUN_JIANG"])
    elif kind == "surrogate":
        body["trajectory_ids"] = ["\ud800\udfff\ud83d" for _ in body["trajectory_ids"]]
    return kind, json.dumps(body).encode()


def check(kind: str, status: int, reply: bytes, sent: bytes) -> str | None:
    """What is wrong with the answer to one request, or None."""
    if status >= 500:
        return f"{kind}: {status}"
    if kind in (
        "bad_json",
        "bad_utf8",
        "lengths",
        "types",
        "missing",
        "empty",
        "nested",
        "not_object",
    ):
        return None if status == 400 else f"{kind}: expected 400, got {status}"
    if kind == "huge":
        return None if status == 413 else f"{kind}: expected 413, got {status}"
    if status != 200:
        return f"{kind}: expected 200, got {status}: {reply[:200]!r}"
    data, n = json.loads(reply), len(json.loads(sent)["trajectory_ids"])
    if [len(data[key]) for key in ("observations", "dones", "valids")] != [n] * 3:
        return f"{kind}: answer lists do not match the batch of {n}"
    if kind == "unknown_series" and not all(
        d and not v
        for d, v, f in zip(data["dones"], data["valids"], json.loads(sent)["finish"], strict=True)
        if not f
    ):
        return f"{kind}: an unknown series must be done and invalid"
    return None


async def fire(url: str, lines: list[int]) -> tuple[list[str], dict]:
    rng = random.Random(SEED)
    requests = [malformed(rng, lines) for _ in range(REQUESTS - 200)]
    problems, kinds = [], {}
    queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def worker():
            while not queue.empty():
                kind, body = queue.get_nowait()
                kinds[kind] = kinds.get(kind, 0) + 1
                async with session.post(
                    f"{url}/get_observation",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as response:
                    problem = check(kind, response.status, await response.read(), body)
                if problem:
                    problems.append(problem)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        # Wrong methods and paths: aiohttp's own 404/405, answered as JSON.
        for _ in range(200):
            method, path = rng.choice(
                [
                    ("GET", "/get_observation"),
                    ("PUT", "/health"),
                    ("POST", "/nope"),
                    ("DELETE", "/metrics"),
                    ("GET", "/%ff%fe"),
                ]
            )
            async with session.request(method, url + path, data=b"{}") as response:
                kinds["method_path"] = kinds.get("method_path", 0) + 1
                if response.status not in (404, 405):
                    problems.append(f"{method} {path}: {response.status}")
    return problems, kinds


@pytest.fixture(scope="module")
def server(repo_root, demo_labels):
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(repo_root / "data" / "demo"),
        "--max-body-bytes",
        str(MAX_BODY),
        "--log-level",
        "ERROR",
    ]
    with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, proc):
        yield url, proc


def test_ten_thousand_malformed_or_random_requests_never_get_a_5xx(server, demo_labels):
    url, proc = server
    lines = [
        record["index"] for record in json.loads(demo_labels.read_text(encoding="utf-8"))["lines"]
    ]
    started = time.monotonic()
    problems, kinds = asyncio.run(fire(url, lines))
    elapsed = time.monotonic() - started
    assert problems == [], problems[:20]
    assert sum(kinds.values()) == REQUESTS and len(kinds) == 13, kinds
    assert proc.poll() is None, "the server died"

    async def health():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/health") as response:
                health = response.status, await response.json()
            async with session.get(f"{url}/metrics") as response:
                return health, await response.json()

    (status, body), metrics = asyncio.run(health())
    assert status == 200 and body["status"] == "ok"
    assert not any(code.startswith("5") for code in metrics["status"]), metrics["status"]
    assert metrics["status"]["400"] == sum(
        kinds[k]
        for k in (
            "bad_json",
            "bad_utf8",
            "lengths",
            "types",
            "missing",
            "empty",
            "nested",
            "not_object",
        )
    )
    assert metrics["status"]["413"] == kinds["huge"]
    assert elapsed < 60, f"fuzzing took {elapsed:.0f} s"
