"""End-to-end: `llamafactory-cli train` runs recipes/sft/tiny_smoke_cpu.yaml on the tiny model on
CPU.

Proves the plumbing only (recipe, dataset registration in data/dataset_info.json, template, loss
logging, checkpoint, loss plot); the model is random, so the loss value itself means nothing.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

RECIPE = Path("recipes/sft/tiny_smoke_cpu.yaml")


@pytest.mark.slow
def test_smoke_sft_recipe_trains_logs_finite_loss_and_saves_checkpoint_and_plot(
    repo_root, tiny_model, tmp_path
):
    recipe = yaml.safe_load((repo_root / RECIPE).read_text(encoding="utf-8"))
    max_steps = recipe["max_steps"]
    output_dir = tmp_path / "sft-smoke"
    # The venv's own entry point, so the test runs the CLI users run, from the same environment.
    cli = Path(sys.executable).parent / "llamafactory-cli"
    overrides = [
        f"model_name_or_path={tiny_model}",
        f"dataset_dir={repo_root / 'data'}",
        f"output_dir={output_dir}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [str(cli), "train", str(RECIPE), *overrides],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"llamafactory-cli failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )

    logged = [
        json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines()
    ]
    losses = [record["loss"] for record in logged if "loss" in record]
    assert len(losses) == max_steps  # logging_steps is 1
    assert all(math.isfinite(loss) for loss in losses)

    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == max_steps
    state_losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert state_losses == pytest.approx(losses)

    assert (output_dir / f"checkpoint-{max_steps}" / "model.safetensors").is_file()
    assert (output_dir / "model.safetensors").is_file()
    plot = output_dir / "training_loss.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
