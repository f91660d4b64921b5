"""Command lines of dramakit, one package per product line: `python -m tools.<line> <command>
--help`
for sr, roleplay and style; shared mechanisms in tools.common, developer tools in tools.dev."""
