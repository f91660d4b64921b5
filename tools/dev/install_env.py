"""Build an environment of one stack from its lock, or check a user's own environment without
touching it.

    # what make targets call; make install-gpu; a user's own env (never modified)
    python -m tools.dev.install_env ensure  --stack cpu      --venv .venv
    python -m tools.dev.install_env install --stack cuda-rl  --venv .venv-cuda-rl
    python -m tools.dev.install_env check   --stack cuda-sft --venv /opt/their-env

Runs under the bare system Python 3.11 (standard library only), since no environment exists yet.

Ownership. An environment this command created carries a mark file (`.dramakit-env`, naming its
stack). Any other existing folder is a user's: `ensure` and `check` only read it (metadata and
imports, bytecode writing off) and list what is missing or at the wrong version; `install` refuses
it. Nothing is ever installed into an environment we did not create.

The CPU stack (`make install`): pip, constrained to envs/cpu.lock's versions, with the CPU-only
steps of envs/cpu.toml [install]: torch alone first (pip takes the CPU build this machine and CI
have for that version), every requirement in one resolver call, CUDA-only leftovers removed,
torchaudio's compiled extensions stripped. The CUDA stacks (`make install-gpu`): `uv pip sync` of
the lock with --require-hashes, exactly the locked set, none of the CPU steps. Both end by
importing every checked module. A stamp named after a digest of declaration, lock and this file
marks a finished install, so reruns take a moment.
"""

import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tools.dev.envspec import (
    INSTALLER_REQUIREMENTS,
    ROOT,
    STACKS,
    STAMP_PREFIX,
    EnvError,
    SpecError,
    Stack,
    load_stack,
    python_of,
    read_lock,
    run_echoed,
    uv,
    version_problems,
)

MARK = ".dramakit-env"
# Environments built before the mark existed carry only the stamp; they are ours too.
LEGACY_STAMP_GLOB = f"{STAMP_PREFIX}*"
CACHE = ROOT / ".cache"
CHECK_CACHE = CACHE / "env-checks"
IMPORT_TIMEOUT_S = 300


def is_ours(venv: Path) -> bool:
    """Whether `venv` is an environment this command created (or does not exist yet)."""
    if not venv.exists():
        return True
    return (venv / MARK).is_file() or any(venv.glob(LEGACY_STAMP_GLOB))


