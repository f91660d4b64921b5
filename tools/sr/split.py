"""Seeded split manifest for speaker recognition: `make split SERIES=...`.

Assigns the labelled lines of a series to four parts (sft, rl_train, rl_val, eval) by whole
episodes (or, with --block-lines, contiguous blocks of lines), so no two lines in different
parts share context. A prompt shows ±30 non-deleted lines around its target and the context runs
across episode boundaries, so wherever two neighbouring units fall into different parts, the
30 lines on each side of the boundary are dropped (and counted): any two kept lines of different
parts are then more than 60 lines apart and their context windows share no line.

The manifest (JSON, atomic) records the series, seed, ratios, and per part its episodes, kept
line ranges [first, last] (global indices, inclusive), line count and counts per sample type.
Export reads it back with `read_split`.
"""

import argparse
import collections
import logging
import random
import sys
from pathlib import Path

from plugins.speaker_rec.labelfile import SAMPLE_TYPES
from plugins.speaker_rec.prompts import CONTEXT_WINDOW
from plugins.speaker_rec.series import SeriesError
from tools.common.fileio import atomic_write_json
from tools.common.series_args import add_series_args, load_series_and_labels
from tools.sr.selection import parse_named_numbers
from tools.sr.split_manifest import FORMAT, PARTS

logger = logging.getLogger(__name__)

DEFAULT_RATIOS = "sft=0.6,rl_train=0.2,rl_val=0.05,eval=0.15"


