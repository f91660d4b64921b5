"""Prompts and tool outputs for one fixed demo line, pinned: a change to them is deliberate.

After an intended change, rewrite the golden file with
    DRAMAKIT_UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/plugins/speaker_rec/test_golden_prompt.py
and review its diff like code.
"""

import json
import os

import pytest

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.sr import prepare

GOLDEN = REPO_ROOT / "tests" / "assets" / "golden" / "chun_jiang_line_100.json"
LINE = 100  # episode 2, mid-scene: every tool has data and the context crosses an episode boundary


@pytest.fixture(scope="module")
def env_inputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden") / "labels.json"
    assert (
        prepare.main(
            [
                "--series",
                "chun_jiang",
                "--data-dir",
                str(REPO_ROOT / "data" / "demo"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    series = load_series("chun_jiang", REPO_ROOT / "data" / "demo")
    return series, read_labels(out, series)


def render(series, labels) -> dict:
    rendered = {}
    for protocol in ("hermes", "tags"):
        env = SpeakerEnv(series, labels.lines, protocol=protocol, known=labels.characters)
        rendered[protocol] = {"messages": env.prompt(LINE), "tools": env.toolset.openai_schema()}
    env = SpeakerEnv(series, labels.lines, known=labels.characters)
    rendered["tool_outputs"] = {
        name: env.toolset.run(name, LINE, labels.lines[LINE]) for name in env.toolset.available
    }
    return rendered


def test_prompt_and_tool_outputs_match_golden(env_inputs):
    rendered = render(*env_inputs)
    if os.environ.get("DRAMAKIT_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(
            json.dumps(rendered, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    assert rendered == json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(rendered["tool_outputs"]) == {
        "audio_sim",
        "char_relation",
        "video_cap_brief",
        "video_cap_detailed",
    }
    assert "—— 第2集 ——" in rendered["hermes"]["messages"][1]["content"]
