"""Every `python -m ...` command the READMEs and the Makefile name answers `--help` with exit 0,
and so does each subcommand they name (`python -m tools.sr prepare`, `python -m tools.style
convert`); every target `make help` lists dry-runs, and the READMEs name no target that does not
exist: a renamed or moved command cannot stay documented under its old name."""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from repo_paths import REPO_ROOT

pytestmark = pytest.mark.slow

DOCUMENTS = [
    "README.md",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tools").rglob("README.md")),
    "Makefile",
    *sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "make").glob("*.mk")),
]
COMMAND = re.compile(
    r"(?:python3?|\$\(PY\)|\$\(PYTHON\)) -m "
    r"((?:tools|plugins|rewards)(?:\.\w+)+)(?: ([a-z][a-z_-]*))?"
)
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}


def documented() -> dict[str, set[str]]:
    """module -> the words that follow it somewhere (candidate subcommands)."""
    found: dict[str, set[str]] = {}
    for name in DOCUMENTS:
        for module, word in COMMAND.findall((REPO_ROOT / name).read_text(encoding="utf-8")):
            found.setdefault(module, set()).update([word] if word else [])
    return found


def run_help(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args, "--help"],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_documents_name_commands():
    found = documented()
    assert {
        "tools.sr",
        "tools.roleplay",
        "tools.style",
        "tools.dev",
        "tools.sr.prepare",
        "tools.roleplay.regress",
    } <= set(found)


def test_every_documented_command_and_subcommand_has_help():
    found = documented()
    with ThreadPoolExecutor(max_workers=2) as pool:
        helps = dict(zip(found, pool.map(run_help, found), strict=True))
    failures = [
        f"python -m {module} --help: exit {proc.returncode}\n{proc.stderr[-500:]}"
        for module, proc in helps.items()
        if proc.returncode != 0 or "usage" not in proc.stdout
    ]
    # a word after the module is a subcommand when the module's help lists it
    subcommands = [
        (module, word)
        for module, words in found.items()
        for word in sorted(words)
        if re.search(
            rf"(?m)^\s+{re.escape(word)}\b|[{{,]{re.escape(word)}[,}}]", helps[module].stdout
        )
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for (module, word), proc in zip(
            subcommands, pool.map(lambda mw: run_help(*mw), subcommands), strict=True
        ):
            if proc.returncode != 0 or "usage" not in proc.stdout:
                failures.append(
                    f"python -m {module} {word} --help: exit {proc.returncode}\n"
                    f"{proc.stderr[-500:]}"
                )
    assert len(subcommands) >= 5, subcommands
    assert not failures, "\n".join(failures)


def make_targets() -> list[str]:
    """The targets `make help` lists."""
    listing = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(set(re.findall(r"(?m)^  make ([a-z][a-z0-9-]*)", listing)))


def test_every_listed_make_target_dry_runs(tmp_path):
    targets = make_targets()
    assert {"demo", "test", "prepare", "eval", "merge-lora", "dialogue"} <= set(targets)
    failures = []
    for target in targets:
        proc = subprocess.run(
            ["make", "--no-print-directory", "-n", target, f"RUNS={tmp_path}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            failures.append(f"make -n {target}: exit {proc.returncode}\n{proc.stderr[-500:]}")
    assert not failures, "\n".join(failures)


def test_the_readmes_name_only_targets_that_exist():
    documented = set()
    for name in DOCUMENTS:
        if name.endswith(".md"):
            text = (REPO_ROOT / name).read_text(encoding="utf-8")
            documented.update(re.findall(r"`make ([a-z][a-z0-9-]*)", text))
    # `make export` is the old name of merge-lora, kept as an alias that warns
    missing = documented - set(make_targets()) - {"export"}
    assert len(documented) >= 20 and not missing, sorted(missing)


def test_the_old_export_name_warns_and_runs_merge_lora(tmp_path):
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "export", f"RUNS={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'make export' is now 'make merge-lora'" in proc.stdout + proc.stderr
    assert "make merge-lora: set ADAPTER" in proc.stdout  # the merge-lora recipe follows
