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


def has_main_guard(path: Path) -> bool:
    """Whether the module has a top-level `if __name__ == "__main__":` (not merely the words)."""
    return any(
        isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
        for node in ast.parse(path.read_text(encoding="utf-8")).body
    )


def commands() -> set[str]:
    return {
        module_name(path)
        for path in python_files("tools")
        if path.name != "__main__.py" and has_main_guard(path)
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


def is_dispatcher(path: Path) -> bool:
    """A line's `__main__.py` that only hands its command line to one of its commands."""
    return path.name == "__main__.py" and "tools.common.commands" in imported_modules(path)


def dispatched_modules() -> set[str]:
    """The modules the lines' dispatchers list: the first argument of each `Command(...)`."""
    found = set()
    for path in python_files("tools"):
        if not is_dispatcher(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Command"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def command_modules() -> dict[str, Path]:
    """Every command: what a dispatcher lists, and every module with a `__main__` guard (a
    dispatcher itself excepted), under tools/, plugins/ and rewards/."""
    paths = {
        module_name(path): path
        for folder in ("tools", "plugins", "rewards")
        for path in python_files(folder)
    }
    guarded = {
        name for name, path in paths.items() if not is_dispatcher(path) and has_main_guard(path)
    }
    listed = dispatched_modules()
    assert listed <= set(paths), (
        f"dispatchers list modules that do not exist: {listed - set(paths)}"
    )
    return {name: paths[name] for name in sorted(guarded | listed)}


def skeleton_problems(path: Path) -> list[str]:
    """How a command module departs from the skeleton: `build_parser()` returns its parser,
    `main(argv=None)` parses, sets up logging and calls `run(args)`, which does the work and
    returns the exit status; the module ends with `sys.exit(main())` under its `__main__` guard."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    problems = []
    parser = functions.get("build_parser")
    if parser is None or parser.args.args[: len(parser.args.args) - len(parser.args.defaults)]:
        problems.append("no build_parser() (taking no required argument)")
    main = functions.get("main")
    if main is None or [a.arg for a in main.args.args] != ["argv"] or len(main.args.defaults) != 1:
        problems.append("no main(argv=None)")
    run = functions.get("run")
    if run is None or not run.args.args or run.args.args[0].arg != "args":
        problems.append("no run(args)")
    elif main is not None and not any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run"
        for node in ast.walk(main)
    ):
        problems.append("main does not call run")
    guard = ast.unparse(tree.body[-1]) if tree.body else ""
    if guard != "if __name__ == '__main__':\n    sys.exit(main())":
        problems.append("does not end with `if __name__ == '__main__': sys.exit(main())`")
    return problems


def test_the_skeleton_finds_the_commands():
    found = command_modules()
    for expected in (
        "tools.sr.split",
        "tools.sr.report",
        "tools.style.__main__",
        "tools.roleplay.regress_bank",
        "tools.dev.bench_prepare",
        "plugins.speaker_rec.server",
    ):
        assert expected in found
    assert "tools.sr.__main__" not in found and "tools.common.commands" not in found
    assert "tools" not in found  # its docstring quotes the guard; it has none


def test_every_command_has_the_skeleton():
    violations = [
        f"{path.relative_to(REPO_ROOT)}: {problem}"
        for path in command_modules().values()
        for problem in skeleton_problems(path)
    ]
    assert not violations, "\n".join(violations)


def test_the_skeleton_check_fails_a_command_without_it(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text(
        "import argparse\nimport sys\n\n\ndef main():\n    argparse.ArgumentParser().parse_args()\n"
        "    return 0\n\n\nif __name__ == '__main__':\n    main()\n",
        encoding="utf-8",
    )
    assert len(skeleton_problems(bare)) == 4
    assert skeleton_problems(REPO_ROOT / "tools" / "sr" / "split.py") == []
