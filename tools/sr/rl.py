"""Launch speaker-recognition GRPO on stock verl as a Ray job: `make rl [DRY_RUN=1]` runs `python -m
tools.sr.rl`.

Steps, each failing early with the reason:
1. compose the recipe over verl's own `ppo_trainer` defaults with hydra (our data, model and output
   paths, then the user's key=value overrides) and print the resolved config; a bad override fails
   here with hydra's message;
2. check the parquet files the config names (they exist, have tools.sr.export_rl's schema, have
rows);
3. start the tool server (plugins.speaker_rec.server) and wait for its /health;
4. use the Ray cluster in RAY_ADDRESS, or start a local head of our own (`ray start --head --block`
   on free ports with its own temp dir; RAY_AUTH_MODE=disabled);
5. unless it is a dry run, compare the cluster's GPUs (alive nodes) with what the recipe asks,
   trainer.nnodes x trainer.n_gpus_per_node, and stop with both numbers when they are not there
   (verl would otherwise wait for them silently, forever);
6. submit `python -m verl.trainer.main_ppo --config-path <recipe dir> --config-name <recipe> ...`
   with the repository as the job's working_dir, stream its logs, and exit with its exit code.
   With --dry-run the job is `python -m tools.sr.rl --check-config ...` instead: on a Ray worker it
   composes the same config, runs verl's own checks (validate_config, the dataclass conversions
   inside it), loads the reward function and the tools with verl's loaders, reads the parquet files
   and probes the tool server at the URL workers use, then prints "config ok".

Whatever happens (an error, Ctrl-C, SIGTERM), the processes it started are stopped by their pids:
the tool server, and the local Ray head with every process under it; `ray stop` is never used,
since it stops every Ray on the machine. The pids are recorded in <out>/launcher/pids.json.
"""

import argparse
import asyncio
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from plugins.speaker_rec.tool_endpoint import DEFAULT_PORT, TOKEN_ENV, URL_ENV
from tools.common import process
from tools.common.fileio import atomic_write_json, atomic_write_text
from tools.common.ports import free_port, port_in_use
from tools.common.process import wait_http_ok

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = Path("recipes/rl/speaker_rec_grpo.yaml")
CONFIG_OK = "config ok"
# Paths Ray must not upload with the working_dir: the environment, run outputs, caches and git
# history. Ray's limit for a working_dir package is 512 MiB (RAY_max_grpc_message_size); without
# these the upload is gigabytes (.venv) and fails.
UPLOAD_EXCLUDES = [
    ".venv",
    ".venv-*",
    "runs",
    ".cache",
    ".git",
    "__pycache__",
    ".pytest_cache",
    "saves",
]
RAY_START_TIMEOUT_S = 180
TOOL_SERVER_TIMEOUT_S = 120
# Seconds between SIGTERM and SIGKILL when stopping; a Ray head drains and stops in about 6 s here.
STOP_GRACE_S = 30


class LaunchError(Exception):
    """A launch cannot go on; the message says what and why. The command prints it and exits 2."""


# ---- config -----------------------------------------------------------------------------------


