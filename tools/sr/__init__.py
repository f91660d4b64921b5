"""Speaker recognition (SR): prepare, traces, split, export, eval, report, rl, serve.

Commands: `python -m tools.sr <command> --help`; libraries beside the commands they serve.
"""
