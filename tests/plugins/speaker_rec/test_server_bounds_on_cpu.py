"""The tool server under hostile clients, over real HTTP: every resource a client can make it hold
is bounded (live trajectories, remembered ids, connections, time to send a request), retries of
a final step are answered again, and the log holds no traceback and no credential."""

import json
import select
import socket
import time
import urllib.error
import urllib.request

import pytest

from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import Action, render_turn
from plugins.speaker_rec.series import load_series
from plugins.speaker_rec.server import TOKEN_ENV
from tools.common.ports import free_port
from tools.common.process import running_server

SERIES = "chun_jiang"
TOKEN = "t0ken-abcdefghijklmnopqrstuvwxyz"


def call(
    url: str,
    path: str,
    payload: dict | None = None,
    headers: dict | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a GET (no payload) or POST to the server."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def batch(items: list[tuple]) -> dict:
    ids, actions, extras, finish, last = zip(*items, strict=True)
    return {
        "trajectory_ids": list(ids),
        "actions": list(actions),
        "extra_fields": list(extras),
        "finish": list(finish),
        "is_last_step": list(last),
    }


def turn(kind: str, name: str) -> str:
    return render_turn(Action(kind, name, "x"), "hermes")


@pytest.fixture(scope="module")
def bounded(repo_root, demo_labels, tmp_path_factory):
    """A server with small limits; yields (url, log path, first labelled line, its first
    candidate)."""
    log = tmp_path_factory.mktemp("bounded") / "server.log"
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(repo_root / "data" / "demo"),
        "--max-live",
        "3",
        "--max-tombstones",
        "5",
        "--max-connections",
        "1100",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
    ]
    with running_server(args, port=free_port(), log_path=log, env={TOKEN_ENV: TOKEN}) as (url, _):
        yield url, log, None


def observe(url: str, items: list[tuple]) -> dict:
    status, reply, _ = call(
        url, "/get_observation", batch(items), {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200, reply
    return reply


def metrics(url: str) -> dict:
    return call(url, "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[1]


def test_live_trajectories_are_capped_and_existing_ones_keep_working(bounded):
    url, _, _ = bounded
    extra = {"series": SERIES, "line": 0}
    reply = observe(
        url, [(f"cap-{i}", turn("tool", "audio_sim"), extra, False, False) for i in range(4)]
    )
    assert reply["valids"] == [True, True, True, False]
    assert reply["observations"][3] == (
        "error: the server holds its limit of 3 live trajectories (--max-live); "
        "retry this trajectory later"
    )
    assert observe(url, [("cap-0", turn("tool", "char_relation"), extra, False, False)])[
        "valids"
    ] == [True]
    observe(url, [("cap-0", "", extra, True, False)])
    assert observe(url, [("cap-3", turn("tool", "audio_sim"), extra, False, False)])["valids"] == [
        True
    ]
    observe(url, [(f"cap-{i}", "", extra, True, False) for i in range(4)])
    assert metrics(url)["refused"]["live_trajectories_full"] == 1
    assert metrics(url)["limits"]["max_live_trajectories"] == 3


def test_unknown_ids_leave_no_tombstone_and_tombstones_are_capped(bounded):
    url, _, _ = bounded
    observe(url, [(f"never-{i}", "", {}, True, False) for i in range(1000)])
    assert metrics(url)["finished_remembered"] <= 5
    extra = {"series": SERIES, "line": 0}
    for i in range(8):
        observe(url, [(f"tomb-{i}", turn("tool", "audio_sim"), extra, False, True)])
    assert metrics(url)["finished_remembered"] == 5


def test_a_retried_final_step_gets_its_first_reply_and_a_reused_seq_is_refused(bounded):
    url, _, _ = bounded
    extra = {"series": SERIES, "line": 0}
    first = observe(
        url, [("last", turn("tool", "audio_sim"), {**extra, "call_seq": 1}, False, True)]
    )
    assert first["dones"] == [True] and first["valids"] == [True]
    assert (
        observe(url, [("last", turn("tool", "audio_sim"), {**extra, "call_seq": 1}, False, True)])
        == first
    )
    refused = observe(
        url, [("last", turn("tool", "char_relation"), {**extra, "call_seq": 1}, False, True)]
    )
    assert refused["valids"] == [False]
    assert (
        "call_seq 1 of trajectory 'last' was already used for another action"
        in refused["observations"][0]
    )
    assert observe(
        url, [("live", turn("tool", "audio_sim"), {**extra, "call_seq": 1}, False, False)]
    )["valids"] == [True]
    reused = observe(
        url, [("live", turn("tool", "char_relation"), {**extra, "call_seq": 1}, False, False)]
    )
    assert reused["valids"] == [False] and reused["dones"] == [False]
    assert observe(
        url, [("live", turn("tool", "char_relation"), {**extra, "call_seq": 2}, False, False)]
    )["valids"] == [True]  # the refused reuse was not judged: char_relation is no repeat
    observe(url, [("live", "", extra, True, False)])


def test_a_retried_final_answer_gets_its_first_reply(bounded, repo_root, demo_labels):
    url, _, _ = bounded
    series = load_series(SERIES, repo_root / "data" / "demo")
    line, label = next(iter(sorted(read_labels(demo_labels, series).lines.items())))
    extra = {"series": SERIES, "line": line}
    observe(url, [("ans", turn("tool", "audio_sim"), {**extra, "call_seq": 1}, False, False)])
    reply = observe(
        url, [("ans", turn("answer", label.names[0]), {**extra, "call_seq": 2}, False, False)]
    )
    assert reply == {"observations": [""], "dones": [True], "valids": [True]}
    assert (
        observe(
            url, [("ans", turn("answer", label.names[0]), {**extra, "call_seq": 2}, False, False)]
        )
        == reply
    )
    late = observe(
        url, [("ans", turn("answer", label.names[0]), {**extra, "call_seq": 3}, False, False)]
    )
    assert "already finished" in late["observations"][0]


def test_content_type_must_be_json(bounded):
    url, _, _ = bounded
    status, reply, _ = call(
        url,
        "/get_observation",
        batch([("ct", "x", {}, True, False)]),
        {"Authorization": f"Bearer {TOKEN}"},
        content_type="text/plain",
    )
    assert status == 415 and "Content-Type must be application/json" in reply["error"]


def test_half_open_connections_are_closed_and_a_normal_client_is_served(bounded):
    url, log, _ = bounded
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:  # half send part of a request head, half part of a body
                s.sendall(b"POST /get_observation HTTP/1.1\r\nHost: x\r\nAuthor")
            else:
                s.sendall(
                    b"POST /get_observation HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/json\r\nAuthorization: Bearer "
                    + TOKEN.encode()
                    + b'\r\nContent-Length: 100\r\n\r\n{"tr'
                )
            sockets.append(s)
        started = time.monotonic()
        assert call(url, "/health")[0] == 200
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 15
        open_ = set(sockets)
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_), [], [], 0.5)
            for s in readable:
                try:
                    s.recv(65536)  # a 408 or nothing, then EOF
                    if not s.recv(65536, socket.MSG_DONTWAIT):
                        open_.discard(s)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(s)
        assert not open_, f"{len(open_)} connections still open"
    finally:
        for s in sockets:
            s.close()
    assert call(url, "/health")[0] == 200
    assert metrics(url)["refused"]["header_timeouts"] >= 500
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text and TOKEN not in text


def test_connections_beyond_the_cap_get_503(repo_root, demo_labels):
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(repo_root / "data" / "demo"),
        "--max-connections",
        "4",
    ]
    with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            time.sleep(0.3)
            extra = socket.create_connection(("127.0.0.1", port))
            extra.settimeout(5)
            reply = extra.recv(4096)
            assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in reply
            assert b"limit of 4 connections (--max-connections)" in reply
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        assert call(url, "/health")[0] == 200


