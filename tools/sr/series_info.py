"""Validate a series and print what it holds: `make series-info SERIES=... DATA_DIR=...`.

Exit status 0 when the series loads (what it tolerated is logged as warnings on stderr and listed
under "warnings"), 2 with `file: where: reason` on stderr when it does not.
"""

import argparse
import collections
import json
import logging
import sys
import time

from plugins.speaker_rec.series import Series, SeriesError
from tools.common.series_args import add_series_args, load_series_from_args


def summarize(series: Series) -> dict:
    """Counts a person checks first when handed a new series."""
    kinds = collections.Counter(line.kind.value for line in series.lines)
    speakers = collections.Counter(
        line.speaker for line in series.lines if line.kind.value in ("named", "unnamed")
    )
    durations = sorted(line.duration for line in series.lines)
    return {
        "series": series.name,
        "language": series.language,
        "episodes": len(series.episodes),
        "lines": len(series.lines),
        "lines_by_kind": dict(sorted(kinds.items())),
        "non_finite_embedding_rows": int((~series.embedding_ok).sum()),
        "embedding_dim": int(series.embeddings.shape[1]),
        "median_line_seconds": round(durations[len(durations) // 2], 3),
        "timeline_hours": round(
            (series.episodes[-1].abs_offset + series.episodes[-1].end - series.episodes[-1].start)
            / 3600,
            2,
        ),
        "known_characters": len(series.known_characters),
        "overlapped_lines": sum(line.overlap for line in series.lines),
        "lines_with_auxiliary_text": sum(bool(line.auxiliary_text) for line in series.lines),
        "top_speakers": dict(speakers.most_common(10)),
        "parts": {
            "faces": series.faces is not None,
            "relations": series.relations is not None,
            "captions": series.captions is not None,
        },
        "face_detections": len(series.faces.names) if series.faces else 0,
        "relations": len(series.relations.edges) if series.relations else 0,
        "captions": {"brief": len(series.captions.brief), "detailed": len(series.captions.detailed)}
        if series.captions
        else None,
        "seed_files": series.seed_files,
        "warnings": series.warnings,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.series_info",
        description="Load a DramaSR-LRM series (drama_data/<series>/), validate every file, "
        "and print a JSON summary. Exits 2 naming the file and reason when the series is "
        "malformed.",
    )
    add_series_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load and validate the series, print its JSON summary; 2 when it is malformed."""
    started = time.perf_counter()
    try:
        series = load_series_from_args(args)
    except SeriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = summarize(series)
    summary["load_seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
