"""Environment stacks: every lock agrees with its declaration, and a user's own environment is
checked and left byte for byte as it was (by tools.dev.install_env and by `make install`)."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT
from tools.dev.envspec import STACKS, Requirement, load_stack, lock_disagreements, read_lock


@pytest.mark.parametrize("name", STACKS)
def test_lock_agrees_with_its_declaration(name):
    stack = load_stack(name)
    assert lock_disagreements(stack) == []
    pins, _ = read_lock(stack.lock_path)
    for requirement in stack.parsed_requirements():
        assert requirement.admits(pins[requirement.name]), requirement


def test_the_stacks_pin_what_the_design_measured():
    """The versions each stack resolves to (DESIGN §3): they conflict, hence three environments."""
    cpu, sft, rl = (read_lock(load_stack(name).lock_path)[0] for name in STACKS)
    assert (cpu["transformers"], cpu["torch"], cpu["llamafactory"], cpu["verl"]) == (
        "5.5.4",
        "2.13.0",
        "0.9.5",
        "0.9.1",
    )
    assert sft["transformers"] == "5.6.0" and sft["deepspeed"] == "0.16.9" and "bitsandbytes" in sft
    assert (rl["transformers"], rl["vllm"], rl["torch"], rl["verl"]) == (
        "5.9.0",
        "0.24.0",
        "2.11.0",
        "0.9.1",
    )
    assert "vllm" not in sft and "llamafactory" not in rl


def _copy_envs(tmp_path: Path) -> Path:
    envs = tmp_path / "envs"
    shutil.copytree(REPO_ROOT / "envs", envs)
    return envs


def test_a_changed_declaration_or_lock_is_caught(tmp_path):
    envs = _copy_envs(tmp_path)
    declaration = envs / "cuda-rl.toml"
    declaration.write_text(
        declaration.read_text().replace('"verl[vllm]==0.9.1"', '"verl[vllm]==0.9.2"')
    )
    problems = lock_disagreements(load_stack("cuda-rl", envs))
    assert any("another declaration" in p for p in problems)
    assert "verl[vllm]==0.9.2: cuda-rl.lock pins 0.9.1" in problems

    envs = _copy_envs(tmp_path / "second")
    lock = envs / "cuda-sft.lock"
    lock.write_text(lock.read_text().replace("llamafactory==0.9.5 ", "llamafactory==0.9.4 "))
    assert lock_disagreements(load_stack("cuda-sft", envs)) == [
        "llamafactory==0.9.5: cuda-sft.lock pins 0.9.4"
    ]


def test_a_lock_without_hashes_is_refused(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("torch==2.13.0\n")
    with pytest.raises(Exception, match="has no --hash"):
        read_lock(lock)


def test_requirement_versions_admit_local_builds():
    assert Requirement.parse("torch==2.13.0", "t").admits("2.13.0+cpu")
    assert not Requirement.parse("transformers>=5.5,<=5.6.0", "t").admits("5.9.0")
    assert Requirement.parse("verl[vllm]==0.9.1", "t").extras == ("vllm",)


# ---- a user's own environment ------------------------------------------------------------------


def _fake_env(root: Path, dists: dict[str, str]) -> Path:
    """A bare venv (no pip) holding importable stand-in packages with the given versions."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python3*/site-packages"))
    for name, version in dists.items():
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"__version__ = {version!r}\n")
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root with its content hash (links by their target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _install_env(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.dev.install_env", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )


def test_a_foreign_env_is_checked_listed_and_left_unchanged(tmp_path):
    env = _fake_env(
        tmp_path / "theirs", {"transformers": "4.0.0", "peft": "0.18.1", "datasets": "4.0.0"}
    )
    before = _snapshot(env)

    result = _install_env("ensure", "--stack", "cpu", "--venv", str(env))
    assert result.returncode == 2
    assert "never modified" in result.stderr
    assert "transformers: 4.0.0 installed, needs transformers>=5.5,<5.7" in result.stderr
    assert "llamafactory: not installed (needs llamafactory>=0.9.5,<0.10)" in result.stderr
    assert "import torch: ModuleNotFoundError: No module named 'torch'" in result.stderr
    assert "peft:" not in result.stderr and "import peft" not in result.stderr  # present and fine

    refused = _install_env("install", "--stack", "cuda-rl", "--venv", str(env))
    assert refused.returncode == 2 and "never installed into" in refused.stderr

    # The missing install stamp no longer makes `make install` install into it.
    made = subprocess.run(
        ["make", "install", f"VENV={env}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode != 0
    assert "llamafactory: not installed" in made.stderr
    assert _snapshot(env) == before


def test_a_complete_foreign_env_is_used_as_is(tmp_path):
    stack = load_stack("cuda-rl")
    wanted = {r.name: r for r in stack.versions}
    versions = {
        "verl": "0.9.1",
        "vllm": "0.24.0",
        "ray": "2.60.0",
        "transformers": "5.9.0",
        "datasets": "5.2.0",
        "torch": "2.11.0",
        "tensordict": "0.10.0",
    }
    assert all(wanted[name].admits(versions[name]) for name in wanted)
    env = _fake_env(tmp_path / "theirs", versions)
    before = _snapshot(env)
    for _ in range(2):  # the second answer comes from the cached check
        result = _install_env("ensure", "--stack", "cuda-rl", "--venv", str(env))
        assert result.returncode == 0, result.stderr
        assert "used as is" in result.stdout
    assert _snapshot(env) == before
    check = _install_env("check", "--stack", "cuda-sft", "--venv", str(env))
    assert check.returncode == 1 and "llamafactory: not installed" in check.stderr
    assert _snapshot(env) == before


def test_the_running_cpu_environment_is_what_its_lock_records():
    """make install builds with pip (the CPU torch build), constrained to envs/cpu.lock: every
    installed distribution the lock names is at the locked version."""
    from importlib import metadata

    from tools.dev.envspec import canonical

    mark = Path(sys.prefix) / ".dramakit-env"
    if not mark.is_file() or mark.read_text().strip() != "cpu":
        pytest.skip(f"{sys.prefix} is not a cpu environment built by tools.dev.install_env")
    pins, _ = read_lock(load_stack("cpu").lock_path)
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    off = {
        name: (version, pins[name])
        for name, version in installed.items()
        if name in pins and version.split("+")[0] != pins[name]
    }
    assert off == {}, off
    assert installed["torch"].startswith("2.13.0")
