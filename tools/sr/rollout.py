"""The rollout engine: play speaker-recognition trajectories against an OpenAI-compatible API and
append their records, resumably. Used by traces, eval and the benchmarks.
"""

import asyncio
import logging
import os
import time
from pathlib import Path

from openai import AsyncOpenAI, DefaultAioHttpClient
from openai.types.chat import ChatCompletion
from tqdm import tqdm

from plugins.speaker_rec.correctness import judge_answer
from plugins.speaker_rec.env import SpeakerEnv, Trajectory
from plugins.speaker_rec.protocol import Action, action_from_openai
from tools.common.fileio import AppendOnlyJsonl

logger = logging.getLogger(__name__)


HINT = {
    "zh": "\n\n（提示：正确答案是“{truth}”。请独立推理，不要在思考中提到这条提示。）",
    "en": '\n\n(Hint: the correct answer is "{truth}". Reason it out yourself; do not mention '
    "this hint.)",
}


async def run_api(
    env: SpeakerEnv, client, model: str, index: int, truth: str, *, sampling: dict, hints: bool
) -> dict:
    """One API trajectory (`client` is an AsyncOpenAI), retried once with the truth as a hint
    when the first is wrong. The stored messages never contain the hint."""
    started = time.perf_counter()
    trajectory, messages, requests = await api_attempt(
        env, client, model, index, sampling, hint=None
    )
    hint_used = False
    if (
        hints
        and trajectory.judge.complete
        and not judge_answer(
            env.series.lines[index],
            trajectory.judge.answer,
            trajectory.label.names,
            env.other,
            env.known,
        )["strict"]
    ):
        trajectory, messages, more = await api_attempt(
            env, client, model, index, sampling, hint=truth
        )
        requests += more
        hint_used = True
    return trajectory_record(
        env,
        trajectory,
        messages,
        truth,
        teacher={"kind": "api", "model": model},
        seconds=time.perf_counter() - started,
        requests=requests,
        hint_used=hint_used,
    )


async def api_attempt(
    env: SpeakerEnv, client, model: str, index: int, sampling: dict, hint: str | None
):
    """Play one trajectory for line `index` against an OpenAI-compatible chat API; returns
    (trajectory, stored messages, requests made). `client` is anything with the AsyncOpenAI
    `post(path, cast_to=, body=)` method (tools.sr.evaluate passes a per-port wrapper)."""
    trajectory = env.start(index)
    messages = env.prompt(index)
    sent = [dict(m) for m in messages]
    if hint is not None:
        sent[1]["content"] += HINT["zh" if env.language == "zh" else "en"].format(truth=hint)
    tools = {"tools": env.toolset.openai_schema()} if env.protocol == "hermes" else {}
    requests = 0
    while not trajectory.judge.done:
        # client.post keeps the client's timeout, retries and back-off but skips create()'s
        # per-message type walk, which costs as much CPU as the rest of the request.
        response = await client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body={"model": model, "messages": sent, **sampling, **tools},
        )
        requests += 1
        message = response.choices[0].message
        raw_calls = [c.model_dump() for c in (message.tool_calls or [])]
        action = action_from_openai(message.content, raw_calls, env.protocol)
        step = trajectory.step(action)
        before = len(messages)
        _append_turn(
            messages,
            env,
            message.content or "",
            action,
            step.observation,
            structured=raw_calls[0]["id"] if raw_calls else None,
        )
        sent.extend(messages[before:])
    return trajectory, messages, requests


def _append_turn(
    messages: list,
    env: SpeakerEnv,
    text: str,
    action: Action,
    observation: str,
    structured: str | None,
) -> None:
    """Append one assistant turn and what came back, in the normalised stored form: in hermes a
    valid-looking tool action is a structured call answered by a `tool` message; everything
    else that needs a reply (tags, errors on text turns) is answered by a `user` message."""
    if env.protocol == "hermes" and action.kind == "tool":
        call_id = structured or f"call_{len(messages)}"
        content = f"<think>\n{action.think}\n</think>" if action.think else ""
        messages.append(
            {
                "role": "assistant",
                "content": content,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": action.name, "arguments": "{}"},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": observation})
        return
    messages.append({"role": "assistant", "content": text})
    if observation:
        messages.append({"role": "user", "content": observation})


