"""One entry point per product line: `python -m tools.<line> <command> [args]`.

Each line's `__main__` holds a table of its commands (name -> module, summary); the dispatcher
imports only the command asked for and hands it the rest of the command line, so every command
keeps its own `--help`, flags and exit status, and `python -m tools.<line>.<module>` still works.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A command of a product line: the module whose `main(argv)` runs it, and what it does."""

    module: str
    summary: str


def usage(prog: str, description: str, commands: dict[str, Command]) -> str:
    """The help text: what the line does and its commands, one per line."""
    width = max(len(name) for name in commands)
    rows = "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in commands.items())
    return (
        f"usage: {prog} COMMAND [ARGS ...]\n\n{description}\n\ncommands:\n{rows}\n\n"
        f"`{prog} COMMAND --help` shows a command's own options."
    )


def dispatch(
    prog: str, description: str, commands: dict[str, Command], argv: list[str] | None = None
) -> int:
    """Run the command named by argv[0] with the rest of argv; exit status 2 for an unknown one."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog, description, commands), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = commands.get(name) or commands.get(name.replace("_", "-"))
    if command is None:
        print(
            f"{prog}: unknown command {name!r}; choose from {', '.join(commands)}", file=sys.stderr
        )
        return 2
    status = importlib.import_module(command.module).main(rest)
    return 0 if status is None else status
