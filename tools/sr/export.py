"""Export speaker-recognition data for training: `python -m tools.sr.export sft|rl`.

`rl` writes verl parquet from the split's RL parts (tools/sr/export_rl.py; `make rl-data`). `sft`
(`make sft-data SERIES=...`) reads traces.jsonl and a split manifest and writes, for one split
part (default sft), complete and strictly correct trajectories as LLaMA-Factory SFT data:

- alpaca: one record per valid assistant turn (`system`, `instruction`, `output`, `history`, and
  `tools` for hermes); each turn is trained once, the earlier turns are history. Pair with
  `mask_history: true`.
- sharegpt: one record per trajectory, `conversations` of human / gpt / function_call /
  observation turns, `system` and, for hermes, `tools` (the OpenAI schema as a JSON string).

Assistant turns are re-rendered from their parsed action (plugins.speaker_rec.protocol), and
hermes tool results are wrapped in <tool_response> as the Qwen3 template does, so the text trained
on is exactly what the model sees and produces when served. Every trajectory is replayed through
the rules; invalid turns and the error replies to them are dropped (unless --keep-invalid).
Records LLaMA-Factory would silently skip (role order, turn parity) are counted and excluded here.
The dataset is registered in the out dir's own dataset_info.json with a report next to it.
"""

import argparse
import collections
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from plugins.speaker_rec.protocol import (
    PROTOCOLS,
    TOOL_NAMES,
    action_from_openai,
    parse_turn,
    render_turn,
)
from plugins.speaker_rec.rules import Judge, RuleConfig
from tools.common.fileio import Report, duplicate_keys, json_objects
from tools.common.llamafactory_dataset import (
    FORMATS,
    ConversionError,
    DatasetOutput,
    dataset_name_arg,
    publish,
)
from tools.sr import export_rl
from tools.sr.split_manifest import PARTS, part_contains, read_split

logger = logging.getLogger(__name__)

DEFAULT_TOKENIZER = Path(".cache/models/tiny-qwen3")
PERCENTILES = (50, 90, 99, 100)
# What the qwen3 templates put around a tool's output in the user turn that carries it.
TOOL_RESPONSE = "<tool_response>\n{content}\n</tool_response>"
# Extra dataset_info columns per format (the basic ones come from
# tools.common.llamafactory_dataset).
COLUMNS = {"alpaca": {"history": "history", "tools": "tools"}, "sharegpt": {"tools": "tools"}}
REQUIRED = {
    "line": int,
    "protocol": str,
    "messages": list,
    "complete": bool,
    "correct": dict,
    "candidates": list,
    "invalid_turns": int,
}


class Rejected(Exception):
    """A trajectory that cannot be exported; the message is the drop reason."""


def turns_of(record: dict, keep_invalid: bool) -> tuple[str, str, list[tuple[str, str, bool]]]:
    """(system, user prompt, [(assistant text, reply text, is tool reply)]) of a trajectory, its
    assistant turns replayed through the rules; the last turn is the valid answer (reply ""), or
    for an incomplete trajectory the last assistant turn (its reply cut off)."""
    protocol, messages = record["protocol"], record["messages"]
    if not record["complete"] and messages and messages[-1].get("role") != "assistant":
        messages = messages[:-1]
    if protocol not in PROTOCOLS:
        raise Rejected("unknown protocol")
    if len(messages) < 3 or [m.get("role") for m in messages[:2]] != ["system", "user"]:
        raise Rejected("bad role order")
    if messages[-1].get("role") != "assistant":
        raise Rejected("ends without an assistant turn")
    tools = tuple(t["function"]["name"] for t in record.get("tools") or []) or TOOL_NAMES
    judge = Judge(list(record["candidates"]), tools, RuleConfig(max_turns=len(messages)))
    turns = []
    rest = messages[2:]
    for i in range(0, len(rest), 2):
        assistant, reply = rest[i], rest[i + 1] if i + 1 < len(rest) else None
        if assistant.get("role") != "assistant" or (
            reply and reply.get("role") not in ("tool", "user")
        ):
            raise Rejected("bad role order")
        action = action_from_openai(assistant.get("content"), assistant.get("tool_calls"), protocol)
        verdict = judge.judge(action)
        if verdict.ok:
            text = render_turn(action, protocol)
        elif keep_invalid:
            text = assistant.get("content") or ""
        else:
            continue
        reply_text = "" if reply is None else str(reply.get("content", ""))
        turns.append((text, reply_text, reply is not None and reply["role"] == "tool"))
    if record["complete"] and (not judge.complete or judge.answer != record.get("answer")):
        raise Rejected("no valid answer turn")
    if not turns:
        raise Rejected("no valid assistant turn")
    if judge.invalid_turns != record["invalid_turns"]:
        raise Rejected("replay disagrees with the record")
    return messages[0]["content"], messages[1]["content"], turns