def trajectory_record(
    env: SpeakerEnv,
    trajectory: Trajectory,
    messages: list,
    truth: str,
    *,
    teacher: dict,
    seconds: float,
    requests: int,
    hint_used: bool,
) -> dict:
    """The JSONL record of one finished trajectory (traces.jsonl; tools.sr.evaluate adds port
    fields)."""
    judge = trajectory.judge
    line = env.series.lines[trajectory.index]
    correct = (
        judge_answer(line, judge.answer, trajectory.label.names, env.other, env.known)
        if judge.complete
        else {"strict": False, "candidate_aware": False}
    )
    return {
        "series": env.series.name,
        "line": trajectory.index,
        "episode": line.episode,
        "sample_type": trajectory.label.sample_type,
        "protocol": env.protocol,
        "language": env.language,
        "teacher": teacher,
        "messages": messages,
        "tools": env.toolset.openai_schema() if env.protocol == "hermes" else None,
        "tool_calls": list(judge.calls),
        "answer": judge.answer,
        "truth": truth,
        "candidates": trajectory.label.names,
        "correct": correct,
        "complete": judge.complete,
        "turns": judge.turns,
        "invalid_turns": judge.invalid_turns,
        "duplicates": judge.duplicates,
        "hint_used": hint_used,
        "timing": {"seconds": round(seconds, 3), "requests": requests},
    }


def record_line(record: dict) -> int:
    """The key of a traces (or eval) record: its line index."""
    line = record["line"]
    if type(line) is not int:
        raise TypeError("integer 'line'")
    return line


def open_output(path: Path, dedupe: bool = False) -> AppendOnlyJsonl:
    """The locked, resumable output of traces and eval (records keyed by line index)."""
    return AppendOnlyJsonl(path, record_line, dedupe=dedupe)


def teacher_client(url: str, timeout: float, retries: int) -> AsyncOpenAI:
    """The async OpenAI client for a teacher; the key comes from OPENAI_API_KEY. Its aiohttp
    transport keeps CPU per request flat as concurrency grows (httpx's pool does not: at 64
    concurrent requests it spent more CPU than the requests themselves)."""
    # The client's transport logs every request at INFO: thousands of lines under the progress bar.
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return AsyncOpenAI(
        base_url=url,
        api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
        timeout=timeout,
        max_retries=retries,
        http_client=DefaultAioHttpClient(),
    )


def line_truth(env: SpeakerEnv, index: int) -> str:
    """The ground truth stored in records: the speaker, or the "other" label when unnamed."""
    return env.series.lines[index].speaker or env.other


async def write_records(
    output: AppendOnlyJsonl,
    todo: list[int],
    solve,
    workers: int,
    *,
    desc: str = "traces",
    stop_on: tuple[type[BaseException], ...] = (),
) -> int:
    """Run the coroutine `solve(i)` over `todo` with `workers` at a time; each finished record is
    appended whole to `output` (an entered `open_output`). Returns how many lines failed (a rerun
    retries them); an
    exception of a type in `stop_on` ends the whole run instead (what was written stays).
    Teacher calls wait on the network, so asyncio beats threads: 64 threads spend more CPU
    fighting over the GIL than on the requests."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in todo:
        queue.put_nowait(i)
    correct = failed = 0
    with tqdm(total=len(todo), desc=desc, unit="line", mininterval=1.0) as bar:

        async def worker() -> None:
            nonlocal correct, failed
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    record = await solve(i)
                except stop_on:
                    raise
                except (
                    Exception
                ) as e:  # one line's failure must not stop the run; a rerun retries it
                    failed += 1
                    logger.warning("line %d failed, will be retried on rerun: %s", i, e)
                else:
                    output.append(record)
                    correct += record["correct"]["strict"]
                bar.update(1)
                bar.set_postfix(
                    acc=f"{correct / max(1, bar.n - failed):.3f}", failed=failed, refresh=False
                )

        await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(todo))))))
    if failed:
        logger.warning("%d lines failed; rerun the same command to retry them", failed)
    return failed
