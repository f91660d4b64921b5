"""Command-line arguments every speaker-recognition command shares: the series, where its data
lives, and (for steps after prepare) its labels.json. Not a command itself."""

import argparse
from pathlib import Path

from plugins.speaker_rec.labelfile import LabelFile, read_labels
from plugins.speaker_rec.series import Series, load_series


def add_series_args(parser: argparse.ArgumentParser, *, labels: bool = False) -> None:
    """Add --series and --data-dir, and --labels when the command reads prepare's output."""
    parser.add_argument("--series", required=True, help="series name (an identifier, not a path)")
    parser.add_argument("--data-dir", default="data/demo", help="directory holding <series>/ (default: %(default)s)")
    if labels:
        parser.add_argument("--labels", required=True, type=Path, help="labels.json written by tools.prepare")


def load_series_and_labels(args: argparse.Namespace) -> tuple[Series, LabelFile]:
    """The series and its labels named by the arguments; raises SeriesError or ValueError
    naming the file and the reason."""
    series = load_series(args.series, args.data_dir)
    return series, read_labels(args.labels, series)
