"""The tool server over real HTTP, in its own process, on the demo series.

verl-tool-shaped batches of 64 trajectories with mixed finish / is_last_step flags go through
several steps; every observation is compared with what the SR environment itself produces
(Toolset.run for tool calls, the rules' messages for violations). Also: state is freed (finish,
last step, done, idle timeout), a retried call is answered again rather than judged twice, the
bearer token rules, and /metrics.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import Action, render_turn
from plugins.speaker_rec.series import load_series
from plugins.speaker_rec.server import TOKEN_ENV
from tools.common.ports import free_port
from tools.common.process import running_server

SERIES = "chun_jiang"


def call(
    url: str, path: str, payload: dict | None = None, headers: dict | None = None
) -> tuple[int, dict]:
    """(status, JSON body) of a GET (no payload) or POST to the server."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def batch(items: list[tuple]) -> dict:
    """A /get_observation body from (trajectory_id, action, extra_fields, finish, is_last_step)."""
    ids, actions, extras, finish, last = zip(*items, strict=True)
    return {
        "trajectory_ids": list(ids),
        "actions": list(actions),
        "extra_fields": list(extras),
        "finish": list(finish),
        "is_last_step": list(last),
    }


@pytest.fixture(scope="module")
def demo_dir(repo_root):
    return repo_root / "data" / "demo"


@pytest.fixture(scope="module")
def env(demo_dir, demo_labels) -> SpeakerEnv:
    """The same environment the server builds, to compute expected observations."""
    series = load_series(SERIES, demo_dir)
    labels = read_labels(demo_labels, series)
    return SpeakerEnv(series, labels.lines, known=labels.characters)


@pytest.fixture(scope="module")
def server(demo_dir, demo_labels, tmp_path_factory):
    log = tmp_path_factory.mktemp("tool-server") / "server.log"
    args = ["--series", SERIES, "--labels", str(demo_labels), "--data-dir", str(demo_dir)]
    with running_server(args, port=free_port(), log_path=log, env={TOKEN_ENV: ""}) as (url, _):
        yield url


def tool(name: str, protocol: str = "hermes") -> str:
    return render_turn(Action("tool", name, "看看线索。"), protocol)


def answer(name: str) -> str:
    return render_turn(Action("answer", name, "就是他。"), "hermes")


def message(env: SpeakerEnv, line: int, reason: str, name: str | None = None) -> str:
    """The rule's message for `reason`, as the environment words it for `line`."""
    return env.start(line).judge.message(reason, name, env.language)


