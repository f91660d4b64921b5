"""The repository root, in one place for every test and helper (`from repo_paths import REPO_ROOT`;
tests/ is on sys.path through tests/conftest.py). Tools and recipes treat it as the working
directory."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
