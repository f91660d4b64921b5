"""Prepare on every series under the given directories, in one table: `make bench-prepare`.

Per series, prepare runs in a process of its own (wall time, CPU seconds and peak memory of
that process alone) and its labels.json summary gives the figures: lines, strict and candidate-aware
accuracy by our rules, strict accuracy by the published code's rule (overall, on lines under
1 s, on known and on other truths), overlapped lines, truth in the candidate list (or open-set)
and the median list length with "other". Where the reference file gives the published
propagation's figure for a series, it stands beside ours. With `--synthetic-lines`, prepare also
runs on a synthetic series that large built from the largest series found. Writes
bench_prepare.json and bench_prepare.md into `--out-dir`; exit status 1 when a target is missed.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plugins.speaker_rec.series import SERIES_NAME, load_series
from tools.common.fileio import atomic_write_json, atomic_write_text
from tools.dev.synthetic_series import build_synthetic

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO / "data" / "reference" / "dramasr_published.json"
# Targets on 2 cores: (lines up to, seconds, MiB): a whole drama, and a 60k-line synthetic series.
PREPARE_TARGETS = ((30_000, 20.0, 1024.0), (60_000, 45.0, 4096.0))

logger = logging.getLogger(__name__)


def run_measured(cmd: list[str]) -> tuple[float, float, float]:
    """Run a command; (wall seconds, CPU seconds, peak resident memory in MiB) of that process
    alone. CPU seconds tell more than wall time on a machine others are using."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode()[-2000:]}"
            )
    return (
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
    )  # ru_maxrss is in KiB on Linux


def prepare_command(data_dir: Path, name: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tools.sr.prepare",
        "--series",
        name,
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--quiet",
    ]


def target_for(lines: int) -> tuple[float, float] | None:
    """(seconds, MiB) a series of this many lines must meet, None beyond the largest target."""
    return next(((s, mib) for n, s, mib in PREPARE_TARGETS if lines <= n), None)


def row(
    name: str, labels: dict, seconds: float, cpu: float, mib: float, reference: dict | None
) -> dict:
    """One line of the table from a labels.json and its measurements."""
    summary = labels["summary"]
    rules, splits = summary["propagation"], summary["propagation_splits"]
    published = splits["published"]
    judged = summary["judged_lines"]
    target = target_for(labels["counts"]["lines"])
    out = {
        "series": name,
        "lines": labels["counts"]["lines"],
        "judged_lines": judged,
        "strict": rules["strict"]["overall"]["accuracy"],
        "candidate_aware": rules["candidate_aware"]["overall"]["accuracy"],
        "published_rule": rules["published"]["overall"]["accuracy"],
        "published_rule_under_1s": rules["published"]["by_duration"]["<1s"]["accuracy"],
        "published_rule_known_truths": published["known_truths"]["accuracy"],
        "published_rule_other_truths": published["other_truths"]["accuracy"],
        "published_rule_overlapped": published["overlapped"]["accuracy"],
        "overlapped_lines": published["overlapped"]["total"],
        "share_under_1s": round(100.0 * rules["strict"]["by_duration"]["<1s"]["total"] / judged, 2)
        if judged
        else None,
        "truth_in_candidates_or_open_set": summary["truth_in_candidates_or_open_set"],
        "median_list_with_other": summary["candidates"]["median_named"] + 1,
        "prepare_s": round(seconds, 1),
        "prepare_cpu_s": round(cpu, 1),
        "peak_mib": round(mib),
        "target": {"s": target[0], "mib": target[1]} if target else None,
        "within_target": (seconds <= target[0] and mib <= target[1]) if target else None,
    }
    if reference:
        out["reference"] = {
            key: reference[key]
            for key in ("strict", "under_1s", "known_truths", "other_truths")
            if key in reference
        }
        out["ahead_of_reference"] = {
            "published_rule": round(out["published_rule"] - reference["strict"], 2),
            "known_truths": round(
                out["published_rule_known_truths"] - reference["known_truths"], 2
            ),
        }
    return out


def find_series(data_dirs: list[Path]) -> list[tuple[Path, str]]:
    """(data dir, name) of every series folder under the directories that exist."""
    found = []
    for data_dir in data_dirs:
        if not data_dir.is_dir():
            logger.warning("skip %s: not present", data_dir)
            continue
        found += [
            (data_dir, p.parent.name)
            for p in sorted(data_dir.glob("*/subtitle_data"))
            if SERIES_NAME.match(p.parent.name)
        ]
    return found


def measure(data_dir: Path, name: str, work: Path, reference: dict | None) -> dict:
    out = work / f"{name}.labels.json"
    seconds, cpu, mib = run_measured(prepare_command(data_dir, name, out))
    return row(name, json.loads(out.read_text(encoding="utf-8")), seconds, cpu, mib, reference)