def install_digest(stack: Stack) -> str:
    """Changes whenever what an install produces may change: declaration, lock, installer."""
    parts = [
        stack.path.read_bytes(),
        stack.lock_path.read_bytes(),
        Path(__file__).read_bytes(),
        INSTALLER_REQUIREMENTS.read_bytes(),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


# ---- reading an environment (never writing) ------------------------------------------------------

_PROBE = """
import json, sys
from importlib import metadata
names = json.loads(sys.argv[1])
found = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        found.setdefault(name.lower().replace("_", "-").replace(".", "-"), dist.version)
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "versions": {n: found.get(n) \
for n in names}}))
"""


def _read_only_env() -> dict:
    """Environment variables for running a user's interpreter without it writing anything of its
    own."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def probe_versions(python: Path, names: list[str]) -> dict:
    """The interpreter's Python version and the installed version (or None) of each distribution."""
    python = python.absolute()
    result = subprocess.run(
        [str(python), "-B", "-s", "-c", _PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        env=_read_only_env(),
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    if result.returncode != 0:
        raise EnvError(
            f"{python} cannot run: {(result.stderr.strip().splitlines() or ['(no output)'])[-1]}"
        )
    return json.loads(result.stdout)


def import_failures(python: Path, modules: list[str], extra_env: dict | None = None) -> list[str]:
    python = python.absolute()  # the imports run in a temp working directory
    """Import each module in its own interpreter, all at once; 'module: last error line' per
    failure.
    Bytecode writing is off and the working directory is a temp one, so nothing lands in the env."""
    env = {**_read_only_env(), **(extra_env or {})}
    with tempfile.TemporaryDirectory() as cwd:
        procs = {
            m: subprocess.Popen(
                [str(python), "-B", "-s", "-c", f"import {m}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=cwd,
            )
            for m in modules
        }
        failures = []
        for module, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=IMPORT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                failures.append(f"{module}: import did not finish in {IMPORT_TIMEOUT_S} s")
                continue
            if proc.returncode != 0:
                failures.append(f"{module}: {(err.strip().splitlines() or ['(no output)'])[-1]}")
    return failures


def check(venv: Path, stack: Stack) -> list[str]:
    """Everything `venv` lacks for `stack`'s targets (empty when usable). Reads only."""
    python = python_of(venv)
    if not venv.is_dir():
        return [f"{venv}: no such directory"]
    if not python.exists():
        return [f"{venv}: not a Python environment (no bin/python)"]
    wanted = stack.versions
    info = probe_versions(python, [r.name for r in wanted])
    problems = []
    if info["python"] != "3.11":
        problems.append(
            f"python: {info['python']} (the locks are for 3.11; other versions are not checked)"
        )
    problems += version_problems(info["versions"], wanted)
    problems += [f"import {f}" for f in import_failures(python, stack.imports)]
    return problems


def _fingerprint(venv: Path, stack: Stack) -> str:
    """What a cached check result depends on: the stack's declaration and the set of installed
    distributions (their dist-info folder names carry the versions)."""
    dists = sorted(p.name for p in venv.glob("lib/python3*/site-packages/*.dist-info"))
    blob = json.dumps([str(venv.resolve()), stack.path.read_text(encoding="utf-8"), dists])
    return hashlib.sha256(blob.encode()).hexdigest()


def check_foreign(venv: Path, stack: Stack) -> None:
    """Check a user's environment (cached by its installed set, in our .cache); raise EnvError
    listing
    what is missing. The environment itself is never written to."""
    key = _fingerprint(venv, stack)
    cached = (
        CHECK_CACHE
        / f"{hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16]}-{stack.name}.ok"
    )
    if cached.is_file() and cached.read_text(encoding="utf-8") == key:
        print(
            f"{venv}: your own environment, checked for the {stack.name} stack earlier; used as is"
        )
        return
    problems = check(venv, stack)
    if problems:
        raise EnvError(
            f"{venv} is not one of ours, so it is used as is and never modified; for the "
            f"{stack.name} stack ({stack.path.relative_to(ROOT)}) it lacks:\n  "
            + "\n  ".join(problems)
            + "\nFix it yourself, or point the variable at another environment (or unset it to use "
            "the one `make install` / `make install-gpu` builds)."
        )
    CHECK_CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(key, encoding="utf-8")
    print(
        f"{venv}: your own environment has what the {stack.name} stack needs; used as "
        "is, not modified"
    )


# ---- building our own environments ---------------------------------------------------------------


@contextmanager
def install_lock(venv: Path):
    """One install at a time per environment (make targets may ask for the same one at once)."""
    locks = CACHE / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / (hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16] + ".lock")
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def constraints_from_lock(stack: Stack, out: Path) -> None:
    """The lock's exact versions as a pip constraints file, without hashes (the CPU torch build pip
    takes here is not the CUDA build the lock hashed) and without the CUDA-only packages."""
    pins, _ = read_lock(stack.lock_path)
    skip = tuple(stack.install.get("cuda_only_prefixes", []))
    lines = [
        f"{name}=={version}" for name, version in sorted(pins.items()) if not name.startswith(skip)
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def site_packages(venv: Path) -> Path:
    return (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )


def create(venv: Path, stack: Stack) -> None:
    """A new virtual environment, marked as ours before anything goes into it."""
    # The CUDA stacks are installed by uv, which needs no pip inside the environment.
    run_echoed(
        [
            sys.executable,
            "-m",
            "venv",
            *(["--without-pip"] if stack.name != "cpu" else []),
            str(venv),
        ]
    )
    (venv / MARK).write_text(stack.name + "\n", encoding="utf-8")


def install_cpu(venv: Path, stack: Stack) -> None:
    """pip install of the CPU stack, constrained to its lock, with the CPU-only steps."""
    python = python_of(venv)
    constraints = venv / "dramakit-constraints.txt"
    constraints_from_lock(stack, constraints)
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "-c",
        str(constraints),
    ]
    steps = stack.install
    run_echoed(pip + steps["first"])
    run_echoed(pip + stack.requirements)
    for package in steps.get("uninstall", []):
        probe = subprocess.run(
            [str(python), "-m", "pip", "show", "-q", package], capture_output=True
        )
        if probe.returncode == 0:
            run_echoed([str(python), "-m", "pip", "uninstall", "-y", "-q", package])
    for rel in steps.get("strip_shared_libs", []):
        for lib in (site_packages(venv) / rel).glob("*.so"):
            lib.unlink()


def install_cuda(venv: Path, stack: Stack) -> None:
    """Exactly the locked set, every file checked against the lock's hashes; nothing else."""
    run_echoed(
        [
            str(uv()),
            "pip",
            "sync",
            "--python",
            str(python_of(venv)),
            "--require-hashes",
            str(stack.lock_path),
        ],
        env={**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(CACHE / "uv"))},
    )


def install(venv: Path, stack: Stack, force: bool = False) -> None:
    """Bring our own `venv` to what `stack` declares (skipped when its stamp is current)."""
    if not is_ours(venv):
        raise EnvError(
            f"{venv} exists and was not made by this command: it is never installed into. "
            f"Check it with `python -m tools.dev.install_env check --stack {stack.name} "
            f"--venv {venv}`, "
            "or choose a new folder."
        )
    with install_lock(venv):
        stamp = venv / f"{STAMP_PREFIX}{install_digest(stack)}"
        if stamp.exists() and not force:
            print(f"{venv}: {stack.name} environment up to date")
            return
        started = time.monotonic()
        if not python_of(venv).exists():
            create(venv, stack)
        elif not (venv / MARK).exists():
            (venv / MARK).write_text(stack.name + "\n", encoding="utf-8")
        (install_cpu if stack.name == "cpu" else install_cuda)(venv, stack)
        failures = import_failures(python_of(venv), stack.imports)
        if failures:
            raise EnvError(
                f"{venv}: the install is broken, these imports fail:\n  " + "\n  ".join(failures)
            )
        for old in venv.glob(LEGACY_STAMP_GLOB):
            old.unlink()
        stamp.write_text(
            json.dumps({"stack": stack.name, "lock": stack.lock_path.name}) + "\n", encoding="utf-8"
        )
        print(f"{venv}: {stack.name} environment ready in {time.monotonic() - started:.0f} s")


def ensure(venv: Path, stack: Stack) -> None:
    """What every make target asks: our own environment is built or brought up to date; a user's is
    checked."""
    if is_ours(venv):
        install(venv, stack)
    else:
        check_foreign(venv, stack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.install_env",
        description="Build an environment of one stack (envs/<stack>.toml) from its lock, or "
        "check a user's own "
        "environment for it. An existing environment this command did not create is "
        "never modified.",
    )
    parser.add_argument(
        "action",
        choices=("ensure", "install", "check"),
        help="ensure: build ours or check yours (make targets); install: build ours only; "
        "check: list what an environment lacks, read only",
    )
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument("--venv", type=Path, required=True, help="environment folder")
    parser.add_argument(
        "--force", action="store_true", help="reinstall our own environment even if up to date"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Ensure, install or check the environment; 1 when a check finds gaps, 2 on errors."""
    if sys.version_info[:2] != (3, 11):
        print(
            "error: dramakit builds its environments with Python 3.11, this is "
            f"{sys.version.split()[0]}",
            file=sys.stderr,
        )
        return 2
    try:
        stack = load_stack(args.stack)
        if args.action == "check":
            problems = check(args.venv, stack)
            if problems:
                print(
                    f"{args.venv} lacks for the {stack.name} stack:\n  " + "\n  ".join(problems),
                    file=sys.stderr,
                )
                return 1
            print(f"{args.venv}: has what the {stack.name} stack needs")
        elif args.action == "install":
            install(args.venv, stack, args.force)
        else:
            ensure(args.venv, stack)
    except (EnvError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
