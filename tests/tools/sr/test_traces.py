"""Teacher trajectories: the oracle, a real OpenAI-compatible server (wire format), scripted
teacher behaviours, hints that never reach the stored record, and resume after SIGKILL."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import Action
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.dev.scripted_openai import Reply, ScriptedOpenAI, default_policy
from tools.sr import prepare, rollout, traces

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"


@pytest.fixture(scope="module")
def labels_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepare") / "labels.json"
    assert (
        prepare.main(
            ["--series", SERIES, "--data-dir", str(DATA_DIR), "--out", str(out), "--quiet"]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def demo():
    return load_series(SERIES, DATA_DIR)


def run_traces(labels_path: Path, out: Path, *extra: str) -> list[dict]:
    argv = [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(labels_path),
        "--out",
        str(out),
        *extra,
    ]
    assert traces.main(argv) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def replay(env: SpeakerEnv, record: dict) -> list:
    """Judge the stored assistant turns again through a fresh trajectory."""
    trajectory = env.start(record["line"])
    steps = []
    for message in record["messages"]:
        if message["role"] == "assistant":
            if message.get("tool_calls"):
                think = re.sub(r"</?think>", "", message["content"]).strip()
                steps.append(
                    trajectory.step(
                        Action("tool", message["tool_calls"][0]["function"]["name"], think)
                    )
                )
            else:
                steps.append(trajectory.step_text(message["content"]))
    return steps


@pytest.mark.parametrize("protocol", ["hermes", "tags"])
def test_oracle_trajectories_are_valid_and_right(labels_path, demo, tmp_path, protocol):
    records = run_traces(
        labels_path,
        tmp_path / "t.jsonl",
        "--teacher",
        "oracle",
        "--protocol",
        protocol,
        "--limit",
        "25",
    )
    labels = read_labels(labels_path, demo)
    env = SpeakerEnv(demo, labels.lines, protocol=protocol, known=labels.characters)
    assert len(records) == 25 and len({r["line"] for r in records}) == 25
    for record in records:
        assert record["teacher"]["kind"] == "oracle" and record["complete"]
        assert record["tool_calls"][0] == "audio_sim" and record["invalid_turns"] == 0
        assert record["correct"]["candidate_aware"]
        assert record["messages"][:2] == env.prompt(record["line"])
        steps = replay(env, record)
        assert all(step.valid for step in steps) and steps[-1].done
        if protocol == "tags":
            assert all(m["role"] in ("system", "user", "assistant") for m in record["messages"])
            assert record["tools"] is None
        else:
            assert [m["role"] for m in record["messages"]].count("tool") == len(
                record["tool_calls"]
            )


def test_selection_follows_rates_and_seed(labels_path, demo, tmp_path):
    labels = read_labels(labels_path, demo)
    confident = [i for i, label in labels.lines.items() if label.sample_type == "confident"]
    records = run_traces(
        labels_path,
        tmp_path / "t.jsonl",
        "--teacher",
        "oracle",
        "--select",
        "confident=0.5",
        "--seed",
        "3",
    )
    chosen = {r["line"] for r in records}
    assert chosen <= set(confident) and 0.3 < len(chosen) / len(confident) < 0.7
    again = run_traces(
        labels_path,
        tmp_path / "u.jsonl",
        "--teacher",
        "oracle",
        "--select",
        "confident=0.5",
        "--seed",
        "3",
    )
    assert {r["line"] for r in again} == chosen


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["hermes", "tags"])
def test_wire_format_against_a_real_llamafactory_server(
    api_server, labels_path, tmp_path, protocol
):
    """The tiny model writes noise, so every turn is invalid: the loop must send each error back
    and stop after max_turns, over the real OpenAI-compatible API."""
    records = run_traces(
        labels_path,
        tmp_path / "t.jsonl",
        "--teacher-url",
        api_server,
        "--teacher-model",
        "tiny-qwen3",
        "--protocol",
        protocol,
        "--limit",
        "2",
        "--max-turns",
        "2",
        "--max-tokens",
        "8",
        "--workers",
        "2",
        "--no-hint-retry",
    )
    assert len(records) == 2
    for record in records:
        assert record["teacher"] == {"kind": "api", "model": "tiny-qwen3"}
        assert record["turns"] == 2 and record["timing"]["requests"] == 2
        roles = [m["role"] for m in record["messages"]]
        assert roles[:2] == ["system", "user"] and roles.count("assistant") == 2
        if not record["complete"]:
            assert record["correct"] == {"strict": False, "candidate_aware": False}


def turn_number(request: dict) -> int:
    return sum(m["role"] == "assistant" for m in request["messages"])


def scripted(first_turn: Reply, first_attempt_only: bool = False):
    """A policy whose first turn is `first_turn` (on every attempt, or only the first), then
    audio_sim, then the last candidate."""

    def policy(request, attempt):
        n = turn_number(request)
        if n == 0 and (attempt == 0 or not first_attempt_only):
            return first_turn
        if not any(m["role"] == "tool" for m in request["messages"]):
            return Reply(content="<think>听</think>", tool_calls=["audio_sim"])
        return Reply(content="<think>都不像</think><answer>其他</answer>")

    return policy


BEHAVIOURS = {
    # name: (first turn, on the first attempt only, expected invalid turns, expected duplicates)
    "malformed turn": (Reply(content="我觉得是林晚"), False, 1, 0),
    "answer outside candidates": (Reply(content="<answer>赵无名</answer>"), False, 1, 0),
    "429 then success": (Reply(status=429), True, 0, 0),
    "500 then success": (Reply(status=500), True, 0, 0),
    "timeout then success": (Reply(delay=3.0), True, 0, 0),
    "dropped connection then success": (Reply(drop=True), True, 0, 0),
}


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_scripted_teacher_behaviours(labels_path, tmp_path, name):
    first, first_only, invalid_turns, duplicates = BEHAVIOURS[name]
    with ScriptedOpenAI(scripted(first, first_only)) as server:
        records = run_traces(
            labels_path,
            tmp_path / "t.jsonl",
            "--teacher-url",
            server.url,
            "--teacher-model",
            "m",
            "--limit",
            "1",
            "--timeout",
            "1",
            "--retries",
            "3",
            "--no-hint-retry",
        )
    (record,) = records
    assert record["complete"] and record["answer"] == "其他"
    assert (record["invalid_turns"], record["duplicates"]) == (invalid_turns, duplicates)
    assert record["timing"]["requests"] == record["turns"]
    assert len(server.requests) == record["turns"] + (1 if first_only else 0)
    if invalid_turns:
        error = record["messages"][3]
        assert error["role"] == "user" and error["content"] in (
            "格式错误：每轮必须调用一个工具或给出一个答案。",
            "回答之前必须先调用 audio_sim。",
        )


def test_tool_called_twice_is_counted_and_answered_with_an_error(labels_path, tmp_path):
    def policy(request, attempt):
        if turn_number(request) < 2:
            return Reply(content="<think>听</think>", tool_calls=["audio_sim"])
        return Reply(content="<answer>其他</answer>")

    with ScriptedOpenAI(policy) as server:
        (record,) = run_traces(
            labels_path,
            tmp_path / "t.jsonl",
            "--teacher-url",
            server.url,
            "--teacher-model",
            "m",
            "--limit",
            "1",
            "--no-hint-retry",
        )
    assert (record["duplicates"], record["invalid_turns"], record["tool_calls"]) == (
        1,
        1,
        ["audio_sim"],
    )
    second_reply = [m for m in record["messages"] if m["role"] == "tool"][1]
    assert second_reply["content"] == "工具 audio_sim 已经调用过，不能重复调用。"


def test_hint_retry_never_stores_the_hint(labels_path, demo):
    labels = read_labels(labels_path, demo)
    named = next(
        i
        for i, label in sorted(labels.lines.items())
        if demo.lines[i].speaker in label.names[:-1] and demo.lines[i].kind.value == "named"
    )

    def policy(request, attempt):
        hint = re.search(r"正确答案是“(.+?)”", request["messages"][1]["content"])
        if not any(m["role"] == "tool" for m in request["messages"]):
            return Reply(content="<think>听</think>", tool_calls=["audio_sim"])
        return Reply(content=f"<answer>{hint.group(1) if hint else '其他'}</answer>")

    env = SpeakerEnv(demo, labels.lines, known=labels.characters)
    with ScriptedOpenAI(policy) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="x", max_retries=0)
        record = asyncio.run(
            rollout.run_api(
                env, client, "m", named, demo.lines[named].speaker, sampling={}, hints=True
            )
        )
    assert (
        record["hint_used"]
        and record["correct"]["strict"]
        and record["answer"] == demo.lines[named].speaker
    )
    assert not any("提示" in (m.get("content") or "") for m in record["messages"])
    assert record["messages"][1] == env.prompt(named)[1]
    assert any(
        "提示" in m["content"]
        for r in server.requests
        for m in r["messages"]
        if m["role"] == "user"
    )


def test_torn_last_record_is_cut_and_redone(labels_path, tmp_path):
    out = tmp_path / "t.jsonl"
    records = run_traces(labels_path, out, "--teacher", "oracle", "--limit", "5")
    text = out.read_text(encoding="utf-8")
    out.write_text(
        text[: len(text) - 40], encoding="utf-8"
    )  # a crash in the middle of the last write
    again = run_traces(labels_path, out, "--teacher", "oracle", "--limit", "5")
    assert sorted(r["line"] for r in again) == sorted(r["line"] for r in records)
    assert len(again) == 5


def canonical(record: dict) -> str:
    """A record without what legitimately differs between runs (timing, call ids)."""
    record = {k: v for k, v in record.items() if k != "timing"}
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    return re.sub(r"call_\d+", "call", text)


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_records_of_an_uninterrupted_run(labels_path, tmp_path):
    with ScriptedOpenAI(latency=0.05) as server:
        common = [
            "--series",
            SERIES,
            "--data-dir",
            str(DATA_DIR),
            "--labels",
            str(labels_path),
            "--teacher-url",
            server.url,
            "--teacher-model",
            "m",
            "--limit",
            "40",
            "--workers",
            "4",
            "--no-hint-retry",
        ]
        reference = run_traces(labels_path, tmp_path / "ref.jsonl", *common[6:])
        out = tmp_path / "killed.jsonl"
        cmd = [sys.executable, "-m", "tools.sr.traces", *common, "--out", str(out)]
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 8):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = out.read_text(encoding="utf-8").count("\n")
        assert 8 <= partial < 40, "the kill must land mid-run"
        resumed = run_traces(labels_path, out, *common[6:])
    assert len(resumed) == 40 == len({r["line"] for r in resumed})
    assert sorted(map(canonical, resumed)) == sorted(map(canonical, reference))


def test_bad_arguments_exit_with_a_message(labels_path, tmp_path, capsys):
    with pytest.raises(SystemExit):
        traces.main(
            ["--series", SERIES, "--labels", str(labels_path), "--out", str(tmp_path / "t.jsonl")]
        )
    assert "--teacher-url" in capsys.readouterr().err
    assert (
        traces.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(labels_path),
                "--out",
                str(tmp_path / "t.jsonl"),
                "--teacher",
                "oracle",
                "--select",
                "sure=1",
            ]
        )
        == 2
    )
    assert "--select: unknown name 'sure'" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


def test_failed_lines_exit_1_and_are_retried_by_the_next_run(labels_path, tmp_path):
    out = tmp_path / "t.jsonl"
    common = [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(labels_path),
        "--out",
        str(out),
        "--teacher-model",
        "m",
        "--limit",
        "3",
        "--retries",
        "0",
        "--no-hint-retry",
    ]
    with ScriptedOpenAI(lambda request, attempt: Reply(status=500)) as broken:
        assert traces.main([*common, "--teacher-url", broken.url]) == 1
    assert not out.exists() or out.read_text() == ""
    with ScriptedOpenAI() as healthy:
        assert traces.main([*common, "--teacher-url", healthy.url]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def test_two_runs_on_one_output_the_second_exits_2_naming_the_first(labels_path, tmp_path):
    out = tmp_path / "t.jsonl"
    second_done = threading.Event()

    def held(
        request: dict, attempt: int
    ) -> Reply:  # the first run waits until the second has exited
        second_done.wait(timeout=120)
        return default_policy(request, attempt)

    with ScriptedOpenAI(held) as server:
        cmd = [
            sys.executable,
            "-m",
            "tools.sr.traces",
            "--series",
            SERIES,
            "--data-dir",
            str(DATA_DIR),
            "--labels",
            str(labels_path),
            "--teacher-url",
            server.url,
            "--teacher-model",
            "m",
            "--limit",
            "4",
            "--workers",
            "2",
            "--no-hint-retry",
            "--out",
            str(out),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        first = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 120
            while (
                time.monotonic() < deadline and not server.requests
            ):  # the first holds the lock by now
                time.sleep(0.02)
            second = subprocess.run(
                cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
            )
        finally:
            second_done.set()
        assert first.wait(timeout=120) == 0
    assert second.returncode == 2
    assert f"is being written by process {first.pid}" in second.stderr
    lines = [json.loads(line)["line"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4 == len(set(lines))


def test_duplicated_records_are_refused_with_the_count_or_deduped(labels_path, tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    records = run_traces(labels_path, out, "--teacher", "oracle", "--limit", "4")
    text = out.read_text(encoding="utf-8")
    out.write_text(text + "".join(text.splitlines(keepends=True)[:2]), encoding="utf-8")
    argv = [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(labels_path),
        "--out",
        str(out),
        "--teacher",
        "oracle",
        "--limit",
        "6",
    ]
    assert traces.main(argv) == 2
    assert "2 duplicated records (first at" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8").count("\n") == 6  # left as it was
    again = run_traces(labels_path, out, *argv[6:], "--dedupe")
    assert len(again) == 6 == len({r["line"] for r in again})
    assert again[:4] == records
