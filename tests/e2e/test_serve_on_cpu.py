"""tools.sr.serve on CPU: two real `llamafactory-cli api` servers with the tiny model, their pid
files, refusals, stale pid files, and a stop that ends exactly the processes it started."""

import argparse
import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from tools.common.ports import port_in_use
from tools.sr import port_ranges, serve


def free_base_port(offsets: int = 2) -> int:
    """A base port whose next `offsets` ports are free on 127.0.0.1."""
    for base in range(21000, 60000, 97):
        if not any(port_in_use("127.0.0.1", base + i) for i in range(1, offsets + 1)):
            return base
    raise RuntimeError("no free port range")


def models_at(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as reply:
        return [m["id"] for m in json.load(reply)["data"]]


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    """Two servers started by tools.sr.serve; yields (run dir, base port, pid records)."""
    run_dir = tmp_path_factory.mktemp("serve")
    base = free_base_port()
    assert (
        serve.main(
            [
                "start",
                "--ports",
                "1-2",
                "--base-port",
                str(base),
                "--model",
                str(tiny_model),
                "--served-name",
                "tiny",
                "--run-dir",
                str(run_dir),
                "--ready-timeout",
                "240",
            ]
        )
        == 0
    )
    records = {
        port: json.loads(serve.pid_file(run_dir, port).read_text()) for port in (base + 1, base + 2)
    }
    yield run_dir, base, records
    serve.main(["stop", "--run-dir", str(run_dir), "--base-port", str(base)])


@pytest.mark.slow
def test_start_writes_pid_files_and_both_ports_answer(served):
    run_dir, base, records = served
    for port, record in records.items():
        assert record["port"] == port and record["backend"] == "llamafactory"
        assert serve.is_ours(record) and "api" in record["command"]
        assert models_at(port) == ["tiny"]
        assert serve.log_file(run_dir, port).exists()
    assert len({r["pid"] for r in records.values()}) == 2


@pytest.mark.slow
def test_refuses_a_live_pid_file_and_a_port_in_use(served, tiny_model, tmp_path, capsys):
    run_dir, base, _ = served
    assert (
        serve.main(
            [
                "start",
                "--ports",
                "2",
                "--base-port",
                str(base),
                "--model",
                str(tiny_model),
                "--run-dir",
                str(run_dir),
            ]
        )
        == 2
    )
    assert "still running on port" in capsys.readouterr().err
    # The same port from another run dir: no pid file there, but the port is taken.
    assert (
        serve.main(
            [
                "start",
                "--ports",
                "1",
                "--base-port",
                str(base),
                "--model",
                str(tiny_model),
                "--run-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "already in use" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.pid"))


def test_stale_and_reused_pid_files_are_removed_without_killing(tmp_path):
    """A pid file whose process is gone, and one whose pid now belongs to another process (its
    start time differs): stop removes both and signals nothing."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        real_ticks = serve.process_start_ticks(bystander.pid)
        for port, pid, ticks in ((9001, gone.pid, 1), (9002, bystander.pid, real_ticks - 1)):
            serve.pid_file(tmp_path, port).write_text(
                json.dumps({"pid": pid, "start_ticks": ticks})
            )
        serve.pid_file(tmp_path, 9003).write_text("{torn")
        assert serve.main(["stop", "--run-dir", str(tmp_path)]) == 0
        assert not list(tmp_path.glob("*.pid"))
        assert bystander.poll() is None and serve.process_start_ticks(bystander.pid) == real_ticks
    finally:
        bystander.kill()
        bystander.wait()


def test_port_ranges_parse_and_bad_ones_are_named():
    assert port_ranges.parse_ranges("1-3,6,2", "--ports") == [1, 2, 3, 6]
    for bad in ("", "a", "3-1", "1-x"):
        with pytest.raises(ValueError, match="--ports"):
            port_ranges.parse_ranges(bad, "--ports")


def test_commands_per_backend_carry_the_extra_server_args():
    args = argparse.Namespace(
        model="m",
        host="127.0.0.1",
        served_name="sft",
        max_model_len=4096,
        gpu_mem_util=0.8,
        template="qwen3_nothink",
        server_args="--chat-template 'my template.jinja'",
    )
    vllm = serve.server_command("vllm", args, 8003)
    assert vllm[1:3] == ["serve", "m"] and vllm[-2:] == ["--chat-template", "my template.jinja"]
    assert (
        vllm[vllm.index("--port") + 1] == "8003"
        and vllm[vllm.index("--served-model-name") + 1] == "sft"
    )
    assert serve.server_env("vllm", args, 8003, 3)["CUDA_VISIBLE_DEVICES"] == "2"
    cpu = serve.server_command("llamafactory", args, 8001)
    assert (
        cpu[1] == "api"
        and cpu[cpu.index("--template") + 1] == "qwen3_nothink"
        and cpu[-1] == "my template.jinja"
    )
    env = serve.server_env("llamafactory", args, 8001, 1)
    assert (env["API_HOST"], env["API_PORT"], env["API_MODEL_NAME"]) == ("127.0.0.1", "8001", "sft")


@pytest.mark.slow
def test_stop_ends_exactly_those_processes(served):
    """Runs last in this module: stop ends both servers (whole process groups), removes the pid
    files, and leaves an unrelated process alone."""
    run_dir, base, records = served
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert serve.main(["stop", "--run-dir", str(run_dir), "--base-port", str(base)]) == 0
        for port, record in records.items():
            assert not serve.is_ours(record)
            assert not serve.pid_file(run_dir, port).exists()
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