def _observation(text: str, is_tool: bool) -> str:
    return TOOL_RESPONSE.format(content=text) if is_tool else text


def alpaca_records(record: dict, system: str, prompt: str, turns: list) -> list[dict]:
    """One alpaca record per assistant turn; history holds the earlier (input, turn) pairs."""
    tools = json.dumps(record["tools"], ensure_ascii=False) if record.get("tools") else ""
    records, history, query = [], [], prompt
    for text, reply, is_tool in turns:
        records.append(
            {
                "system": system,
                "instruction": query,
                "input": "",
                "output": text,
                "history": [list(pair) for pair in history],
                "tools": tools,
            }
        )
        history.append((query, text))
        query = _observation(reply, is_tool)
    return records


def sharegpt_record(record: dict, system: str, prompt: str, turns: list) -> dict:
    """One sharegpt record per trajectory; hermes tool calls become function_call turns whose
    value is the turn's think block followed by the JSON {"name", "arguments"} LLaMA-Factory
    renders into <tool_call> with the qwen tool format."""
    protocol = record["protocol"]
    conversations = [{"from": "human", "value": prompt}]
    for text, reply, is_tool in turns:
        action = parse_turn(text, protocol)
        if protocol == "hermes" and action.kind == "tool":
            call = json.dumps({"name": action.name, "arguments": {}}, ensure_ascii=False)
            conversations.append(
                {"from": "function_call", "value": f"<think>\n{action.think}\n</think>\n\n{call}"}
            )
        else:
            conversations.append({"from": "gpt", "value": text})
        if reply:
            conversations.append({"from": "observation" if is_tool else "human", "value": reply})
    tools = json.dumps(record["tools"], ensure_ascii=False) if record.get("tools") else ""
    return {"system": system, "conversations": conversations, "tools": tools}


def check_row(fmt: str, row: dict) -> str | None:
    """The reason LLaMA-Factory would skip `row` (role order, turn parity), or None."""
    if fmt == "alpaca":
        pairs_ok = all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) and x for x in p)
            for p in row["history"]
        )
        return None if pairs_ok and row["instruction"] and row["output"] else "bad turn pairs"
    roles = [turn["from"] for turn in row["conversations"]]
    if len(roles) % 2:
        return "odd number of turns"
    for i, role in enumerate(roles):
        if role not in (("human", "observation"), ("gpt", "function_call"))[i % 2]:
            return "bad role order"
    return None


def _check_fields(record: dict) -> None:
    for key, kind in REQUIRED.items():
        if not isinstance(record.get(key), kind):
            raise Rejected(f"malformed record (no {key})")
    if not all(isinstance(m, dict) for m in record["messages"]):
        raise Rejected("malformed record (messages)")


def convert(
    traces: Path,
    manifest: dict,
    part: str,
    fmt: str,
    *,
    keep_invalid: bool = False,
    include_incorrect: bool = False,
    include_incomplete: bool = False,
) -> tuple[list[dict], Report]:
    """The rows of one split part of a traces file in `fmt`, and the report (counts per
    trajectory: in, out, dropped per reason; rows and tool usage in `extra`)."""
    report = Report(source=str(traces))
    rows, tool_calls, calls_per_trajectory = [], collections.Counter(), collections.Counter()
    for _, where, record in tqdm(
        json_objects(traces, report), desc="export", unit="trajectory", mininterval=1.0
    ):
        try:
            _check_fields(record)
            if not part_contains(manifest, part, record["line"]):
                raise Rejected(f"not in split part {part}")
            if not record["complete"] and not include_incomplete:
                raise Rejected("incomplete")
            if not record["correct"].get("strict") and not include_incorrect:
                raise Rejected("incorrect (strict)")
            system, prompt, turns = turns_of(record, keep_invalid)
            new = (
                alpaca_records(record, system, prompt, turns)
                if fmt == "alpaca"
                else [sharegpt_record(record, system, prompt, turns)]
            )
            for row in new:
                reason = check_row(fmt, row)
                if reason:
                    raise Rejected(reason)
        except Rejected as e:
            report.drop(str(e), where)
            continue
        report.keep()
        rows.extend(new)
        actions = [parse_turn(text, record["protocol"]) for text, _, _ in turns]
        names = [a.name for a in actions if a.kind == "tool"]
        tool_calls.update(names)
        calls_per_trajectory[len(names)] += 1
    report.extra.update(
        {
            "part": part,
            "format": fmt,
            "rows_out": len(rows),
            "tool_usage": dict(sorted(tool_calls.items())),
            "tool_calls_per_trajectory": {
                str(k): v for k, v in sorted(calls_per_trajectory.items())
            },
        }
    )
    return rows, report


