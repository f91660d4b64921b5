"""Run a real `llamafactory-cli train` from a test and read back what it did.

Shared by every test that proves a dataset we write is what LLaMA-Factory trains on: converters
register their output in a run-local `dataset_info.json`, call `run_sft`, then assert on the
losses and on `num_examples`, the count of training examples LLaMA-Factory kept after its own
conversion and filtering. The run uses recipes/sft/tiny_smoke_cpu.yaml with key=value overrides,
in a subprocess from the repository root, so it is exactly what `make sft-smoke` runs.
`loaded_examples` gives the count LLaMA-Factory loads per dataset without training, so one
training run on "a,b,c" can still check each dataset's count. `api_server` runs a real
`llamafactory-cli api` on 127.0.0.1 for tests that talk to an OpenAI-compatible endpoint.

Import it as `from llamafactory_run import run_sft` (tests/ is on sys.path through tests/conftest.py
under pytest's default import mode; `tests.` does not work because a dependency installs a
top-level `tests` package into site-packages).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from repo_paths import REPO_ROOT
from tools.common import process
from tools.common.ports import free_port
from tools.common.process import wait_ready

RECIPE = Path("recipes/sft/tiny_smoke_cpu.yaml")
TAIL_CHARS = 4000
# The HF Trainer logs "***** Running training *****" then "  Num examples = 1,234" (thousands
# separators); evaluation logs the same words later, so only the first match after the banner
# counts.
TRAINING_BANNER = "***** Running training *****"
NUM_EXAMPLES = re.compile(r"Num examples = ([\d,]+)")


@dataclass
class SftRun:
    """What one `llamafactory-cli train` run left behind."""

    returncode: int
    stdout_tail: str
    stderr_tail: str
    output_dir: Path
    log_history: list[dict] = field(default_factory=list)
    num_examples: int | None = None

    @property
    def losses(self) -> list[float]:
        """Training losses in step order (one per logging step)."""
        return [entry["loss"] for entry in self.log_history if "loss" in entry]

    def assert_trained(self, steps: int) -> None:
        """Fail with the run's output tails unless it exited 0 and logged `steps` finite losses."""
        assert self.returncode == 0, (
            f"llamafactory-cli failed:\n{self.stdout_tail}\n{self.stderr_tail}"
        )
        assert len(self.losses) == steps, f"expected {steps} logged losses, got {self.log_history}"
        assert all(math.isfinite(loss) for loss in self.losses), self.losses


def _parse_num_examples(log: str) -> int | None:
    start = log.find(TRAINING_BANNER)
    if start < 0:
        return None
    match = NUM_EXAMPLES.search(log, start)
    return int(match.group(1).replace(",", "")) if match else None


def run_sft(
    model_dir: Path | str,
    dataset_dir: Path | str,
    dataset: str,
    out_dir: Path | str,
    *,
    template: str = "qwen3_nothink",
    max_steps: int = 2,
    overrides: tuple[str, ...] | list[str] = (),
    timeout: float = 300,
) -> SftRun:
    """Train `max_steps` steps on `dataset` (one name or "a,b,c" registered in
    `dataset_dir/dataset_info.json`) with the smoke recipe; `overrides` are extra key=value
    arguments applied last. Returns the run's exit code, output tails, log history and
    `num_examples`; never raises on a failed run (call `SftRun.assert_trained`)."""
    out_dir = Path(out_dir)
    cli = Path(sys.executable).parent / "llamafactory-cli"
    args = [
        f"model_name_or_path={model_dir}",
        f"dataset_dir={dataset_dir}",
        f"dataset={dataset}",
        f"output_dir={out_dir}",
        f"max_steps={max_steps}",
        f"template={template}",
        *overrides,
    ]
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [str(cli), "train", str(RECIPE), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    state_file = out_dir / "trainer_state.json"
    log_history = (
        json.loads(state_file.read_text(encoding="utf-8"))["log_history"]
        if state_file.is_file()
        else []
    )
    return SftRun(
        returncode=proc.returncode,
        stdout_tail=proc.stdout[-TAIL_CHARS:],
        stderr_tail=proc.stderr[-TAIL_CHARS:],
        output_dir=out_dir,
        log_history=log_history,
        num_examples=_parse_num_examples(proc.stdout + "\n" + proc.stderr),
    )


def loaded_examples(
    model_dir: Path | str,
    dataset_dir: Path | str,
    datasets: list[str],
    *,
    template: str = "qwen3_nothink",
) -> dict[str, int]:
    """For each name in `datasets`, the number of examples LLaMA-Factory loads for it: its own
    argument parsing, file loading, `num_samples` draw and format alignment, in-process, before
    tokenization (no model, no tokenizer).

    Tokenization can only drop examples, so when these counts are as expected and a training run
    on all the names reports `num_examples` equal to their sum, every dataset kept every example.
    Uses LLaMA-Factory's private `_get_merged_dataset` (pinned 0.9.5): the public `get_dataset`
    would tokenize each dataset and hash the tokenizer for the datasets cache, seconds per call."""
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import get_train_args

    args = yaml.safe_load((REPO_ROOT / RECIPE).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="loaded-examples-") as out_dir:
        args.update(
            model_name_or_path=str(model_dir),
            dataset_dir=str(dataset_dir),
            dataset=",".join(datasets),
            template=template,
            output_dir=out_dir,
        )
        model_args, data_args, training_args, _, _ = get_train_args(args)
        loaded = _get_merged_dataset(
            data_args.dataset, model_args, data_args, training_args, "sft", return_dict=True
        )
    return {name: len(dataset) for name, dataset in loaded.items()}


API_START_TIMEOUT = 240


def start_api_server(
    model_dir: Path, log_path: Path, *, template: str = "qwen3_nothink", name: str = "tiny-qwen3"
) -> tuple[subprocess.Popen, str]:
    """Start a real `llamafactory-cli api` serving `model_dir` on 127.0.0.1 and return its process
    and /v1 URL once /v1/models answers; the caller stops the process (tests that kill it
    mid-run)."""
    from tools.sr import serve

    port = free_port()
    # The command line and environment `make serve` uses on CPU.
    settings = argparse.Namespace(
        model=model_dir, host="127.0.0.1", served_name=name, template=template, server_args=""
    )
    command = serve.server_command("llamafactory", settings, port)
    env = {
        **serve.server_env("llamafactory", settings, port, 1),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.pop("API_KEY", None)  # a key in the caller's environment would make the server demand it
    proc = process.start(command, log_path, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, API_START_TIMEOUT, proc)
    except (RuntimeError, TimeoutError) as e:
        stop(proc)
        raise RuntimeError(f"{e}:\n{log_path.read_text()[-3000:]}") from None
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    """Stop exactly this server (its process group): SIGTERM, then SIGKILL after 30 s."""
    process.stop(proc)


@contextlib.contextmanager
def api_server(
    model_dir: Path, log_path: Path, *, template: str = "qwen3_nothink", name: str = "tiny-qwen3"
):
    """A real `llamafactory-cli api` serving `model_dir` on 127.0.0.1; yields its /v1 URL once
    /v1/models answers, and stops exactly that process (by its pid) on exit."""
    proc, url = start_api_server(model_dir, log_path, template=template, name=name)
    try:
        yield url
    finally:
        stop(proc)