def compose(recipe: Path, overrides: list[str]):
    """The recipe composed with hydra over verl's defaults (the recipe's own `defaults` list and
    searchpath) and `overrides`, as verl.trainer.main_ppo would see it. Raises LaunchError with
    hydra's message for a bad override or a broken recipe."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    recipe = recipe.resolve()
    if not recipe.is_file():
        raise LaunchError(f"{recipe}: recipe is missing")
    try:
        with initialize_config_dir(config_dir=str(recipe.parent), version_base=None):
            return hydra_compose(config_name=recipe.stem, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise LaunchError(f"{recipe}: cannot compose with overrides {overrides}: {e}") from None


def _local_path(value: str) -> str:
    """An existing local path made absolute (Ray runs the job in a copy of the repository, where
    relative paths into runs/ or .cache/ do not exist); anything else (a hub id, hdfs://) as
    given."""
    path = Path(value)
    return str(path.resolve()) if path.exists() else value


def launcher_overrides(args: argparse.Namespace) -> list[str]:
    """Our key=value overrides (data, model, output), placed before the user's so theirs win."""
    overrides = [
        f"data.train_files={_local_path(str(args.train))}",
        f"data.val_files={_local_path(str(args.val))}",
        f"trainer.default_local_dir={args.out.resolve()}",
    ]
    if args.model:
        overrides.append(f"actor_rollout_ref.model.path={_local_path(args.model)}")
    return overrides


def _files(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def exported_max_turns(config) -> int:
    """The turn limit the prompts of the local parquet files state (export's --max-turns); the tool
    server must judge with the same one (remote files only: the recipe's). Raises LaunchError when
    the files disagree."""
    import pyarrow.parquet as pq

    recipe_limit = config.actor_rollout_ref.rollout.multi_turn.max_assistant_turns
    limits = set()
    for key in ("train_files", "val_files"):
        for name in _files(config.data[key]):
            if "://" not in name:
                column = (
                    pq.read_table(name, columns=["extra_info"])
                    .column("extra_info")
                    .combine_chunks()
                )
                limits.update(column.field("max_turns").to_pylist())
    if not limits:
        return recipe_limit
    if len(limits) != 1:
        raise LaunchError(
            f"the data states {sorted(limits)} as the turn limit; export every file with "
            "one --max-turns"
        )
    limit = limits.pop()
    if limit != recipe_limit:
        logger.warning(
            "the prompts state %d turns but multi_turn.max_assistant_turns is %s",
            limit,
            recipe_limit,
        )
    return limit


def check_data(config) -> dict[str, int]:
    """Rows of every parquet file in data.train_files and data.val_files; raises LaunchError
    naming the file when it is missing, empty, or not of tools.sr.export_rl's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.sr.export_rl import SCHEMA

    rows = {}
    for key in ("train_files", "val_files"):
        for name in _files(config.data[key]):
            if "://" in name:
                logger.warning("data.%s: %s is remote; not checked here", key, name)
                continue
            path = Path(name)
            if not path.is_file():
                raise LaunchError(
                    f"{path}: data.{key} file is missing (run `make rl`, which exports it, "
                    "or python -m tools.sr.export rl)"
                )
            try:
                parquet = pq.ParquetFile(path)
            except (pa.ArrowException, OSError, ValueError) as e:
                raise LaunchError(f"{path}: not a parquet file ({e})") from None
            schema = parquet.schema_arrow
            missing = [field.name for field in SCHEMA if field.name not in schema.names]
            if missing:
                raise LaunchError(
                    f"{path}: missing columns {missing} (write it with python -m "
                    "tools.sr.export rl)"
                )
            for field in SCHEMA:
                if schema.field(field.name).type != field.type:
                    raise LaunchError(
                        f"{path}: column {field.name} is {schema.field(field.name).type}, "
                        f"expected {field.type} (write it with python -m tools.sr.export rl)"
                    )
            if parquet.metadata.num_rows == 0:
                raise LaunchError(f"{path}: no rows")
            rows[str(path)] = parquet.metadata.num_rows
    return rows


def check_config(recipe: Path, overrides: list[str]) -> None:
    """The dry run's job, on a Ray worker: compose, then verl's own checks and loaders, then the
    data and the tool server as the workers see them. Raises on the first problem."""
    from verl.tools.tool_registry import load_all_tools
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose(recipe, overrides)
    validate_config(
        config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    if get_custom_reward_fn(config) is None:
        raise LaunchError("reward.custom_reward_function.path is not set")
    multi_turn = config.actor_rollout_ref.rollout.multi_turn
    tool_config = multi_turn.get("tool_config_path")
    if multi_turn.enable and not (tool_config and Path(tool_config).is_file()):
        raise LaunchError(
            f"actor_rollout_ref.rollout.multi_turn.tool_config_path: {tool_config} is missing"
        )
    tools = load_all_tools(
        tool_config_path=tool_config, function_tool_path=multi_turn.get("function_tool_path")
    )
    print(f"tools: {sorted(tool.name for tool in tools)}")
    print(f"data rows: {check_data(config)}")
    url = os.environ.get(URL_ENV)
    if not url:
        raise LaunchError(f"{URL_ENV} is not set on the worker")
    health = process.wait_healthy(url.rstrip("/"), 30)
    print(f"tool server {url}: {health}")


# ---- processes --------------------------------------------------------------------------------


class Started:
    """The processes this launch started, recorded in pids.json; `stop` ends each by its pid."""

    def __init__(self, record: Path):
        self.record = record
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, list[int]] = {}

    def add(self, name: str, proc: subprocess.Popen) -> None:
        self.procs[name] = proc
        self.pids[name] = [proc.pid]
        self._save()

    def _save(self) -> None:
        atomic_write_json(self.record, self.pids)

    def stop(self) -> None:
        """Stop every started process, newest first, by pid (tools.common.process.stop: SIGTERM
        to its process group, then SIGKILL after the grace period); then SIGKILL whatever of its
        tree (seen just before) left the group and outlived it."""
        import psutil

        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            self.pids[name] = sorted(set(self.pids[name]) | {p.pid for p in tree})
            self._save()
            process.stop(proc, STOP_GRACE_S)
            _, alive = psutil.wait_procs(tree[1:], timeout=0)
            for p in alive:
                try:
                    logger.warning(
                        "%s: pid %d (%s) outlived its group's SIGTERM; killing it",
                        name,
                        p.pid,
                        p.name(),
                    )
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=STOP_GRACE_S)
            logger.info("stopped %s (%d processes)", name, len(tree))


def _probe_host(host: str) -> str:
    """Where this machine reaches a server bound to `host` (a wildcard bind answers on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _url_host(host: str) -> str:
    """The host workers use by default: the bind address, or this machine's name for a wildcard
    bind."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def start_tool_server(
    args: argparse.Namespace, run_dir: Path, started: Started, max_turns: int
) -> dict:
    """Start the tool server for the series and wait for /health; returns its health reply."""
    host = _probe_host(args.tool_host)
    if port_in_use(args.tool_host, args.tool_port):
        raise LaunchError(
            f"port {args.tool_port} on {args.tool_host} is already in use; pick another "
            "with --tool-port"
        )
    command = [
        sys.executable,
        "-m",
        "plugins.speaker_rec.server",
        "--series",
        args.series,
        "--labels",
        str(args.labels),
        "--data-dir",
        str(args.data_dir),
        "--host",
        args.tool_host,
        "--port",
        str(args.tool_port),
        "--max-turns",
        str(max_turns),
    ]
    log_path = run_dir / "tool_server.log"
    logger.info("tool server: %s (log %s)", shlex.join(command), log_path)
    # Its own session: Ctrl-C reaches only us, and we stop it after the job.
    proc = process.start(command, log_path, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    started.add("tool_server", proc)
    url = f"http://{host}:{args.tool_port}"
    try:
        health = process.wait_healthy(url, TOOL_SERVER_TIMEOUT_S, proc)
    except (RuntimeError, TimeoutError) as e:
        raise LaunchError(
            f"{e}; its log {log_path} ends:\n{log_path.read_text()[-2000:]}"
        ) from None
    if args.series not in health.get("series", []):
        raise LaunchError(f"the tool server at {url} does not serve {args.series}: {health}")
    logger.info("tool server healthy at %s: %s", url, json.dumps(health, ensure_ascii=False))
    return health


def start_ray_head(num_cpus: int, run_dir: Path, started: Started) -> tuple[str, Path]:
    """A Ray head of our own on free loopback ports, in its own temp dir; returns the job API
    address (the dashboard) and the temp dir. `--block` keeps `ray start` in the foreground as
    the parent of Ray's processes, so stopping its process tree stops exactly this head."""
    ports = {
        "port": free_port(),
        "dashboard-port": free_port(),
        "ray-client-server-port": free_port(),
        "dashboard-agent-listen-port": free_port(),
    }
    temp_dir = Path(tempfile.mkdtemp(prefix="dramakit-ray-"))
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus",
        str(num_cpus),
        "--node-ip-address",
        "127.0.0.1",
        "--dashboard-host",
        "127.0.0.1",
        "--include-dashboard",
        "true",
        "--temp-dir",
        str(temp_dir),
        "--disable-usage-stats",
        *(f"--{flag}={port}" for flag, port in ports.items()),
    ]
    # The job's `python` is the one first on the head's PATH: this environment's.
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    log_path = run_dir / "ray_head.log"
    logger.info("local Ray head: %s (log %s)", shlex.join(command), log_path)
    proc = process.start(command, log_path, cwd=REPO, env=env)
    started.add("ray_head", proc)
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        wait_http_ok(f"{address}/api/version", RAY_START_TIMEOUT_S, proc, interval=0.5)
    except RuntimeError:
        raise LaunchError(
            f"ray start exited with {proc.returncode}; its log {log_path} ends:\n"
            f"{log_path.read_text()[-3000:]}"
        ) from None
    except TimeoutError:
        raise LaunchError(
            f"the local Ray head's job API {address} did not answer in {RAY_START_TIMEOUT_S} s"
        ) from None
    logger.info(
        "local Ray head ready: job API %s, GCS 127.0.0.1:%d, %d CPUs",
        address,
        ports["port"],
        num_cpus,
    )
    return address, temp_dir


def cluster_gpus(address: str) -> tuple[float, int]:
    """GPUs of the Ray cluster's alive nodes and the number of those nodes (Ray's state API). A
    fresh head appears in the state API some seconds after its job API answers: wait for a node."""
    from ray.util.state import list_nodes

    deadline = time.monotonic() + RAY_START_TIMEOUT_S
    while True:
        nodes = [node for node in list_nodes(address=address, detail=True) if node.state == "ALIVE"]
        if nodes or time.monotonic() > deadline:
            return sum(float((node.resources_total or {}).get("GPU", 0)) for node in nodes), len(
                nodes
            )
        time.sleep(1)


def require_gpus(config, gpus: float, nodes: int, address: str) -> None:
    """Raise LaunchError when the cluster has fewer GPUs than trainer.nnodes x
    trainer.n_gpus_per_node."""
    nnodes, per_node = int(config.trainer.nnodes), int(config.trainer.n_gpus_per_node)
    needed = nnodes * per_node
    if gpus < needed:
        raise LaunchError(
            f"the recipe asks for trainer.nnodes x trainer.n_gpus_per_node = {nnodes} x "
            f"{per_node} = {needed} GPUs, "
            f"but the Ray cluster at {address} has {gpus:g} GPUs on {nodes} alive "
            "node(s). Start Ray on the GPU "
            "nodes (README: GPU cluster from zero) and set RAY_ADDRESS, or ask for what "
            "is there with "
            "RL_ARGS='trainer.nnodes=1 trainer.n_gpus_per_node=N'; `make rl DRY_RUN=1` "
            "checks the config without GPUs"
        )
    logger.info(
        "the Ray cluster has %g GPUs on %d node(s); the recipe asks for %d", gpus, nodes, needed
    )


# ---- the job ----------------------------------------------------------------------------------


def entrypoint(args: argparse.Namespace, recipe: Path, overrides: list[str]) -> str:
    """The job's shell command. The recipe directory is named through $PWD, the job's copy of the
    repository, because hydra needs an absolute --config-path and the job may run on another
    node."""
    quoted = " ".join(shlex.quote(o) for o in overrides)
    relative = recipe.resolve().relative_to(REPO)
    if args.dry_run:
        return (
            f"python -m tools.sr.rl --check-config --recipe {shlex.quote(str(relative))} {quoted}"
        ).rstrip()
    return (
        f'python -m verl.trainer.main_ppo --config-path "$PWD/{relative.parent}" '
        f"--config-name {shlex.quote(relative.stem)} {quoted}"
    ).rstrip()


def runtime_env(tool_url: str, out: Path) -> dict:
    """The job's runtime_env: the repository as working_dir (minus UPLOAD_EXCLUDES) and the
    variables workers need; the tool token travels only when set (Ray shows env_vars in its
    dashboard).
    verl's TensorBoard logger writes to TENSORBOARD_DIR, else into the job's throwaway working_dir
    copy."""
    env_vars = {
        URL_ENV: tool_url,
        "PYTHONPATH": ".",
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "TENSORBOARD_DIR": os.environ.get("TENSORBOARD_DIR", str(out.resolve() / "tensorboard")),
    }
    if os.environ.get(TOKEN_ENV):
        env_vars[TOKEN_ENV] = os.environ[TOKEN_ENV]
    return {"working_dir": str(REPO), "excludes": UPLOAD_EXCLUDES, "env_vars": env_vars}


def run_job(address: str | None, command: str, env: dict, job_log: Path) -> int:
    """Submit `command` as a Ray job, stream its logs to stdout and `job_log`, and return its
    exit code (the driver's, when Ray knows it). Ctrl-C stops the job before re-raising."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    submission_id = f"dramakit-rl-{uuid.uuid4().hex[:8]}"
    shown = {
        **env,
        "env_vars": {k: ("***" if k == TOKEN_ENV else v) for k, v in env["env_vars"].items()},
    }
    logger.info(
        "submitting %s to %s; the same by hand: ray job submit --address %s --submission-id %s "
        "--runtime-env-json %s -- %s",
        submission_id,
        address or "$RAY_ADDRESS",
        address or "$RAY_ADDRESS",
        submission_id,
        shlex.quote(json.dumps(shown)),
        command,
    )
    client.submit_job(entrypoint=command, runtime_env=env, submission_id=submission_id)

    async def stream(log_file) -> None:
        async for chunk in client.tail_job_logs(submission_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            log_file.write(chunk)

    try:
        with open(job_log, "w", encoding="utf-8") as log_file:
            asyncio.run(stream(log_file))
        while not client.get_job_status(submission_id).is_terminal():
            time.sleep(0.5)
    except BaseException:
        logger.warning("stopping job %s", submission_id)
        try:
            client.stop_job(submission_id)
        except Exception as e:  # the cluster may be gone already; the original error matters more
            logger.warning("could not stop job %s: %s", submission_id, e)
        raise
    info = client.get_job_info(submission_id)
    logger.info(
        "job %s: %s%s", submission_id, info.status, f" ({info.message})" if info.message else ""
    )
    if info.driver_exit_code is not None:
        return info.driver_exit_code
    return 0 if info.status == JobStatus.SUCCEEDED else 1


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def launch(args: argparse.Namespace) -> int:
    """Steps 1-6 of the module docstring; returns the job's exit code."""
    if not args.recipe.resolve().is_relative_to(REPO):
        raise LaunchError(
            f"{args.recipe}: the recipe must be inside the repository {REPO}, which the job uploads"
        )
    run_dir = args.out / "launcher"
    overrides = launcher_overrides(args) + args.overrides
    config = compose(args.recipe, overrides)
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_yaml(config, resolve=True)
    print(resolved, flush=True)
    rows = check_data(config)  # before anything is written: bad data leaves no run directory behind
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", resolved)
    logger.info("resolved config written to %s", run_dir / "config.yaml")
    logger.info("data rows: %s", rows)

    started = Started(run_dir / "pids.json")
    temp_dir = None
    # SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C, so `finally` stops what we started.
    previous_handler = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        start_tool_server(args, run_dir, started, exported_max_turns(config))
        address = os.environ.get("RAY_ADDRESS")
        if address:
            logger.info("using the Ray cluster at RAY_ADDRESS=%s", address)
        else:
            address, temp_dir = start_ray_head(args.num_cpus, run_dir, started)
            os.environ["RAY_AUTH_MODE"] = "disabled"  # our client talks to our own head
        if not args.dry_run:
            require_gpus(config, *cluster_gpus(address), address)
        tool_url = args.tool_url or f"http://{_url_host(args.tool_host)}:{args.tool_port}"
        code = run_job(
            address,
            entrypoint(args, args.recipe, overrides),
            runtime_env(tool_url, args.out),
            run_dir / "job.log",
        )
    finally:
        started.stop()
        signal.signal(signal.SIGTERM, previous_handler)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    logger.info(
        "%s finished with exit code %d; logs in %s",
        "dry run" if args.dry_run else "RL job",
        code,
        run_dir,
    )
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.rl",
        description="Run speaker-recognition GRPO with stock verl as a Ray job: compose and print "
        "the config, check the parquet data, start the tool server, start a local Ray head unless "
        "RAY_ADDRESS names a "
        "cluster, submit verl.trainer.main_ppo (or, with --dry-run, a config check on a "
        "Ray worker), stream "
        "its logs, and stop everything it started. Exit code: the job's (2 for a launch "
        "error). Trailing key=value arguments are hydra overrides of the recipe.",
    )
    parser.add_argument(
        "--series", help="series name (an identifier, not a path), served by the tool server"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data/demo"), help="directory holding <series>/"
    )
    parser.add_argument("--labels", type=Path, help="labels.json of the series (tools.sr.prepare)")
    parser.add_argument(
        "--train", type=Path, help="train.parquet (default: runs/<series>/rl/train.parquet)"
    )
    parser.add_argument(
        "--val", type=Path, help="val.parquet (default: runs/<series>/rl/val.parquet)"
    )
    parser.add_argument(
        "--recipe",
        type=Path,
        default=DEFAULT_RECIPE,
        help="verl recipe inside the repository (default: %(default)s)",
    )
    parser.add_argument("--model", help="actor_rollout_ref.model.path (default: the recipe's)")
    parser.add_argument(
        "--out",
        type=Path,
        help="trainer.default_local_dir, under runs/ (default: "
        "runs/<series>/rl-out); launcher logs go to OUT/launcher/",
    )
    parser.add_argument(
        "--tool-host",
        default="127.0.0.1",
        help="address the tool server binds (default: "
        "%(default)s; a non-loopback address needs DRAMAKIT_TOOL_TOKEN)",
    )
    parser.add_argument(
        "--tool-port",
        type=int,
        default=DEFAULT_PORT,
        help="tool server port (default: %(default)s)",
    )
    parser.add_argument(
        "--tool-url",
        help="tool server URL the Ray workers use (default: http://TOOL_HOST:TOOL_PORT; "
        "on a cluster, an address every node can reach)",
    )
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=8,
        help="logical CPUs of a local Ray head; verl's actors "
        "need more than a small machine's cores (default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="submit a config check instead of training"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="(the dry run's job, on a Ray worker) compose the recipe with the overrides, run "
        "verl's "
        f"checks, load reward and tools, read the data, probe ${URL_ENV}/health",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="hydra overrides of the recipe"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.check_config:
        if not (args.series and args.labels):
            parser.error("--series and --labels are required (unless --check-config)")
        from plugins.speaker_rec.series import SERIES_NAME

        if not SERIES_NAME.match(args.series):
            parser.error(f"--series {args.series!r} is not an identifier")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Check the config, or launch the RL job; 2 when it cannot start, 130 when interrupted."""
    try:
        if args.check_config:
            check_config(args.recipe, args.overrides)
            print(CONFIG_OK, flush=True)
            return 0
        series_runs = Path("runs") / args.series
        args.train = args.train or series_runs / "rl" / "train.parquet"
        args.val = args.val or series_runs / "rl" / "val.parquet"
        args.out = args.out or series_runs / "rl-out"
        return launch(args)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