def test_a_malformed_authorization_header_is_not_logged(repo_root, demo_labels, tmp_path):
    log = tmp_path / "server.log"
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(repo_root / "data" / "demo"),
        "--log-level",
        "DEBUG",
    ]
    with running_server(args, port=free_port(), log_path=log, env={TOKEN_ENV: TOKEN}) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        for header in (
            b"Authorization: Bearer " + TOKEN.encode() + b"\x01\x02",
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n bad-fold",
            b"Authorization Bearer " + TOKEN.encode(),
        ):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
                s.settimeout(5)
                assert s.recv(4096)[9:10] == b"4"  # aiohttp answers a bad head with HTTP/1.0 400
        with socket.create_connection(("127.0.0.1", port)) as s:  # a hang-up mid-body
            s.sendall(
                b"POST /get_observation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
            )
            time.sleep(0.2)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert TOKEN not in text and "Traceback" not in text


def test_short_tokens_are_refused_with_the_minimum(repo_root, demo_labels):
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "plugins.speaker_rec.server",
            "--series",
            SERIES,
            "--labels",
            str(demo_labels),
            "--port",
            str(free_port()),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo_root), TOKEN_ENV: "x"},
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{TOKEN_ENV} holds 1 characters; a token needs at least 16" in proc.stderr


def test_log_filter_redacts_rate_limits_and_drops_client_tracebacks():
    import logging

    from plugins.speaker_rec.http_guard import SafeLogFilter

    safe = SafeLogFilter(("sekrit-token",), burst=3, window=60)

    def record(msg, *args, exc=None):
        return logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            msg,
            args,
            (type(exc), exc, None) if exc else None,
        )

    hung_up = record(
        "Error handling request from %s", "127.0.0.1", exc=ConnectionResetError("peer reset")
    )
    assert safe.filter(hung_up) and hung_up.exc_info is None
    assert (
        hung_up.getMessage()
        == "Error handling request from 127.0.0.1: ConnectionResetError: peer reset"
    )
    leaked = record("bad header b'Authorization: Bearer sekrit-token\\x01' (token required)")
    assert safe.filter(leaked)
    assert "sekrit" not in leaked.getMessage() and "(token required)" in leaked.getMessage()
    assert [safe.filter(record("Error handling request from %s", "h")) for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert safe.suppressed_total == 1  # the first of the template was the hang-up above


def test_a_hostile_action_at_the_body_limit_is_an_invalid_turn(bounded):
    url, _, _ = bounded
    extra = {"series": SERIES, "line": 0}
    action = "<tool_call>" + "[" * (8 * 1024 * 1024 - 1000)
    reply = observe(
        url,
        [
            ("huge", action, extra, False, False),
            ("small", turn("tool", "audio_sim"), extra, False, True),
        ],
    )
    assert reply["valids"] == [False, True] and reply["dones"] == [False, True]
    assert reply["observations"][
        0
    ] == "Format error: <tool_call> is opened but never closed." or reply["observations"][
        0
    ].startswith("格式错误：<tool_call>")
    observe(url, [("huge", "", extra, True, False)])
