"""Benchmarks for `make bench`: figures are ratios measured within one run.

The machines are shared and noisy, so each figure compares our code with a baseline timed
in the same process, back to back: the series loader against the bare file reads it cannot
avoid (json.load of every file, np.load of every array).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from plugins.speaker_rec.series import SERIES_NAME, load_series


def bare_read(root: Path) -> int:
    """Read every JSON and .npy file of a series without validating anything."""
    n = 0
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            with path.open(encoding="utf-8") as f:
                json.load(f)
            n += 1
        elif path.suffix == ".npy":
            np.load(path)
            n += 1
    return n


def best_of(repeats: int, fn, *args) -> float:
    """Fastest of `repeats` wall-clock timings (the least disturbed by other load)."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(*args)
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_loader(data_dir: Path, name: str, repeats: int) -> dict:
    """Loader time, bare-read time and their ratio for one series."""
    loader = best_of(repeats, load_series, name, data_dir)
    bare = best_of(repeats, bare_read, data_dir / name)
    lines = len(load_series(name, data_dir))
    return {
        "series": name,
        "lines": lines,
        "load_s": round(loader, 3),
        "bare_read_s": round(bare, 3),
        "load_over_bare_read": round(loader / bare, 2),
        "lines_per_s": int(lines / loader),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark the series loader on every series found under the given "
        "drama_data directories; prints one JSON record per series.",
    )
    parser.add_argument("data_dirs", nargs="+", type=Path, help="directories holding <series>/ folders")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure, the best is kept")
    args = parser.parse_args(argv)
    found = False
    for data_dir in args.data_dirs:
        if not data_dir.is_dir():
            print(f"skip {data_dir}: not present", file=sys.stderr)
            continue
        for sub in sorted(p.parent for p in data_dir.glob("*/subtitle_data")):
            if SERIES_NAME.match(sub.name):
                found = True
                print(json.dumps(bench_loader(data_dir, sub.name, args.repeats)), flush=True)
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
