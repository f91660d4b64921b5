"""Developer tools, apart from user commands: environment install, stand-ins, benchmarks, synthetic
and demo series, the tiny model.

Commands: `python -m tools.dev <command> --help`.
"""
