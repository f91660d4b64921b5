"""recipes/rl/tools*.yaml, built by verl's own `initialize_tools_from_config` (what verl's tool
agent loop calls): each names every SR tool once, in the toolset's order, in one language, and the
schema verl sends the model is the one our toolset offers in SFT and eval for that language."""

import pytest
import yaml

from plugins.speaker_rec.protocol import TOOL_NAMES
from repo_paths import REPO_ROOT

RECIPES = sorted((REPO_ROOT / "recipes" / "rl").glob("tools*.yaml"))


def test_both_languages_ship():
    assert [path.name for path in RECIPES] == ["tools.yaml", "tools_en.yaml"]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_verl_builds_every_tool_in_one_language(path, monkeypatch):
    from verl.tools.tool_registry import initialize_tools_from_config

    monkeypatch.chdir(REPO_ROOT)
    built = initialize_tools_from_config(str(path.relative_to(REPO_ROOT)))
    assert [tool.name for tool in built] == list(TOOL_NAMES)
    languages = {tool.config["language"] for tool in built}
    assert languages == {"en" if path.stem.endswith("_en") else "zh"}
    declared = yaml.safe_load(path.read_text(encoding="utf-8"))["tools"]
    assert {entry["class_name"] for entry in declared} == {
        "plugins.speaker_rec.verl_tool.SpeakerRecTool"
    }
