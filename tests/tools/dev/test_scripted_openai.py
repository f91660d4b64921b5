"""The scripted stand-in teacher: its default policy answers in the prompt's language, and its
command serves over HTTP until stopped."""

import json
import signal
import subprocess
import sys
import urllib.request

from repo_paths import REPO_ROOT
from tools.common.ports import free_port
from tools.common.process import wait_ready
from tools.dev.scripted_openai import default_policy


def test_default_policy_calls_audio_sim_then_answers_other_in_the_prompt_language():
    zh = {
        "messages": [
            {"role": "system", "content": "你是说话人识别助手"},
            {"role": "user", "content": "谁？"},
        ]
    }
    en = {
        "messages": [
            {"role": "system", "content": "You name the speaker"},
            {"role": "user", "content": "Who?"},
        ]
    }
    assert default_policy(zh, 0).tool_calls == ["audio_sim"]
    tool_reply = {"role": "tool", "content": "1. A: 0.9"}
    assert default_policy({"messages": zh["messages"] + [tool_reply]}, 0).content.endswith(
        "<answer>其他</answer>"
    )
    assert default_policy({"messages": en["messages"] + [tool_reply]}, 0).content.endswith(
        "<answer>other</answer>"
    )


def test_command_serves_chat_completions_until_interrupted():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.dev.scripted_openai", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1", 30, proc)
        body = json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "Who?"}]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            body,
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            message = json.load(reply)["choices"][0]["message"]
        assert message["tool_calls"][0]["function"]["name"] == "audio_sim"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_command_refuses_a_non_loopback_host_without_the_flag(capsys):
    from tools.dev import scripted_openai

    assert scripted_openai.main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err
