"""Create or update the project's virtual environment from the pins in pyproject.toml.

Called by `make install` with the system Python 3.11 (standard library only, since the
environment does not exist yet). Steps, in the order the CPU install needs them:

1. torch alone first, so no later resolver step pulls a CUDA build;
2. every pin in one resolver call that repeats the torch pin;
3. remove packages pip pulls in as CUDA-only builds that break imports (torchvision);
4. strip torchaudio's compiled extensions so it loads in pure-Python mode;
5. import every checked module in the new environment and fail loudly if one breaks.

A stamp file named after a hash of the pins marks a finished install, so a second run
takes a second; any pin change makes a new hash and reinstalls.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP_PREFIX = ".dramakit-install-"


def read_install_spec(pyproject: Path) -> dict:
    """Return the pins and install steps declared in pyproject.toml."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    steps = data["tool"]["dramakit"]["install"]
    extras = [pin for group in project.get("optional-dependencies", {}).values() for pin in group]
    return {
        "first": steps["first"],
        "pins": project["dependencies"] + extras,
        "uninstall": steps.get("uninstall", []),
        "strip_shared_libs": steps.get("strip_shared_libs", []),
        "check_imports": steps["check_imports"],
    }


def spec_hash(spec: dict) -> str:
    """A short hash of everything that changes what gets installed."""
    blob = json.dumps(spec, sort_keys=True) + Path(__file__).read_text(encoding="utf-8")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run(cmd: list[str]) -> None:
    """Run a command, echoing it, and stop the install on failure."""
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd)
    if result.returncode != 0:
        sys.exit(f"install failed: {' '.join(cmd[:4])} ... exited with {result.returncode}")


def site_packages(venv: Path) -> Path:
    """The site-packages directory of a venv made by this Python."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def check_imports(python: Path, modules: list[str]) -> list[str]:
    """Import each module in a fresh interpreter; return 'module: error' for failures."""
    failures = []
    for module in modules:
        result = subprocess.run(
            [str(python), "-c", f"import {module}"], capture_output=True, text=True
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            failures.append(f"{module}: {last}")
    return failures


def install(venv: Path, spec: dict) -> None:
    """Bring `venv` to the state `spec` describes."""
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run(pip + spec["first"])
    run(pip + spec["pins"])
    for package in spec["uninstall"]:
        probe = subprocess.run([str(python), "-m", "pip", "show", "-q", package], capture_output=True)
        if probe.returncode == 0:
            run([str(python), "-m", "pip", "uninstall", "-y", "-q", package])
    for rel in spec["strip_shared_libs"]:
        for lib in (site_packages(venv) / rel).glob("*.so"):
            lib.unlink()
    failures = check_imports(python, spec["check_imports"])
    if failures:
        sys.exit("install is broken, these imports fail:\n  " + "\n  ".join(failures))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.install_env",
        description="Create or update the virtual environment from the pins in pyproject.toml "
        "(idempotent: a finished install is recorded by a stamp and skipped).",
    )
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="environment directory")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--force", action="store_true", help="reinstall even if the stamp exists")
    args = parser.parse_args(argv)

    if sys.version_info[:2] != (3, 11):
        sys.exit(f"dramakit needs Python 3.11 for its environment, this is {sys.version.split()[0]}")
    spec = read_install_spec(args.pyproject)
    stamp = args.venv / f"{STAMP_PREFIX}{spec_hash(spec)}"
    if stamp.exists() and not args.force:
        print(f"environment up to date ({stamp.name})")
        return
    install(args.venv, spec)
    for old in args.venv.glob(f"{STAMP_PREFIX}*"):
        old.unlink()
    stamp.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    print(f"environment ready: {args.venv}")


if __name__ == "__main__":
    main()
