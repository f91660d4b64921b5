"""The layout rules of DESIGN.md §2, enforced: a command never imports another command (libraries
sit beside the commands they serve); plugins/ and rewards/, which upstream loads at run time,
import nothing from tools/; every test file sits under the folder of the tree it mirrors.

A command is a module under tools/ that runs as `python -m` (it has a `__main__` guard); a
line's `__main__.py` dispatcher is not one. tools/dev/ is the harness that measures commands (the
benchmarks run prepare and each other), so its own imports are not held to the rule; nothing may
import a dev command either."""

import ast
from pathlib import Path

from repo_paths import REPO_ROOT

# Test files at the root of tests/ check the repository as a whole.
REPOSITORY_WIDE_TESTS = {"test_layout.py", "test_command_help.py"}
# Folders of tests/ that mirror no source folder: acceptance runs that start upstream components.
UNMIRRORED = {"e2e"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (`from a import b` counts as a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def commands() -> set[str]:
    return {
        module_name(path)
        for path in python_files("tools")
        if path.name != "__main__.py"
        and '__name__ == "__main__"' in path.read_text(encoding="utf-8")
    }


def test_the_lines_have_commands():
    found = commands()
    for expected in (
        "tools.sr.prepare",
        "tools.sr.evaluate",
        "tools.roleplay.dialogue",
        "tools.dev.tiny_model",
    ):
        assert expected in found


def test_no_command_imports_another_command():
    found = commands()
    violations = []
    for path in python_files("tools"):
        name = module_name(path)
        if path.name == "__main__.py" or name.startswith("tools.dev."):
            continue
        for imported in sorted(imported_modules(path) & found - {name}):
            violations.append(f"{path.relative_to(REPO_ROOT)} imports the command {imported}")
    assert not violations, "move what is shared into a library beside the commands:\n" + "\n".join(
        violations
    )


def test_plugins_and_rewards_import_nothing_from_tools():
    violations = [
        f"{path.relative_to(REPO_ROOT)} imports {imported}"
        for folder in ("plugins", "rewards")
        for path in python_files(folder)
        for imported in sorted(imported_modules(path))
        if imported == "tools" or imported.startswith("tools.")
    ]
    assert not violations, "\n".join(violations)


def test_every_test_file_sits_under_the_folder_it_mirrors():
    misplaced = []
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        folder = path.parent.relative_to(REPO_ROOT / "tests")
        if folder == Path("."):
            if path.name not in REPOSITORY_WIDE_TESTS:
                misplaced.append(str(path.relative_to(REPO_ROOT)))
        elif folder.parts[0] not in UNMIRRORED and not (REPO_ROOT / folder).is_dir():
            misplaced.append(str(path.relative_to(REPO_ROOT)))
    assert not misplaced, f"test files outside the folder they mirror: {misplaced}"


def test_test_file_names_are_unique():
    # pytest imports test modules by their base name (tests/ has no packages)
    names = [path.name for path in (REPO_ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
