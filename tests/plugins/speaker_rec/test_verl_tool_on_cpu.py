"""The verl adapter against the real tool server, built the way verl builds it.

recipes/rl/tools.yaml goes through verl's own `initialize_tools_from_config`; each call follows
ToolAgentLoop's lifecycle (create with the parquet's create_kwargs, execute with `agent_data=`,
release) with verl's own AgentData, and once through ToolAgentLoop's real `_call_tool`.
"""

import asyncio
import json
from types import SimpleNamespace

import pytest

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.protocol import TOOL_NAMES
from plugins.speaker_rec.series import load_series
from plugins.speaker_rec.server import TOKEN_ENV
from plugins.speaker_rec.toolset import Toolset
from plugins.speaker_rec.verl_tool import EXTRAS_KEY, ID_KEY, URL_ENV
from tools.common.ports import free_port
from tools.common.process import running_server

pytestmark = pytest.mark.slow

SERIES = "chun_jiang"


@pytest.fixture(scope="module")
def env(repo_root, demo_labels) -> SpeakerEnv:
    series = load_series(SERIES, repo_root / "data" / "demo")
    labels = read_labels(demo_labels, series)
    return SpeakerEnv(series, labels.lines, known=labels.characters)


@pytest.fixture(scope="module")
def server_url(repo_root, demo_labels):
    args = [
        "--series",
        SERIES,
        "--labels",
        str(demo_labels),
        "--data-dir",
        str(repo_root / "data" / "demo"),
    ]
    with running_server(args, port=free_port(), env={TOKEN_ENV: ""}) as (url, _):
        yield url


@pytest.fixture
def tools(repo_root, server_url, monkeypatch):
    """The four tools as verl builds them; the URL variable set after they are built, as the
    adapter reads it at call time."""
    from verl.tools.tool_registry import initialize_tools_from_config

    monkeypatch.chdir(repo_root)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    built = {tool.name: tool for tool in initialize_tools_from_config("recipes/rl/tools.yaml")}
    monkeypatch.setenv(URL_ENV, server_url)
    return built


def agent_data(line: int, request_id: str = "det-0"):
    """verl's own AgentData for one rollout of `line`, with the parquet's tools_kwargs."""
    from verl.experimental.agent_loop.tool_agent_loop import AgentData

    create = {"series": SERIES, "line": line, "protocol": "hermes"}
    return AgentData(
        messages=[],
        image_data=None,
        video_data=None,
        audio_data=None,
        mm_processor_kwargs=None,
        metrics={},
        request_id=request_id,
        tools_kwargs={name: {"create_kwargs": create} for name in TOOL_NAMES},
    )


async def call(tool, data) -> str:
    """One tool call with ToolAgentLoop's lifecycle: create, execute with agent_data, release."""
    instance_id, _ = await tool.create(create_kwargs=data.tools_kwargs[tool.name]["create_kwargs"])
    try:
        response, reward, _ = await tool.execute(instance_id, {}, agent_data=data)
    finally:
        await tool.release(instance_id)
    assert reward == 0.0
    return response.text


def test_tools_yaml_declares_every_tool_with_the_toolset_schema(tools, env):
    assert list(tools) == list(TOOL_NAMES)
    expected = {entry["function"]["name"]: entry for entry in env.toolset.openai_schema()}
    for name, tool in tools.items():
        schema = tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True)
        assert schema == expected[name], name
        assert tool.config == {"type": "native", "name": name, "language": "zh"}


def test_english_tools_yaml_matches_the_english_toolset(repo_root, env, monkeypatch):
    from verl.tools.tool_registry import initialize_tools_from_config

    monkeypatch.chdir(repo_root)
    built = initialize_tools_from_config("recipes/rl/tools_en.yaml")
    english = {
        entry["function"]["name"]: entry for entry in Toolset(env.series, "en").openai_schema()
    }
    assert [tool.name for tool in built] == list(TOOL_NAMES)
    for tool in built:
        assert (
            tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True) == english[tool.name]
        )


def test_a_tool_config_naming_no_known_tool_is_refused():
    from plugins.speaker_rec.verl_tool import SpeakerRecTool

    with pytest.raises(ValueError, match="unknown tool 'audio'"):
        SpeakerRecTool({"type": "native", "name": "audio"})
    with pytest.raises(ValueError, match="language must be zh or en"):
        SpeakerRecTool({"type": "native", "name": "audio_sim", "language": "fr"})


def test_calls_return_the_tool_output_and_duplicates_are_refused(tools, env):
    line = sorted(env.labels)[10]
    label = env.labels[line]
    rollout, other_rollout = agent_data(line), agent_data(line)

    async def scenario():
        return [
            await call(tools["audio_sim"], rollout),
            await call(tools["char_relation"], rollout),
            await call(tools["audio_sim"], rollout),
            await call(tools["audio_sim"], other_rollout),
        ]

    outputs = asyncio.run(scenario())
    assert outputs[0] == env.toolset.run("audio_sim", line, label)
    assert outputs[1] == env.toolset.run("char_relation", line, label)
    assert outputs[2] == env.start(line).judge.message("repeated_call", "audio_sim", env.language)
    assert outputs[3] == outputs[0], "a second rollout of the same line is its own trajectory"
    ids = rollout.extra_fields[EXTRAS_KEY][ID_KEY], other_rollout.extra_fields[EXTRAS_KEY][ID_KEY]
    assert ids[0] != ids[1] and len(ids[0]) == 32, (
        "a fresh uuid per rollout, not the repeating request_id"
    )
    assert set(rollout.extra_fields) == {EXTRAS_KEY}, "no new top-level batch column"


def test_through_tool_agent_loops_own_call_tool(tools, env):
    """ToolAgentLoop._call_tool on our tool: only the loop object's settings are stand-ins."""
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.experimental.agent_loop.tool_parser import FunctionCall

    line = sorted(env.labels)[20]
    data = agent_data(line)
    loop_settings = SimpleNamespace(
        tools=tools, max_tool_response_length=100_000, tool_response_truncate_side="middle"
    )

    async def scenario():
        calls = [
            FunctionCall(name="video_cap_brief", arguments=json.dumps({})),
            FunctionCall(name="video_cap_brief", arguments=json.dumps({})),
        ]
        return [
            await ToolAgentLoop._call_tool(loop_settings, c, data.tools_kwargs, data) for c in calls
        ]

    (first, *_), (second, *_) = asyncio.run(scenario())
    assert first.text == env.toolset.run("video_cap_brief", line, env.labels[line])
    assert second.text == env.start(line).judge.message(
        "repeated_call", "video_cap_brief", env.language
    )


def test_an_unreachable_server_is_a_clear_error_after_one_retry(tools, env, monkeypatch):
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeError, match="unreachable after 2 attempts"):
        asyncio.run(call(tools["audio_sim"], agent_data(min(env.labels))))