def parse_ratios(spec: str) -> dict[str, float]:
    """'sft=0.6,eval=0.4' → a ratio for every part (unnamed parts 0); they must sum to 1."""
    ratios = parse_named_numbers(spec, PARTS, "--ratios")
    for name, ratio in ratios.items():
        if ratio < 0:
            raise ValueError(f"--ratios: ratio of {name!r} is negative")
    if abs(sum(ratios.values()) - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1, not {sum(ratios.values()):g}")
    return ratios


def _units(series, kept: list[int], block_lines: int) -> list[list[int]]:
    """Positions (into `kept`) grouped by episode, or in runs of `block_lines`."""
    if block_lines:
        return [
            list(range(i, min(i + block_lines, len(kept))))
            for i in range(0, len(kept), block_lines)
        ]
    by_episode = collections.defaultdict(list)
    for position, index in enumerate(kept):
        by_episode[series.lines[index].episode].append(position)
    return [by_episode[e] for e in sorted(by_episode)]


def assign(n_lines_per_unit: list[int], ratios: dict[str, float], seed: int) -> list[str]:
    """The part of each unit: units in a seeded order, each to the part furthest below its
    target line count (ties by part order). Deterministic for a seed."""
    total = sum(n_lines_per_unit)
    order = list(range(len(n_lines_per_unit)))
    random.Random(seed).shuffle(order)
    filled = dict.fromkeys(PARTS, 0)
    parts = [""] * len(order)
    wanted = [p for p in PARTS if ratios[p] > 0]
    for unit in order:
        part = max(wanted, key=lambda p: (ratios[p] * total - filled[p], -PARTS.index(p)))
        parts[unit] = part
        filled[part] += n_lines_per_unit[unit]
    return parts


def build_manifest(
    series,
    labels,
    ratios: dict[str, float],
    seed: int,
    block_lines: int = 0,
    gap: int = CONTEXT_WINDOW,
) -> dict:
    """The split manifest for `series` and its `labels` (a LabelFile)."""
    kept = [line.index for line in series.lines if not line.deleted and line.index in labels.lines]
    units = _units(series, kept, block_lines)
    unit_parts = assign([len(u) for u in units], ratios, seed)
    part_at = [""] * len(kept)
    for unit, part in zip(units, unit_parts, strict=True):
        for position in unit:
            part_at[position] = part
    # Drop by position, not by unit: a unit shorter than the gap must not let its neighbours close
    # in.
    dropped = set()
    for boundary in range(1, len(kept)):
        if part_at[boundary - 1] != part_at[boundary]:
            dropped.update(range(max(0, boundary - gap), min(len(kept), boundary + gap)))
    parts = {
        p: {
            "ratio": ratios[p],
            "episodes": [],
            "blocks": [],
            "lines": 0,
            "sample_types": dict.fromkeys(SAMPLE_TYPES, 0),
        }
        for p in PARTS
    }
    gap_counts = dict.fromkeys(SAMPLE_TYPES, 0)
    previous = None  # (part, position) of the last kept line, to extend or start a block
    for position, index in enumerate(kept):
        sample_type = labels.lines[index].sample_type
        if position in dropped:
            gap_counts[sample_type] += 1
            continue
        part = parts[part_at[position]]
        part["lines"] += 1
        part["sample_types"][sample_type] += 1
        episode = series.lines[index].episode
        if not part["episodes"] or part["episodes"][-1] != episode:
            part["episodes"].append(episode)
        if previous == (part_at[position], position - 1):
            part["blocks"][-1][1] = index
        else:
            part["blocks"].append([index, index])
        previous = (part_at[position], position)
    for part in parts.values():
        part["episodes"] = sorted(set(part["episodes"]))
    return {
        "format": FORMAT,
        "series": series.name,
        "seed": seed,
        "ratios": ratios,
        "unit": f"block of {block_lines} lines" if block_lines else "episode",
        "context_window": CONTEXT_WINDOW,
        "gap_lines_each_side": gap,
        "lines_labelled": len(kept),
        "parts": parts,
        "dropped_in_gaps": {"lines": len(dropped), "sample_types": gap_counts},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.split",
        description="Assign the lines of a series to sft / rl_train / rl_val / eval by whole "
        "episodes (or contiguous blocks), dropping --gap-lines lines (default 30) on each side of "
        "every boundary between parts so that "
        "no two lines in different parts share context. Writes a JSON manifest (atomic).",
    )
    add_series_args(parser, labels=True)
    parser.add_argument("--out", required=True, type=Path, help="split manifest to write (JSON)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the order in which units are assigned"
    )
    parser.add_argument(
        "--ratios", default=DEFAULT_RATIOS, help="share of lines per part (default: %(default)s)"
    )
    parser.add_argument(
        "--block-lines",
        type=int,
        default=0,
        help="split by contiguous blocks of this many lines instead of whole episodes "
        "(for series with few episodes); 0 = episodes (default)",
    )
    parser.add_argument(
        "--gap-lines",
        type=int,
        default=CONTEXT_WINDOW,
        help="lines dropped on each side of a boundary between parts (default: the prompt's "
        "context window, %(default)s; less lets parts share context: for tiny demo series only)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.block_lines < 0 or args.gap_lines < 0:
        parser.error("--block-lines and --gap-lines must be >= 0")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Assign the series' lines to the parts and write the manifest; 2 on bad input."""
    try:
        ratios = parse_ratios(args.ratios)
        series, labels = load_series_and_labels(args)
    except (SeriesError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    manifest = build_manifest(series, labels, ratios, args.seed, args.block_lines, args.gap_lines)
    if args.gap_lines < CONTEXT_WINDOW:
        logger.warning(
            "--gap-lines %d < the context window %d: prompts of different parts share lines",
            args.gap_lines,
            CONTEXT_WINDOW,
        )
    atomic_write_json(args.out, manifest, indent=1)
    for part in PARTS:
        if ratios[part] > 0 and not manifest["parts"][part]["lines"]:
            logger.warning(
                "part %s got no lines: units are too coarse for its ratio (try --block-lines)", part
            )
    summary = ", ".join(f"{p} {manifest['parts'][p]['lines']}" for p in PARTS)
    logger.info(
        "%s: %s; %d lines dropped in gaps -> %s",
        args.series,
        summary,
        manifest["dropped_in_gaps"]["lines"],
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