def measure_all(
    data_dirs: list[Path],
    reference_path: Path | None = DEFAULT_REFERENCE,
    synthetic_lines: int = 0,
    seed: int = 0,
) -> list[dict]:
    """Measure prepare on every series found (and a synthetic one); one row per series."""
    reference = {}
    if reference_path is not None and reference_path.exists():
        reference = json.loads(reference_path.read_text(encoding="utf-8"))["series"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        work = Path(tmp)
        found = find_series(data_dirs)
        for data_dir, name in found:
            logger.info("prepare %s", name)
            rows.append(measure(data_dir, name, work, reference.get(name)))
        if synthetic_lines and rows:
            largest = max(range(len(rows)), key=lambda i: rows[i]["lines"])
            data_dir, name = found[largest]
            synthetic = f"synthetic_{synthetic_lines}"
            logger.info("build %s from %s", synthetic, name)
            build_synthetic(load_series(name, data_dir), work, synthetic, synthetic_lines, seed)
            record = measure(work, synthetic, work, None)
            record["series"] = f"{synthetic} (from {name}, seed {seed})"
            rows.append(record)
    return rows


def _pct(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(rows: list[dict]) -> str:
    """The table; the published propagation's figure in brackets where the reference gives one."""

    def beside(r: dict, ours: str, theirs: str) -> str:
        ref = r.get("reference", {}).get(theirs)
        return _pct(r[ours]) + (f" ({ref:.2f})" if ref is not None else "")

    head = (
        "| series | lines | strict | candidate-aware | published rule | known truths | "
        "other truths | < 1 s "
        "| overlapped lines (published rule) | truth in candidates or open-set | median "
        "list | time (CPU) | peak memory |"
    )
    lines = [
        "# Prepare on every series",
        "",
        (
            "Accuracy in % on judged non-seed lines; in brackets the published "
            "propagation judged by its own "
            "rule (data/reference/dramasr_published.json). Known/other truths, < 1 s and "
            "overlapped lines by the published rule; the median list counts the other label."
        ),
        "",
        head,
        "|" + "|".join(["---"] + ["---:"] * 12) + "|",
    ]
    for r in rows:
        overlapped = (
            f"{r['overlapped_lines']} ({_pct(r['published_rule_overlapped'])})"
            if r["overlapped_lines"]
            else "0"
        )
        lines.append(
            f"| {r['series']} | {r['lines']:,} | {_pct(r['strict'])} | "
            f"{_pct(r['candidate_aware'])} | {beside(r, 'published_rule', 'strict')} | "
            f"{beside(r, 'published_rule_known_truths', 'known_truths')} "
            f"| {beside(r, 'published_rule_other_truths', 'other_truths')} "
            f"| {beside(r, 'published_rule_under_1s', 'under_1s')} | {overlapped} "
            f"| {_pct(r['truth_in_candidates_or_open_set'])} | {r['median_list_with_other']:g} "
            f"| {r['prepare_s']} s ({r['prepare_cpu_s']} s) | {r['peak_mib']} MiB |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.bench_prepare",
        description="Run prepare on every series under the given drama_data directories and write "
        "one table (JSON and Markdown) of its accuracy by our two rules and by the published "
        "code's rule, candidate "
        "coverage, wall time, CPU seconds and peak memory, beside the published propagation's "
        "figures.",
    )
    parser.add_argument(
        "data_dirs", nargs="+", type=Path, help="directories holding <series>/ folders"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("runs/bench_prepare"),
        help="where bench_prepare.json and bench_prepare.md go (default: %(default)s)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_REFERENCE,
        help="published figures per series (default: %(default)s)",
    )
    parser.add_argument(
        "--synthetic-lines",
        type=int,
        default=0,
        help="also prepare a synthetic series this large built from the largest one (0: none)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic series (default: %(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.synthetic_lines < 0:
        parser.error("--synthetic-lines must be 0 or more")
    if args.reference and not args.reference.exists():
        parser.error(f"--reference {args.reference} does not exist")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Prepare every series, write and print the table; 1 when a figure misses its target or no
    series is found, 2 when prepare fails."""
    try:
        rows = measure_all(args.data_dirs, args.reference, args.synthetic_lines, args.seed)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(
            "error: no series found under " + ", ".join(map(str, args.data_dirs)), file=sys.stderr
        )
        return 1
    atomic_write_json(args.out_dir / "bench_prepare.json", {"bench": "prepare", "rows": rows})
    atomic_write_text(args.out_dir / "bench_prepare.md", markdown(rows))
    print(markdown(rows))
    return 0 if all(r["within_target"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
