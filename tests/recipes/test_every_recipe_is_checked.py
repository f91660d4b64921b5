"""Every file shipped under recipes/ is checked by a test module of tests/recipes/.

Each module here lists what it checks in a module-level `RECIPES` (paths); a new recipe file, or
a new recipe folder, fails this test until a module checks it with the upstream parser."""

import importlib
from pathlib import Path

from repo_paths import REPO_ROOT

HERE = REPO_ROOT / "tests" / "recipes"


def checked_files() -> dict[Path, list[str]]:
    """recipe file -> the test modules that declare checking it."""
    checked: dict[Path, list[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        if path.stem == Path(__file__).stem:
            continue
        module = importlib.import_module(
            path.stem
        )  # tests/recipes is on sys.path for its own tests
        for recipe in getattr(module, "RECIPES", []):
            checked.setdefault(Path(recipe).resolve(), []).append(path.name)
    return checked


def test_every_recipe_file_has_a_check():
    shipped = sorted(p.resolve() for p in (REPO_ROOT / "recipes").rglob("*") if p.is_file())
    checked = checked_files()
    unchecked = [str(p.relative_to(REPO_ROOT)) for p in shipped if p not in checked]
    assert not unchecked, f"recipe files no test in tests/recipes/ checks: {unchecked}"


def test_every_declared_check_is_a_shipped_file():
    missing = [str(p) for p in checked_files() if not p.is_file()]
    assert not missing