def test_batches_of_64_trajectories_with_mixed_flags(server, env):
    lines = sorted(env.labels)[:64]
    assert len(lines) == 64 and set(env.toolset.available) == {
        "audio_sim",
        "char_relation",
        "video_cap_brief",
        "video_cap_detailed",
    }

    def run(name, line):
        return env.toolset.run(name, line, env.labels[line])

    steps: list[list[tuple]] = [
        [],
        [],
        [],
        [],
    ]  # per step: (item, expected (observation, done, valid))
    for k, line in enumerate(lines):
        tid, extra, kind = f"t{k}", {"series": SERIES, "line": line}, k % 8
        first_candidate = env.labels[line].names[0]
        if kind == 0:  # a full, valid trajectory: two tools, then the answer
            plan = [
                ((tool("audio_sim"), False, False), (run("audio_sim", line), False, True)),
                ((tool("char_relation"), False, False), (run("char_relation", line), False, True)),
                ((answer(first_candidate), False, False), ("", True, True)),
            ]
        elif kind == 1:  # a duplicate call, then verl-tool's finish
            plan = [
                ((tool("audio_sim"), False, False), (run("audio_sim", line), False, True)),
                (
                    (tool("audio_sim"), False, False),
                    (message(env, line, "repeated_call", "audio_sim"), False, False),
                ),
                (("whatever", True, False), ("", True, True)),
            ]
        elif kind == 2:  # an answer before audio_sim, then a last step that still runs its tool
            plan = [
                (
                    (answer(first_candidate), False, False),
                    (message(env, line, "answer_before_audio_sim"), False, False),
                ),
                (
                    (tool("video_cap_brief"), False, True),
                    (run("video_cap_brief", line), True, True),
                ),
            ]
        elif kind == 3:  # garbage, then a valid tool call, then finish
            plan = [
                (
                    ("garbage without any tag", False, False),
                    (message(env, line, "no_action"), False, False),
                ),
                (
                    (tool("video_cap_detailed"), False, False),
                    (run("video_cap_detailed", line), False, True),
                ),
                (("", True, False), ("", True, True)),
            ]
        elif kind == 4:  # an answer that is not a candidate, then a valid one
            plan = [
                ((tool("audio_sim"), False, False), (run("audio_sim", line), False, True)),
                (
                    (answer("无名氏"), False, False),
                    (message(env, line, "answer_not_candidate", "无名氏"), False, False),
                ),
                ((answer(env.other), False, False), ("", True, True)),
            ]
        elif kind == 5:  # the tags protocol, and an unknown tool
            extra = {**extra, "protocol": "tags"}
            plan = [
                ((tool("audio_sim", "tags"), False, False), (run("audio_sim", line), False, True)),
                (
                    ("<think>嗯</think><tool>face_id</tool>", False, False),
                    (message(env, line, "unknown_tool", "face_id"), False, False),
                ),
                (("", True, False), ("", True, True)),
            ]
        elif kind == 6:  # finish on the first step: nothing runs, nothing stays
            plan = [((tool("audio_sim"), True, False), ("", True, True))]
        else:  # problems of the item, not of the batch
            bad = [
                {"series": "no_such_series", "line": line},
                {"series": SERIES, "line": 10**6},
                {"series": SERIES, "line": line, "protocol": "xml"},
                {"line": line},
            ][k // 8 % 4]
            plan = [((tool("audio_sim"), False, False), None)]
            extra = bad
        for step, ((action, finish, last), expected) in enumerate(plan):
            steps[step].append(((tid, action, extra, finish, last), expected))

    live_after = [
        6 * 8,
        5 * 8,
        0,
    ]  # kinds 6 and 7 never stay live, kind 2 ends at step 2, the rest at 3
    for step, entries in enumerate(steps[:3]):
        status, reply = call(server, "/get_observation", batch([item for item, _ in entries]))
        assert status == 200, reply
        for position, (item, expected) in enumerate(entries):
            got = (
                reply["observations"][position],
                reply["dones"][position],
                reply["valids"][position],
            )
            if expected is None:
                assert got[0].startswith("error: ") and got[1:] == (True, False), (item, got)
            else:
                assert got == expected, (item, got, expected)
        assert call(server, "/health")[1]["live_trajectories"] == live_after[step], step
    assert steps[3] == []

    # A finished trajectory is not restarted by a late action.
    status, reply = call(
        server,
        "/get_observation",
        batch(
            [("t0", tool("video_cap_brief"), {"series": SERIES, "line": lines[0]}, False, False)]
        ),
    )
    assert status == 200 and reply["dones"] == [True] and reply["valids"] == [False]
    assert "already finished" in reply["observations"][0]
    metrics = call(server, "/metrics")[1]
    assert metrics["freed"]["done"] >= 8 + 8 and metrics["freed"]["finish"] >= 8 * 3
    assert metrics["freed"]["last_step"] >= 8
    assert metrics["live_trajectories"] == 0 and metrics["latency_ms"]["p99"] is not None


def test_a_retried_call_is_answered_again_not_judged_twice(server, env):
    line = sorted(env.labels)[100]
    extra = {"series": SERIES, "line": line, "call_seq": 1}
    body = batch([("retry-1", tool("audio_sim"), extra, False, False)])
    first, again = (
        call(server, "/get_observation", body)[1],
        call(server, "/get_observation", body)[1],
    )
    assert first == again and first["valids"] == [True]
    next_call = batch([("retry-1", tool("audio_sim"), {**extra, "call_seq": 2}, False, False)])
    assert call(server, "/get_observation", next_call)[1]["observations"] == [
        message(env, line, "repeated_call", "audio_sim")
    ]
    assert call(server, "/get_observation", batch([("retry-1", "", extra, True, False)]))[0] == 200


def test_malformed_requests_get_400_with_the_reason(server):
    body = batch([("x", "a", {"series": SERIES, "line": 0}, False, False)])
    status, reply = call(server, "/get_observation", {**body, "finish": [False, True]})
    assert status == 400 and "equal lengths" in reply["error"]
    status, reply = call(
        server, "/get_observation", {k: v for k, v in body.items() if k != "is_last_step"}
    )
    assert status == 400 and reply["error"] == "missing key 'is_last_step'"
    status, reply = call(server, "/get_observation", {**body, "finish": ["no"]})
    assert status == 400 and reply["error"] == "finish[0] must be bool, not str"


def test_idle_trajectories_are_freed(demo_dir, demo_labels):
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(demo_dir),
        "--idle-timeout",
        "0.5",
    ]
    with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, _):
        body = batch(
            [
                (f"idle-{i}", tool("audio_sim"), {"series": SERIES, "line": 0}, False, False)
                for i in range(3)
            ]
        )
        assert call(url, "/get_observation", body)[1]["valids"] == [True] * 3
        assert call(url, "/health")[1]["live_trajectories"] == 3
        deadline = time.monotonic() + 10
        while call(url, "/health")[1]["live_trajectories"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert call(url, "/health")[1]["live_trajectories"] == 0
        assert call(url, "/metrics")[1]["freed"]["idle"] == 3


def test_a_non_loopback_host_needs_a_token(repo_root, demo_labels):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "plugins.speaker_rec.server",
            "--series",
            SERIES,
            "--labels",
            str(demo_labels),
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        cwd=repo_root,
        env={**env, "PYTHONPATH": str(repo_root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without a token: set DRAMAKIT_TOOL_TOKEN" in proc.stderr


def test_a_set_token_is_required(demo_dir, demo_labels):
    args = ["--series", SERIES, "--labels", str(demo_labels), "--data-dir", str(demo_dir)]
    body = batch([("tok", tool("audio_sim"), {"series": SERIES, "line": 0}, False, False)])
    with running_server(args, port=free_port(), env={TOKEN_ENV: "s3cret-0123456789abcdef"}) as (
        url,
        _,
    ):
        assert call(url, "/get_observation", body)[0] == 401
        assert call(url, "/get_observation", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert call(url, "/metrics")[0] == 401
        assert (
            call(
                url, "/get_observation", body, {"Authorization": "Bearer s3cret-0123456789abcdef"}
            )[0]
            == 200
        )
        assert call(url, "/health") == (
            200,
            {"status": "ok", "series": [SERIES], "live_trajectories": 1},
        )


def test_help_names_the_flags(repo_root):
    proc = subprocess.run(
        [sys.executable, "-m", "plugins.speaker_rec.server", "--help"],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    for flag in (
        "--series",
        "--labels",
        "--data-dir",
        "--host",
        "--port",
        "--idle-timeout",
        "--max-body-bytes",
        "--max-turns",
    ):
        assert flag in proc.stdout
