"""Environment stacks as data: the declarations in envs/<stack>.toml and their lock files.

Each stack (cpu, cuda-sft, cuda-rl) is declared once, in envs/<stack>.toml: its top-level
requirements, what a user's own environment of that stack must provide ([check]), and for the CPU
stack the install steps it needs. envs/<stack>.lock is what `make lock` resolved from it for the
Linux x86_64 platform: exact versions and hashes, with the declaration's digest in its header.

Standard library only (install_env runs under the bare system Python), except for version
comparison, which takes `packaging` where installed and pip's vendored copy otherwise.
"""

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # the system Python before any environment exists: pip's own copy
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[2]
ENVS_DIR = ROOT / "envs"
STACKS = ("cpu", "cuda-sft", "cuda-rl")
# The platform every lock is resolved for: GPU clusters are Linux x86_64 with glibc >= 2.28.
LOCK_PLATFORM = "x86_64-manylinux_2_28"
LOCK_PYTHON = "3.11"
DIGEST_PREFIX = "# declaration-sha256: "
STAMP_PREFIX = ".dramakit-install-"
INSTALLER_REQUIREMENTS = ENVS_DIR / "installer.txt"
UV_TOOL_ENV = ROOT / ".cache" / "tools" / "uv"
_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*?)\s*(?:;.*)?$"
)
_LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


class SpecError(Exception):
    """A declaration or lock file is broken; the message names the file and the reason."""


class EnvError(Exception):
    """An environment cannot be used or built; the message lists why."""


def canonical(name: str) -> str:
    """A distribution name as the registry compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    """One requirement line: name, extras and version specifier (markers are not used here)."""

    name: str
    extras: tuple[str, ...]
    specifier: str

    @classmethod
    def parse(cls, text: str, where: str) -> "Requirement":
        match = _REQUIREMENT.match(text)
        if not match:
            raise SpecError(f"{where}: {text!r} is not a requirement")
        extras = tuple(e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip())
        spec = match.group(3).replace(" ", "")
        try:
            SpecifierSet(spec)
        except Exception:
            raise SpecError(f"{where}: {text!r} has an invalid version specifier") from None
        return cls(canonical(match.group(1)), extras, spec)

    def admits(self, version: str) -> bool:
        """Whether `version` satisfies the specifier (a local label like +cpu counts as the
        release)."""
        try:
            return Version(version) in SpecifierSet(self.specifier, prereleases=True)
        except InvalidVersion:
            return False

    def __str__(self) -> str:
        return (
            f"{self.name}{'[' + ','.join(self.extras) + ']' if self.extras else ''}{self.specifier}"
        )


@dataclass
class Stack:
    """One environment stack, as envs/<name>.toml declares it."""

    name: str
    path: Path
    requirements: list[str]
    imports: list[str]
    versions: list[Requirement]
    install: dict = field(default_factory=dict)

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    def digest(self) -> str:
        """A digest of what the lock is resolved from: the requirements and the lock platform."""
        blob = json.dumps(
            {"requirements": self.requirements, "platform": LOCK_PLATFORM, "python": LOCK_PYTHON},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def parsed_requirements(self) -> list[Requirement]:
        return [Requirement.parse(text, str(self.path)) for text in self.requirements]


def load_stack(name: str, envs_dir: Path = ENVS_DIR) -> Stack:
    """Read envs/<name>.toml; raises SpecError naming the file for anything missing."""
    path = envs_dir / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"{path}: no such stack declaration (stacks: {', '.join(STACKS)})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        requirements = list(data["stack"]["requirements"])
        check = data["check"]
        versions = [Requirement.parse(text, str(path)) for text in check["versions"]]
        stack = Stack(
            name,
            path,
            requirements,
            list(check["imports"]),
            versions,
            dict(data.get("install", {})),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise SpecError(f"{path}: not a stack declaration ({type(e).__name__}: {e})") from None
    stack.parsed_requirements()
    return stack


def read_lock(path: Path) -> tuple[dict[str, str], str | None]:
    """The exact versions a lock file pins ({canonical name: version}) and the declaration digest
    its header records. Raises SpecError for a missing file or a pin without hashes."""
    if not path.is_file():
        raise SpecError(f"{path}: lock file is missing (run `make lock`)")
    pins: dict[str, str] = {}
    digest = None
    current = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(DIGEST_PREFIX):
            digest = line[len(DIGEST_PREFIX) :].strip()
        match = _LOCKED.match(line)
        if match:
            if current is not None and not current[2]:
                raise SpecError(
                    f"{path}:{current[1]}: {current[0]} has no --hash (the lock needs hashes)"
                )
            pins[canonical(match.group(1))] = match.group(2)
            current = [match.group(1), number, "--hash=" in line]
        elif current is not None and "--hash=" in line:
            current[2] = True
    if current is not None and not current[2]:
        raise SpecError(f"{path}:{current[1]}: {current[0]} has no --hash (the lock needs hashes)")
    if not pins:
        raise SpecError(f"{path}: pins nothing")
    return pins, digest


def lock_disagreements(stack: Stack) -> list[str]:
    """Why the stack's lock does not match its declaration (empty when it does): a declared
    requirement the lock lacks or pins outside its specifier, or a declaration changed since."""
    pins, digest = read_lock(stack.lock_path)
    problems = []
    if digest != stack.digest():
        problems.append(
            f"{stack.lock_path.name} was resolved from another declaration than {stack.path.name} "
            "(run `make lock`)"
        )
    for requirement in stack.parsed_requirements():
        version = pins.get(requirement.name)
        if version is None:
            problems.append(f"{requirement}: not in {stack.lock_path.name}")
        elif not requirement.admits(version):
            problems.append(f"{requirement}: {stack.lock_path.name} pins {version}")
    return problems


def version_problems(installed: dict[str, str | None], wanted: list[Requirement]) -> list[str]:
    """What an environment lacks: each wanted requirement missing or at a version outside it."""
    problems = []
    for requirement in wanted:
        version = installed.get(requirement.name)
        if version is None:
            problems.append(f"{requirement.name}: not installed (needs {requirement})")
        elif not requirement.admits(version):
            problems.append(f"{requirement.name}: {version} installed, needs {requirement}")
    return problems


# ---- the installer
# ---------------------------------------------------------------------------------


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def run_echoed(cmd: list[str], **kwargs) -> None:
    """Run a command, echoing it; a failure raises EnvError naming the command."""
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, **kwargs)
    if result.returncode != 0:
        raise EnvError(f"{' '.join(cmd[:5])} ... exited with {result.returncode}")


def uv() -> Path:
    """uv from envs/installer.txt, in a tool environment of our own under .cache (made on first
    use)."""
    binary = UV_TOOL_ENV / "bin" / "uv"
    stamp = UV_TOOL_ENV / (
        STAMP_PREFIX + hashlib.sha256(INSTALLER_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    )
    if not stamp.exists():
        if not python_of(UV_TOOL_ENV).exists():
            run_echoed([sys.executable, "-m", "venv", str(UV_TOOL_ENV)])
        run_echoed(
            [
                str(python_of(UV_TOOL_ENV)),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(INSTALLER_REQUIREMENTS),
            ]
        )
        stamp.touch()
    return binary
