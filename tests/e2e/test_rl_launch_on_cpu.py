"""`python -m tools.sr.rl --dry-run` for real on CPU: the demo series exported to parquet, the tool
server started and probed, a local Ray head of its own, the config check run as a Ray job with
verl's own code, and every process it started gone afterwards; a bad override fails before
anything starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from repo_paths import REPO_ROOT
from tools.common.ports import free_port
from tools.sr import export, rl, split

pytestmark = pytest.mark.slow

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"
# Both RL parts get lines on the demo series with these (see tests/tools/sr/test_export_rl.py).
SPLIT_ARGS = ["--block-lines", "40", "--ratios", "rl_train=0.6,rl_val=0.4", "--seed", "1"]


@pytest.fixture(scope="module")
def rl_data(demo_labels, tmp_path_factory) -> Path:
    """The demo series' RL parquet files, in a fresh directory."""
    root = tmp_path_factory.mktemp("rl-launch")
    assert (
        split.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(demo_labels),
                "--out",
                str(root / "split.json"),
                *SPLIT_ARGS,
            ]
        )
        == 0
    )
    assert (
        export.main(
            [
                "rl",
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(demo_labels),
                "--split",
                str(root / "split.json"),
                "--out-dir",
                str(root / "rl"),
            ]
        )
        == 0
    )
    return root / "rl"


def launch_args(
    demo_labels: Path, rl_data: Path, tiny_model: Path, out: Path, *extra: str
) -> list[str]:
    return [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(demo_labels),
        "--train",
        str(rl_data / "train.parquet"),
        "--val",
        str(rl_data / "val.parquet"),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        *extra,
    ]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_dry_run_checks_the_config_on_a_local_ray_head(demo_labels, rl_data, tiny_model, tmp_path):
    out, port = tmp_path / "out", free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.sr.rl",
            *launch_args(
                demo_labels,
                rl_data,
                tiny_model,
                out,
                "--tool-port",
                str(port),
                "--num-cpus",
                "8",
                "--dry-run",
            ),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tails = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, tails
    # the resolved config, printed before anything starts
    assert "path: rewards/speaker_rec.py" in proc.stdout and "name: compute_score" in proc.stdout
    assert "tool_config_path: recipes/rl/tools.yaml" in proc.stdout
    assert f"train_files: {rl_data / 'train.parquet'}" in proc.stdout
    assert f"default_local_dir: {out.resolve()}" in proc.stdout
    # the launcher probed its tool server, and the Ray job did too, at the URL workers use
    assert (
        f"tool server healthy at http://127.0.0.1:{port}" in proc.stderr and SERIES in proc.stderr
    )
    assert f"tool server http://127.0.0.1:{port}: {{'status': 'ok'" in proc.stdout, tails
    assert "[validate_config] All configuration checks passed successfully!" in proc.stdout
    assert "data rows: {" in proc.stdout and "'audio_sim'" in proc.stdout
    assert rl.CONFIG_OK in proc.stdout.splitlines()
    # everything it started (tool server, Ray head and all under it) is gone
    pids = json.loads((out / "launcher" / "pids.json").read_text())
    assert set(pids) == {"tool_server", "ray_head"} and len(pids["ray_head"]) > 3
    assert not [pid for group in pids.values() for pid in group if alive(pid)]
    assert (out / "launcher" / "job.log").read_text().count(rl.CONFIG_OK) == 1


def test_bad_override_fails_before_starting_anything(
    demo_labels, rl_data, tiny_model, tmp_path, capsys
):
    out = tmp_path / "out"
    code = rl.main(
        launch_args(demo_labels, rl_data, tiny_model, out, "--dry-run", "trainer.no_such_key=1")
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Could not override 'trainer.no_such_key'" in err and "speaker_rec_grpo.yaml" in err
    assert not (out / "launcher" / "pids.json").exists()


def test_missing_parquet_fails_before_starting_anything(
    demo_labels, rl_data, tiny_model, tmp_path, capsys
):
    out = tmp_path / "out"
    args = launch_args(demo_labels, rl_data, tiny_model, out, "--dry-run")
    args[args.index("--val") + 1] = str(tmp_path / "val.parquet")
    assert rl.main(args) == 2
    assert f"{tmp_path / 'val.parquet'}: data.val_files file is missing" in capsys.readouterr().err
    assert not (out / "launcher" / "pids.json").exists()


def test_training_without_the_gpus_the_recipe_asks_for_stops_with_both_numbers(
    demo_labels, rl_data, tiny_model, tmp_path
):
    """Without GPUs verl would wait for its resource pool forever; the launcher stops first."""
    out, port = tmp_path / "out", free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.sr.rl",
            *launch_args(
                demo_labels,
                rl_data,
                tiny_model,
                out,
                "--tool-port",
                str(port),
                "--num-cpus",
                "8",
                "trainer.nnodes=2",
                "trainer.n_gpus_per_node=4",
            ),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-4000:]
    assert "trainer.nnodes x trainer.n_gpus_per_node = 2 x 4 = 8 GPUs" in proc.stderr
    assert "has 0 GPUs on 1 alive node(s)" in proc.stderr
    assert "Traceback" not in proc.stderr
    pids = json.loads((out / "launcher" / "pids.json").read_text())
    assert set(pids) == {"tool_server", "ray_head"}
    assert not any(alive(pid) for group in pids.values() for pid in group)


def test_require_gpus_passes_when_the_cluster_has_them():
    from omegaconf import OmegaConf

    config = OmegaConf.create({"trainer": {"nnodes": 2, "n_gpus_per_node": 8}})
    rl.require_gpus(config, 16.0, 2, "http://head:8265")
    with pytest.raises(
        rl.LaunchError, match="= 16 GPUs, but the Ray cluster at http://head:8265 has 15 GPUs"
    ):
        rl.require_gpus(config, 15.0, 2, "http://head:8265")
