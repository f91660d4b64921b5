"""Role-play characters: RoleBench, character and dialogue converters, persona, regression bank.

Commands: `python -m tools.roleplay <command> --help`.
"""
