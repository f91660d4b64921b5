"""Validate regression bank files without running them:
`python -m tools.roleplay.regress_bank BANK...`.

The bank format and its checks are documented in `tools.roleplay.bank`.
"""

import argparse
import logging
import sys

from tools.roleplay.bank import BankError, load_bank


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.regress_bank",
        description="Validate regression bank files (JSONL cases with checks; the format is in "
        "tools.roleplay.bank's docstring) without running them. Exit 0 when every file is valid, "
        "2 otherwise. "
        "Run a bank against a model with `python -m tools.roleplay.regress`.",
    )
    parser.add_argument(
        "banks", nargs="+", metavar="BANK", help="bank files, e.g. data/regression/孙悟空.jsonl"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Validate bank files: exit 0 with a case count per file, 2 listing every
    'file:line: reason'."""
    status = 0
    for bank in args.banks:
        try:
            cases = load_bank(bank)
        except BankError as e:
            for problem in e.problems:
                print(f"error: {problem}", file=sys.stderr)
            status = 2
            continue
        print(f"{bank}: {len(cases)} cases, valid")
    return status


if __name__ == "__main__":
    sys.exit(main())
