"""Command line of role-play characters: `python -m tools.roleplay <command> --help`.

Converters into LLaMA-Factory datasets (rolebench, character, dialogue), the persona prompt and
chat config (persona), the persona regression bank (regress). See tools/roleplay/README.md.
"""

import sys

from tools.common.commands import Command, dispatch

COMMANDS = {
    "rolebench": Command(
        "tools.roleplay.rolebench", "RoleBench JSONL + profiles -> LLaMA-Factory SFT dataset"
    ),
    "character": Command(
        "tools.roleplay.character", "a character's voice lines + settings -> SFT datasets"
    ),
    "dialogue": Command(
        "tools.roleplay.dialogue", "a character's dialogue in novels / fan fiction -> ShareGPT"
    ),
    "persona": Command(
        "tools.roleplay.persona", "a RoleBench role's persona prompt; write a chat config"
    ),
    "regress": Command(
        "tools.roleplay.regress", "run a persona regression bank against a model or endpoint"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m tools.roleplay", "Role-play characters.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
