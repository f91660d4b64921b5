"""verl tool adapter: the speaker-recognition tools inside verl's own tool agent loop.

`recipes/rl/tools.yaml` declares one `SpeakerRecTool` per tool name; verl's
`initialize_tools_from_config` builds them and `ToolAgentLoop` calls create / execute / release
around every single tool call. The adapter keeps no judging logic: each call becomes one assistant
turn posted to the tool server (plugins.speaker_rec.server), which holds the trajectory's state and
judges repeated calls as traces and eval do. verl itself answers a call to a tool the line does
not offer (`extra_info.tool_selection`) or with bad arguments, and bounds the turns with
`multi_turn.max_assistant_turns`; those turns never reach the server, and the reward judges them.

The trajectory id must be stable over one rollout but distinct across rollouts and steps, so it is
a fresh uuid stored in `agent_data.extra_fields` on the first call (`agent_data.request_id` is
`det-{priority}` under full determinism and repeats). It lives inside extra_fields["extras"]:
every extra_fields key becomes a column of the rollout batch, and a new top-level key would exist
only on workers whose rollouts called a tool, which breaks `DataProto.concat` (it asserts equal
keys); "extras" is one of verl's default keys, present in every batch.

Server URL: DRAMAKIT_TOOL_SERVER_URL, read at call time (the launcher sets it), else the tool's
`config.server_url`, else http://127.0.0.1:8100. Token: DRAMAKIT_TOOL_TOKEN, sent as a bearer
token when set.
"""

import asyncio
import logging
import os
from typing import Any
from uuid import uuid4

import aiohttp
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from plugins.speaker_rec import toolset
from plugins.speaker_rec.protocol import Action, render_turn
from plugins.speaker_rec.tool_endpoint import DEFAULT_URL, TOKEN_ENV, URL_ENV

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
EXTRAS_KEY = "extras"
ID_KEY = "dramakit_trajectory_id"
SEQ_KEY = "dramakit_call_seq"


def server_url(config: dict) -> str:
    """The tool server's base URL: the environment variable wins over the tool's config."""
    return (os.environ.get(URL_ENV) or config.get("server_url") or DEFAULT_URL).rstrip("/")


def rollout_state(agent_data) -> dict:
    """The adapter's per-rollout slot in `agent_data.extra_fields["extras"]`: the trajectory id
    (created on first use) and the count of calls made so far."""
    extras = agent_data.extra_fields.get(EXTRAS_KEY)
    if extras is None:
        extras = agent_data.extra_fields[EXTRAS_KEY] = {}
    if ID_KEY not in extras:
        extras[ID_KEY] = uuid4().hex
        extras[SEQ_KEY] = 0
    return extras


class SpeakerRecTool(BaseTool):
    """One speaker-recognition tool (audio_sim, char_relation, video_cap_brief or
    video_cap_detailed), answered by the tool server. `create_kwargs` (from the parquet's
    `extra_info.tools_kwargs`) name the series, the line and the protocol."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        super().__init__(config, tool_schema)
        self.timeout = float(config.get("timeout", DEFAULT_TIMEOUT_S))
        self._instances: dict[str, dict] = {}

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        """The schema from `config.name` and `config.language` (zh or en), with the descriptions the
        SR environment offers in SFT and eval, so tools.yaml holds no copy of them."""
        if self.config.get("language", "zh") not in ("zh", "en"):
            raise ValueError(
                f"tool config language must be zh or en, not {self.config['language']!r}"
            )
        return OpenAIFunctionToolSchema.model_validate(
            toolset.tool_schema(self.config.get("name"), self.config.get("language", "zh"))
        )

    async def create(self, instance_id: str | None = None, **kwargs) -> tuple[str, ToolResponse]:
        """Remember the line this call is about; ToolAgentLoop passes `create_kwargs`."""
        instance_id = instance_id or uuid4().hex
        self._instances[instance_id] = dict(kwargs.get("create_kwargs") or {})
        return instance_id, ToolResponse()

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs
    ) -> tuple[ToolResponse, float, dict]:
        """Post this call as one assistant turn of the rollout's trajectory; the tool's output, or
        the rule's message for a call that breaks a rule, goes back to the model."""
        context = self._instances[instance_id]
        agent_data = kwargs.get("agent_data")
        if agent_data is not None:
            state = rollout_state(agent_data)
            trajectory_id = state[ID_KEY]
            state[SEQ_KEY] += 1
            seq = state[SEQ_KEY]
        else:  # called outside an agent loop: a one-call trajectory
            trajectory_id, seq = instance_id, 1
        protocol = context.get("protocol", "hermes")
        # The tools take no arguments: whatever the model passed cannot change the output.
        action = render_turn(Action("tool", self.name), protocol)
        body = {
            "trajectory_ids": [trajectory_id],
            "actions": [action],
            "extra_fields": [
                {
                    "series": context.get("series"),
                    "line": context.get("line"),
                    "protocol": protocol,
                    "call_seq": seq,
                }
            ],
            "finish": [False],
            "is_last_step": [False],
        }
        reply = await self._post(body)
        observation, done, valid = reply["observations"][0], reply["dones"][0], reply["valids"][0]
        return ToolResponse(text=observation), 0.0, {"valid": valid, "done": done}

    async def release(self, instance_id: str, **kwargs) -> None:
        """Forget the call; the trajectory lives on at the server until it ends or idles out."""
        self._instances.pop(instance_id, None)

    async def _post(self, body: dict) -> dict:
        """POST to /get_observation with a timeout and one retry (after Retry-After on a 503). A
        retry is safe: the call number in extra_fields lets the server answer a repeated call
        instead of judging it again as a duplicate."""
        url = f"{server_url(self.config)}/get_observation"
        token = os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        for attempt in (1, 2):
            try:
                # One session per call: ToolAgentLoop may run tools on different event loops, and a
                # session is bound to the loop that made it.
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.post(url, json=body, headers=headers) as response,
                ):
                    if (
                        response.status == 503 and attempt == 1
                    ):  # at its connection limit: wait as told
                        delay = response.headers.get("Retry-After", "1")
                        logger.warning("tool server %s is busy; retrying in %s s", url, delay)
                        await asyncio.sleep(min(10.0, float(delay)) if delay.isdigit() else 1.0)
                        continue
                    if response.status != 200:
                        raise RuntimeError(
                            f"tool server {url} answered {response.status}: "
                            f"{(await response.text())[:500]}"
                        )
                    return await response.json()
            except (TimeoutError, aiohttp.ClientError) as e:
                if attempt == 2:
                    raise RuntimeError(
                        f"tool server {url} unreachable after 2 attempts: {e!r}"
                    ) from e
                logger.warning("tool server %s: %r; retrying once", url, e)