def row_text(fmt: str, row: dict) -> str:
    """All text of a row (system, tools, every turn), for length statistics."""
    if fmt == "alpaca":
        turns = [x for pair in row["history"] for x in pair] + [row["instruction"], row["output"]]
    else:
        turns = [turn["value"] for turn in row["conversations"]]
    return "\n".join([row["system"], row.get("tools", ""), *turns])


def token_percentiles(rows: list[dict], fmt: str, tokenizer_dir: Path) -> dict:
    """Token-length percentiles of the rows (text only, no chat-template tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    lengths = sorted(
        len(ids)
        for ids in tokenizer([row_text(fmt, r) for r in rows], add_special_tokens=False)[
            "input_ids"
        ]
    )
    if not lengths:
        return {}
    return {
        f"p{q}": lengths[min(len(lengths) - 1, (q * len(lengths)) // 100)] for q in PERCENTILES
    } | {"tokenizer": str(tokenizer_dir)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.export",
        description="Export speaker-recognition trajectories for training.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sft = commands.add_parser(
        "sft",
        help="LLaMA-Factory SFT dataset (alpaca or sharegpt) from traces.jsonl",
        description="Write one split part of traces.jsonl as a LLaMA-Factory dataset, "
        "registered in OUT_DIR/dataset_info.json, with NAME.report.json next to it.",
    )
    sft.add_argument(
        "--traces", required=True, type=Path, help="traces.jsonl written by tools.sr.traces"
    )
    sft.add_argument(
        "--split", required=True, type=Path, help="split manifest written by tools.sr.split"
    )
    sft.add_argument(
        "--part", choices=PARTS, default="sft", help="split part to export (default: %(default)s)"
    )
    sft.add_argument("--format", choices=FORMATS, default="alpaca")
    sft.add_argument("--out-dir", required=True, type=Path)
    sft.add_argument(
        "--name",
        required=True,
        type=dataset_name_arg,
        help="dataset name (an identifier): NAME.json, dataset_info key",
    )
    sft.add_argument(
        "--keep-invalid", action="store_true", help="keep invalid turns and the errors they got"
    )
    sft.add_argument(
        "--include-incorrect", action="store_true", help="keep trajectories with a wrong answer"
    )
    sft.add_argument(
        "--include-incomplete", action="store_true", help="keep trajectories without an answer"
    )
    sft.add_argument(
        "--tokenizer",
        type=Path,
        default=DEFAULT_TOKENIZER,
        help="tokenizer dir for the length percentiles (default: the tiny model, %(default)s)",
    )
    export_rl.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Export the sft part of the traces (or, for rl, the verl parquet); 2 on bad input."""
    if args.command == "rl":
        return export_rl.run(args)
    try:
        manifest = read_split(args.split)
        if not args.traces.is_file():
            raise ConversionError(args.traces, "file is missing")
        # Two runs that once wrote one traces file leave two records of a line: training on both
        # would weigh that line twice, so such a file is refused, not silently exported.
        repeats, first = duplicate_keys(
            args.traces, lambda record: (record.get("series"), record["line"])
        )
        if repeats:
            raise ConversionError(
                args.traces,
                f"{repeats} records repeat the line of an earlier record (first at "
                f"{first}); rerun tools.sr.traces on it with --dedupe to keep the first of each",
            )
        if not (args.tokenizer / "tokenizer_config.json").is_file():
            raise ConversionError(
                args.tokenizer, "no tokenizer here (run `make tiny-model` or pass --tokenizer)"
            )
        rows, report = convert(
            args.traces,
            manifest,
            args.part,
            args.format,
            keep_invalid=args.keep_invalid,
            include_incorrect=args.include_incorrect,
            include_incomplete=args.include_incomplete,
        )
        if not rows:
            raise ConversionError(
                args.traces, f"no trajectory left to export: {report.summary_line()}"
            )
    except (ConversionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.extra["token_lengths"] = token_percentiles(rows, args.format, args.tokenizer)
    report.extra["split"] = {
        "file": str(args.split),
        "seed": manifest["seed"],
        "series": manifest["series"],
    }
    publish(
        args.out_dir,
        [DatasetOutput(args.name, rows, report, columns=COLUMNS[args.format])],
        args.format,
    )
    logger.info(
        "%s; %d rows -> %s", report.summary_line(), len(rows), args.out_dir / f"{args.name}.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
