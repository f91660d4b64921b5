"""Command lines of dramakit, one package per product line: `python -m tools.<line> <command>
--help` for sr, roleplay and style; shared mechanisms in tools.common, developer tools in
tools.dev.

Every command module has one skeleton (tests/test_layout.py enforces it): `build_parser()`
returns its argparse parser; `main(argv=None)` parses, refuses options that do not go together
(usage error, exit 2), sets up logging (every user command; some dev tools only print) and
returns `run(args)`; `run(args)` does the work and returns the exit status, with bad input a
one-line `error: ...` on stderr, never a traceback; the module ends with
`if __name__ == "__main__": sys.exit(main())`."""
