"""Command-line arguments speaker-recognition commands share: the series, where its data lives,
(for steps after prepare) its labels.json, and (for commands that let a model play the
environment: traces, eval) the protocol, language, turn limit and sampling. Not a command itself."""

import argparse
from pathlib import Path

from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import LabelFile, read_labels
from plugins.speaker_rec.protocol import PROTOCOLS
from plugins.speaker_rec.rules import RuleConfig
from plugins.speaker_rec.series import ReadPolicy, Series, load_series
from plugins.speaker_rec.series_files import DEFAULT_MAX_FILE_MB


def add_series_args(parser: argparse.ArgumentParser, *, labels: bool = False) -> None:
    """Add --series, --data-dir and how the series' files are read, and --labels when the
    command reads prepare's output."""
    parser.add_argument("--series", required=True, help="series name (an identifier, not a path)")
    parser.add_argument(
        "--data-dir", default="data/demo", help="directory holding <series>/ (default: %(default)s)"
    )
    parser.add_argument(
        "--max-file-mb",
        type=positive_float,
        default=DEFAULT_MAX_FILE_MB,
        help="refuse any file of the series larger than this (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-outside-links",
        action="store_true",
        help="follow symlinks that lead outside --data-dir (refused by default)",
    )
    if labels:
        parser.add_argument(
            "--labels", required=True, type=Path, help="labels.json written by tools.sr.prepare"
        )


def load_series_from_args(args: argparse.Namespace) -> Series:
    """The series named by the arguments of add_series_args; raises SeriesError naming the
    file and the reason."""
    policy = ReadPolicy(
        max_file_bytes=int(args.max_file_mb * 2**20), allow_outside_links=args.allow_outside_links
    )
    return load_series(args.series, args.data_dir, policy)


def load_series_and_labels(args: argparse.Namespace) -> tuple[Series, LabelFile]:
    """The series and its labels named by the arguments; raises SeriesError or ValueError
    naming the file and the reason."""
    series = load_series_from_args(args)
    return series, read_labels(args.labels, series)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def add_rollout_args(parser: argparse.ArgumentParser) -> None:
    """Add --protocol, --language, --max-turns and the sampling settings of each turn."""
    parser.add_argument("--protocol", choices=PROTOCOLS, default="hermes")
    parser.add_argument(
        "--language", choices=("zh", "en"), help="prompt language (default: the series')"
    )
    parser.add_argument("--max-turns", type=positive_int, default=RuleConfig.max_turns)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument(
        "--max-tokens", type=positive_int, default=1024, help="tokens per assistant turn"
    )


def rollout_env(args: argparse.Namespace, series: Series, labels: LabelFile) -> SpeakerEnv:
    """The environment the arguments of add_rollout_args describe."""
    return SpeakerEnv(
        series,
        labels.lines,
        protocol=args.protocol,
        language=args.language,
        rules=RuleConfig(max_turns=args.max_turns),
        known=labels.characters,
    )
