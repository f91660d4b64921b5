"""Write a converter's output as LLaMA-Factory datasets: the records file, the conversion report,
and the dataset's entry in a run-local `dataset_info.json` next to them (merged, atomic).

Shared by the role-play converters (tools.roleplay.rolebench, tools.roleplay.character); not a
command itself.
Point LLaMA-Factory at the output folder with `dataset_dir=<out-dir> dataset=<name>`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tools.common.fileio import Report, atomic_write_json
from tools.common.text_input import NotTextError, read_text

DATASET_INFO = "dataset_info.json"
FORMATS = ("alpaca", "sharegpt")
# Dataset names become file names and dataset_info keys: identifiers, never paths.
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class ConversionError(Exception):
    """A problem with an input as a whole (missing file, unreadable profile, unknown name).

    The command prints it, exits 2 and writes nothing."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")


def check_dataset_name(name: str) -> str:
    """Return `name` when it is an identifier (letters, digits, `_`, `-`); raise ValueError
    otherwise."""
    if not DATASET_NAME.match(name):
        raise ValueError(
            f"dataset name {name!r} is not an identifier (letters, digits, '_' and '-' only)"
        )
    return name


def dataset_name_arg(value: str) -> str:
    """argparse `type=` for a dataset name: the same check, reported as a usage error."""
    try:
        return check_dataset_name(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def make_record(fmt: str, prompt: str, response: str, system: str) -> dict:
    """One single-turn training example in `fmt` ("alpaca" or "sharegpt") with a system prompt."""
    if fmt == "alpaca":
        return {"system": system, "instruction": prompt, "input": "", "output": response}
    if fmt == "sharegpt":
        return {
            "system": system,
            "conversations": [
                {"from": "human", "value": prompt},
                {"from": "gpt", "value": response},
            ],
        }
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def dataset_entry(
    file_name: str, fmt: str, num_samples: int | None = None, columns: dict | None = None
) -> dict:
    """The dataset_info.json entry for a file written by `make_record` in `fmt`; `columns` adds
    LLaMA-Factory columns beyond the basic ones (e.g. alpaca "history", "tools").

    `num_samples` makes LLaMA-Factory draw that many examples from the file: every row once,
    the rest drawn with replacement; this is how a dataset is weighted without copying rows."""
    if fmt == "alpaca":
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "system": "system",
            },
        }
    elif fmt == "sharegpt":
        entry = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            # Name every tag: once `tags` is given, LLaMA-Factory sets each one left out to None,
            # and
            # then drops every row with function_call or observation turns as "invalid role tag".
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "observation_tag": "observation",
                "function_tag": "function_call",
                "system_tag": "system",
            },
        }
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    entry["columns"].update(columns or {})
    if num_samples is not None:
        entry["num_samples"] = num_samples
    return entry


@contextlib.contextmanager
def _locked(out_dir: Path):
    # Two converters may register into the same folder at once; the read-merge-write must not
    # interleave. Locking the folder itself leaves no lock file behind.
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_info(info_path: Path) -> dict:
    if not info_path.exists():
        return {}
    try:
        info = json.loads(read_text(info_path))
    except NotTextError as e:
        raise ConversionError(info_path, str(e).removeprefix(f"{info_path}: ")) from None
    except json.JSONDecodeError as e:
        raise ConversionError(
            info_path, f"broken JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(info, dict):
        raise ConversionError(info_path, "not a JSON object of dataset entries")
    return info


@dataclass
class DatasetOutput:
    """One dataset a converter produced: its name, rows, report, optional `num_samples` weight
    and optional extra columns for its dataset_info entry (see `dataset_entry`)."""

    name: str
    records: list[dict]
    report: Report
    num_samples: int | None = None
    columns: dict | None = None


def publish(out_dir: Path | str, outputs: list[DatasetOutput], fmt: str) -> dict[str, Path]:
    """Write each dataset as `<name>.json` with `<name>.report.json`, then add their entries to
    `out_dir/dataset_info.json`, keeping every other entry there.

    The existing dataset_info.json is checked before anything is written (ConversionError when it
    is not a JSON object), and registration comes last, so LLaMA-Factory only ever sees complete
    files. Returns the path of every file written, by role ("<name>", "<name>.report",
    "dataset_info")."""
    out_dir = Path(out_dir)
    for output in outputs:
        check_dataset_name(output.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path = out_dir / DATASET_INFO
    written: dict[str, Path] = {}
    with _locked(out_dir):
        info = _read_info(info_path)
        for output in outputs:
            file_name = f"{output.name}.json"
            info[output.name] = dataset_entry(file_name, fmt, output.num_samples, output.columns)
            output.report.extra["dataset_info_entry"] = {output.name: info[output.name]}
            atomic_write_json(out_dir / file_name, output.records)
            atomic_write_json(
                out_dir / f"{output.name}.report.json", output.report.as_dict(), indent=2
            )
            written[output.name] = out_dir / file_name
            written[f"{output.name}.report"] = out_dir / f"{output.name}.report.json"
        atomic_write_json(info_path, info, indent=2)
    written["dataset_info"] = info_path
    return written
