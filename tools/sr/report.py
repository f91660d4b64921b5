"""Report of a speaker-recognition evaluation: `make report` -> report.json, report.md and PNG
plots.

Reads the eval client's results.jsonl (one record per evaluated line) and prepare's labels.json,
joins them by line index, and reports the model next to the prepare pseudo-labels on the same
lines, under both correctness rules: overall, per episode, per duration bucket, per sample type,
per character; the hybrid curve (prepare's label where its margin >= t, the model elsewhere);
tool usage, turns, incomplete and invalid turns; latency percentiles and per-port load.

Accuracy is over the *judged* evaluated lines, as prepare counts them: lines with a ground truth
that are not seed lines (prepare's label is the truth on a seed line). Every other record is
counted under `lines.not_judged` and still counts for tool usage and latency.

Beside our two rules, every accuracy row gives the published code's own judging rule
(correctness.published, with the `published_known` characters labels.json carries), for the
model's answer and prepare's label alike, so the figures compare with the published ones; and the
lines split by overlapped vs clean speech (labels.json's per-line `overlap`). A labels.json from
before these fields (no `published_known`, no `overlap`) still reports, without them.

Several series in one report (`make report SERIES=a,b,c`, as the published pipeline evaluates
one model on several dramas): one --results and one --labels per series, paired in order. Each
series gets its own full report in `<out-dir>/<series>/` (the same files a one-series report
writes), and `<out-dir>` holds the overview: a row per series, the overall figure both
lines-weighted (every judged line counts once) and drama-averaged (every series counts once),
and the cuts that make sense across series (duration, sample type, hybrid curve, tool use,
latency, ports) over all their lines.

Bad input (a broken or incomplete record, a line that labels.json does not have) stops the
report with the file, line and reason, exit status 2, and nothing written.
"""

import argparse
import collections
import itertools
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from plugins.speaker_rec.correctness import published
from plugins.speaker_rec.labelfile import (
    CORRECTNESS_RULES,
    SAMPLE_TYPES,
    is_correctness,
    is_number,
    read_labels_json,
)
from plugins.speaker_rec.labels import is_other
from plugins.speaker_rec.series import SERIES_NAME
from tools.common.fileio import atomic_write_text, read_jsonl
from tools.common.tiny_model_files import is_tiny_model

logger = logging.getLogger(__name__)

FORMAT = "dramakit-report/1"
SERIES_FORMAT = "dramakit-series-report/1"
RULES = CORRECTNESS_RULES  # ours
PUBLISHED = "published"  # the published code's rule, beside ours when labels.json says who is known
SOURCES = ("model", "prepare")
DEFAULT_EDGES = (1.0, 2.0, 4.0, 8.0)
# Thresholds tried besides the observed margins, so curves of different runs share points.
HYBRID_GRID = tuple(round(i / 10, 1) for i in range(11))
REST = "(rest)"
NO_ANSWER = "(no answer)"
TINY_WARNING = (
    "the model is the tiny random demo model: these figures prove the plumbing "
    "only and say nothing about speaker recognition."
)


class InputError(ValueError):
    """Bad input; the message names the file, the line or record, and the reason."""


@dataclass(frozen=True)
class Labels:
    """What the report uses of labels.json: per line index, its prepare record."""

    series: str
    language: str
    other: str
    lines: dict[int, dict]
    published_known: frozenset[str] | None = None  # None: labels.json predates the published rule


@dataclass(frozen=True)
class Line:
    """One evaluated line: the result record joined with its labels.json record."""

    result: dict
    label: dict
    published: dict[str, bool] | None = None  # per source, right by the published rule

    @property
    def judged(self) -> bool:
        return self.label["correct"] is not None and self.label["source"] != "seed"

    def correct(self, source: str, rule: str) -> bool:
        if rule == PUBLISHED:
            return self.published[source]
        return (self.result if source == "model" else self.label)["correct"][rule]


# ---- reading ------------------------------------------------------------------------------


def read_labels_for_report(path: Path) -> Labels:
    """labels.json's header and per-line records (labelfile.read_labels_json checks the format)."""
    try:
        data = read_labels_json(path)
    except ValueError as e:
        raise InputError(str(e)) from None
    known = data.get("published_known")
    return Labels(
        str(data.get("series")),
        str(data.get("language")),
        data["other"],
        {record["index"]: record for record in data["lines"]},
        None if known is None else frozenset(known),
    )


RESULT_CHECKS = {
    "line": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "episode": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "sample_type": lambda v: isinstance(v, str),
    "answer": lambda v: v is None or isinstance(v, str),
    "correct": is_correctness,
    "complete": lambda v: isinstance(v, bool),
    "turns": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "invalid_turns": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "duplicates": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "tool_calls": lambda v: isinstance(v, list) and all(isinstance(name, str) for name in v),
    "timing": lambda v: (
        isinstance(v, dict) and is_number(v.get("seconds")) and isinstance(v.get("requests"), int)
    ),
    "latency_s": lambda v: isinstance(v, list) and all(is_number(x) and x >= 0 for x in v),
    "port": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "attempts": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
}


def read_results(path: Path, labels: Labels, labels_path: Path) -> list[Line]:
    """Every record of results.jsonl joined with its labels.json line; any bad record is an
    InputError naming `path:line`."""
    if not path.is_file():
        raise InputError(f"{path}: file is missing")
    joined, seen = [], {}
    for record in read_jsonl(path):
        where = f"{path}:{record.line_no}"
        if record.error:
            raise InputError(f"{where}: {record.error}")
        result = record.value
        if not isinstance(result, dict):
            raise InputError(f"{where}: not a JSON object")
        for key, ok in RESULT_CHECKS.items():
            if key not in result or not ok(result[key]):
                raise InputError(f"{where}: missing or invalid {key!r} ({result.get(key)!r})")
        index = result["line"]
        if "series" in result and result["series"] != labels.series:
            raise InputError(
                f"{where}: series {result['series']!r}, but {labels_path} is for {labels.series!r}"
            )
        if index not in labels.lines:
            raise InputError(f"{where}: line {index} is not in {labels_path}")
        if index in seen:
            raise InputError(f"{where}: line {index} already has a record (line {seen[index]})")
        label = labels.lines[index]
        for ours, theirs in (("episode", "episode"), ("sample_type", "sample")):
            if result[ours] != label[theirs]:
                raise InputError(
                    f"{where}: {ours} {result[ours]!r} disagrees with {labels_path} "
                    f"({label[theirs]!r}); were they written by different runs?"
                )
        seen[index] = record.line_no
        judged_by_published = (
            None
            if labels.published_known is None
            else {
                "model": published(result["answer"], label["truth"], labels.published_known),
                "prepare": published(label["label"], label["truth"], labels.published_known),
            }
        )
        joined.append(Line(result, label, judged_by_published))
    if not joined:
        raise InputError(f"{path}: no result records")
    return sorted(joined, key=lambda line: line.result["line"])


def read_eval_model(results_path: Path) -> tuple[Path | None, str | None]:
    """eval_config.json next to the results (if there is one) and the model its run asked for:
    `run.model` as tools.sr.evaluate writes it, or a top-level `model`."""
    path = results_path.parent / "eval_config.json"
    if not path.is_file():
        return None, None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: not a JSON object")
    run = config.get("run") if isinstance(config.get("run"), dict) else config
    model = run.get("model")
    return path, model if isinstance(model, str) else None


def parse_edges(spec: str) -> tuple[float, ...]:
    """'1,2,4,8' -> duration bucket edges in seconds: positive and strictly increasing."""
    try:
        edges = tuple(float(x) for x in spec.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of seconds: {spec!r}"
        ) from None
    if not all(math.isfinite(e) and e > 0 for e in edges) or any(
        b <= a for a, b in itertools.pairwise(edges)
    ):
        raise argparse.ArgumentTypeError(
            f"edges must be positive and strictly increasing: {spec!r}"
        )
    return edges


# ---- figures ------------------------------------------------------------------------------


def percent(part: int, whole: int) -> float | None:
    """100·part/whole rounded to 2 decimals (None for an empty group)."""
    return round(100.0 * part / whole, 2) if whole else None


def rules_of(lines: list[Line]) -> tuple[str, ...]:
    """Our two rules, and the published one when every line can be judged by it."""
    return (*RULES, PUBLISHED) if all(line.published is not None for line in lines) else RULES


def accuracy_row(lines: list[Line], rules: tuple[str, ...] = RULES) -> dict:
    """Lines, and per source and rule the correct count and accuracy in percent."""
    row = {"lines": len(lines)}
    for source in SOURCES:
        row[source] = {}
        for rule in rules:
            correct = sum(line.correct(source, rule) for line in lines)
            row[source][rule] = {"correct": correct, "accuracy": percent(correct, len(lines))}
    return row


def duration_buckets(edges: tuple[float, ...]) -> list[tuple[str, float, float]]:
    """(name, from, to) for each bucket: <e0, e0-e1, ..., >=eN."""
    bounds = (0.0, *edges, math.inf)
    names = (
        [f"<{edges[0]:g}s"]
        + [f"{a:g}-{b:g}s" for a, b in itertools.pairwise(edges)]
        + [f">={edges[-1]:g}s"]
    )
    return list(zip(names, bounds, bounds[1:], strict=False))


def top_characters(lines: list[Line], top_n: int) -> list[str]:
    """The top_n ground truths by line count (ties by name)."""
    counts = collections.Counter(line.label["truth"] for line in lines)
    return sorted(counts, key=lambda name: (-counts[name], name))[:top_n]


def overlap_rows(lines: list[Line], rules: tuple[str, ...]) -> list[dict] | None:
    """Accuracy on lines whose speech overlaps another's and on clean ones (None when labels.json
    has no overlap flags: written before prepare kept them)."""
    if not all("overlap" in line.label for line in lines):
        return None
    return [
        {"speech": name, **accuracy_row([x for x in lines if x.label["overlap"] == flag], rules)}
        for name, flag in (("overlapped", True), ("clean", False))
    ]


def line_cuts(lines: list[Line], edges: tuple[float, ...]) -> dict:
    """Model vs prepare accuracy overall and per duration bucket, sample type and overlapped vs
    clean speech: the cuts that mean the same in every series, so they also pool several."""
    rules = rules_of(lines)
    return {
        "overall": accuracy_row(lines, rules),
        "by_duration": [
            {
                "bucket": name,
                "from_s": lo,
                "to_s": None if hi == math.inf else hi,
                **accuracy_row([x for x in lines if lo <= x.label["duration"] < hi], rules),
            }
            for name, lo, hi in duration_buckets(edges)
        ],
        "by_sample_type": [
            {
                "sample_type": kind,
                **accuracy_row([x for x in lines if x.label["sample"] == kind], rules),
            }
            for kind in SAMPLE_TYPES
        ],
        "by_overlap": overlap_rows(lines, rules),
    }


def accuracy_tables(lines: list[Line], edges: tuple[float, ...], top: list[str]) -> dict:
    """Model vs prepare accuracy overall and per episode, duration bucket, sample type, character,
    and overlapped vs clean speech."""
    rules = rules_of(lines)
    episodes = sorted({line.label["episode"] for line in lines})
    by_character = [
        {"character": name, **accuracy_row([x for x in lines if x.label["truth"] == name], rules)}
        for name in top
    ]
    rest = [x for x in lines if x.label["truth"] not in top]
    if rest:
        by_character.append(
            {
                "character": REST,
                "characters": len({x.label["truth"] for x in rest}),
                **accuracy_row(rest, rules),
            }
        )
    return {
        **line_cuts(lines, edges),
        "by_episode": [
            {"episode": e, **accuracy_row([x for x in lines if x.label["episode"] == e], rules)}
            for e in episodes
        ],
        "by_character": by_character,
    }


def hybrid_curve(lines: list[Line]) -> dict:
    """Accuracy when taking prepare's label where its margin >= t and the model's answer elsewhere,
    for t over the observed margins and HYBRID_GRID, plus the two ends and the best t (highest
    strict accuracy, then candidate-aware, then the most lines left to prepare)."""
    ordered = sorted(lines, key=lambda line: line.label["margin"])
    n = len(ordered)
    # Sweep t upwards: lines below t switch from prepare to the model.
    correct = {rule: sum(line.correct("prepare", rule) for line in ordered) for rule in RULES}

    def point(t, below: int) -> dict:
        return {
            "t": t,
            "prepare_coverage": percent(n - below, n),
            **{rule: percent(correct[rule], n) for rule in RULES},
        }

    prepare_only = point("-inf", 0)
    points, below = [], 0
    for t in sorted({line.label["margin"] for line in ordered} | set(HYBRID_GRID)):
        while below < n and ordered[below].label["margin"] < t:
            for rule in RULES:
                correct[rule] += ordered[below].correct("model", rule) - ordered[below].correct(
                    "prepare", rule
                )
            below += 1
        points.append(point(t, below))
    while below < n:
        for rule in RULES:
            correct[rule] += ordered[below].correct("model", rule) - ordered[below].correct(
                "prepare", rule
            )
        below += 1
    model_only = point("inf", n)
    candidates = [prepare_only, *points, model_only]
    best = max(candidates, key=lambda p: (p["strict"], p["candidate_aware"], p["prepare_coverage"]))
    return {
        "points": points,
        "best": best,
        "model_only": model_only,
        "prepare_only": prepare_only,
        "best_by": "strict accuracy, then candidate-aware, then the larger prepare coverage",
    }


def confusion(lines: list[Line], top: list[str], other: str) -> dict:
    """Truth (top characters, then the rest) against answer (those names, "other" in any
    spelling, any other answer, no answer)."""
    columns = [*top, *([] if other in top else [other]), REST, NO_ANSWER]
    rows = [*top, REST]
    counts = [[0] * len(columns) for _ in rows]
    for line in lines:
        truth, answer = line.label["truth"], line.result["answer"]
        row = rows.index(truth) if truth in top else len(rows) - 1
        if answer is None:
            column = columns.index(NO_ANSWER)
        elif answer.strip() in top:
            column = columns.index(answer.strip())
        else:
            column = columns.index(other if answer.strip() == other or is_other(answer) else REST)
        counts[row][column] += 1
    return {"rows": rows, "columns": columns, "counts": counts}


def percentiles(values: list[float]) -> dict:
    """count, mean, p50/p90/p99 (linear interpolation between order statistics) and max."""
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 3),
        "p50": round(at(0.5), 3),
        "p90": round(at(0.9), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
    }


def behaviour(lines: list[Line]) -> dict:
    """Tool calls per tool and share of lines using each, turns per line, incomplete lines,
    invalid-format turns and duplicate calls, over every evaluated line."""
    results = [line.result for line in lines]
    calls = collections.Counter(name for r in results for name in r["tool_calls"])
    using = collections.Counter(name for r in results for name in set(r["tool_calls"]))
    turns = collections.Counter(r["turns"] for r in results)
    return {
        "tool_calls": {
            name: {
                "calls": calls[name],
                "lines": using[name],
                "share": percent(using[name], len(results)),
            }
            for name in sorted(calls)
        },
        "calls_total": sum(calls.values()),
        "turns": {
            "mean": round(sum(r["turns"] for r in results) / len(results), 3),
            "distribution": [{"turns": t, "lines": turns[t]} for t in sorted(turns)],
        },
        "incomplete_lines": sum(not r["complete"] for r in results),
        "invalid_turns": {
            "total": sum(r["invalid_turns"] for r in results),
            "lines": sum(r["invalid_turns"] > 0 for r in results),
        },
        "duplicates": {
            "total": sum(r["duplicates"] for r in results),
            "lines": sum(r["duplicates"] > 0 for r in results),
        },
    }


def ports(lines: list[Line]) -> list[dict]:
    """Lines, requests and retried requests per serving port."""
    table = collections.defaultdict(lambda: {"lines": 0, "requests": 0, "retries": 0})
    for line in lines:
        row = table[line.result["port"]]
        row["lines"] += 1
        row["requests"] += line.result["timing"]["requests"]
        row["retries"] += line.result["attempts"]
    return [{"port": port, **table[port]} for port in sorted(table)]


def line_counts(lines: list[Line], judged: list[Line], judged_in_labels: int) -> dict:
    """Result records, judged lines evaluated and in labels.json, and why the others are not
    judged."""
    not_judged = collections.Counter(
        "no ground truth" if line.label["correct"] is None else "seed line"
        for line in lines
        if not line.judged
    )
    return {
        "records": len(lines),
        "evaluated": len(judged),
        "judged_in_labels": judged_in_labels,
        "not_judged": dict(sorted(not_judged.items())),
        "judged_means": "a ground truth and not a seed line (as prepare counts them)",
    }


def serving(lines: list[Line]) -> dict:
    """Tool use, latency and per-port load of the evaluated lines (judged or not)."""
    return {
        "behaviour": behaviour(lines),
        "latency_s": {
            "request": percentiles([x for line in lines for x in line.result["latency_s"]]),
            "line": percentiles([line.result["timing"]["seconds"] for line in lines]),
        },
        "ports": ports(lines),
    }


def build_report(
    lines: list[Line],
    labels: Labels,
    *,
    top_n: int,
    edges: tuple[float, ...],
    inputs: dict,
    model: str | None,
    tiny: bool,
) -> dict:
    """The whole report.json content (plots are named, not drawn, here)."""
    judged = [line for line in lines if line.judged]
    judged_in_labels = sum(
        r["correct"] is not None and r["source"] != "seed" for r in labels.lines.values()
    )
    if not judged:
        raise InputError(
            f"{inputs['results']}: none of the {len(lines)} records is a judged line "
            "(all are seed lines or have no ground truth)"
        )
    top = top_characters(judged, top_n)
    return {
        "format": FORMAT,
        "series": labels.series,
        "language": labels.language,
        "inputs": inputs,
        "model": {"name": model, "tiny": tiny},
        "warnings": [TINY_WARNING] if tiny else [],
        "lines": line_counts(lines, judged, judged_in_labels),
        "settings": {"top_n": top_n, "buckets_s": list(edges)},
        "accuracy": accuracy_tables(judged, edges, top),
        "hybrid": hybrid_curve(judged),
        "confusion": confusion(judged, top, labels.other),
        **serving(lines),
    }


@dataclass(frozen=True)
class SeriesRun:
    """One series of a several-series report: its evaluated lines and its own report."""

    lines: list[Line]
    report: dict


def drama_averaged(rows: list[dict]) -> dict:
    """Per source and rule, the mean over series of each series' accuracy (every series counts
    once, however many lines it has), from the exact counts, rounded like the rest."""
    out = {"series_count": len(rows), "lines": sum(row["lines"] for row in rows)}
    rules = [rule for rule in (*RULES, PUBLISHED) if all(rule in row["model"] for row in rows)]
    for source in SOURCES:
        out[source] = {
            rule: {
                "accuracy": round(
                    sum(100.0 * row[source][rule]["correct"] / row["lines"] for row in rows)
                    / len(rows),
                    2,
                )
            }
            for rule in rules
        }
    return out


def build_series_report(runs: list[SeriesRun], *, edges: tuple[float, ...]) -> dict:
    """The overview of several series' reports: a row per series (its own overall figures), the
    overall figure lines-weighted and drama-averaged, and the cuts that pool across series."""
    names = [run.report["series"] for run in runs]
    lines = [line for run in runs for line in run.lines]
    judged = [line for line in lines if line.judged]
    models = {run.report["series"]: run.report["model"]["name"] for run in runs}
    tiny = any(run.report["model"]["tiny"] for run in runs)
    warnings = [TINY_WARNING] if tiny else []
    if len(set(models.values())) > 1:
        warnings.append(
            "the series were not all evaluated with the same model: "
            + ", ".join(f"{s}: {m or 'not named'}" for s, m in models.items())
        )
    rows = [{"series": run.report["series"], **run.report["accuracy"]["overall"]} for run in runs]
    cuts = line_cuts(judged, edges)
    return {
        "format": SERIES_FORMAT,
        "series": names,
        "inputs": [
            {
                "series": run.report["series"],
                "report": f"{run.report['series']}/report.json",
                **run.report["inputs"],
            }
            for run in runs
        ],
        "model": {"names": models, "tiny": tiny},
        "warnings": warnings,
        "lines": line_counts(
            lines, judged, sum(run.report["lines"]["judged_in_labels"] for run in runs)
        ),
        "settings": {"buckets_s": list(edges)},
        "by_series": rows,
        "overall": {"lines_weighted": cuts["overall"], "drama_averaged": drama_averaged(rows)},
        "accuracy": cuts,
        "hybrid": hybrid_curve(judged),
        **serving(lines),
    }


# ---- markdown -----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += [
        "| " + " | ".join("–" if cell is None else str(cell) for cell in row) + " |" for row in rows
    ]
    return [*lines, ""]


RULE_NAMES = {"strict": "strict", "candidate_aware": "cand.-aware", PUBLISHED: "published rule"}


def _accuracy_table(first: str, rows: list[dict], key: str) -> list[str]:
    """Per row: lines, then model and prepare under our rules and (where known) the published
    one."""
    rules = [rule for rule in (*RULES, PUBLISHED) if any(rule in row["model"] for row in rows)]
    header = [
        first,
        "lines",
        *[f"{source} {RULE_NAMES[rule]}" for source in SOURCES for rule in rules],
    ]
    return _table(
        header,
        [
            [
                f"(rest: {row['characters']} characters)" if "characters" in row else row[key],
                row["lines"],
                *[
                    _pct(row[source].get(rule, {}).get("accuracy"))
                    for source in SOURCES
                    for rule in rules
                ],
            ]
            for row in rows
        ],
    )


def _published_sentence(overall: dict) -> list[str]:
    """The headline's figures by the published code's rule, when the report has them."""
    if PUBLISHED not in overall["model"]:
        return []
    return [
        (
            "By the published code's judging rule: model "
            f"{_pct(overall['model'][PUBLISHED]['accuracy'])} %, "
            f"prepare {_pct(overall['prepare'][PUBLISHED]['accuracy'])} %."
        ),
        "",
    ]


def _overlap_section(rows: list[dict] | None) -> list[str]:
    if rows is None:
        return [
            "### Overlapped vs clean speech",
            "",
            "labels.json has no overlap flags (written before prepare kept them): rerun prepare.",
            "",
        ]
    return ["### Overlapped vs clean speech", "", *_accuracy_table("speech", rows, "speech")]


def _headline(report: dict) -> list[str]:
    lines, overall = report["lines"], report["accuracy"]["overall"]
    model = {rule: _pct(overall["model"][rule]["accuracy"]) for rule in RULES}
    prepare = {rule: _pct(overall["prepare"][rule]["accuracy"]) for rule in RULES}
    skipped = ", ".join(f"{n} {why}" for why, n in lines["not_judged"].items())
    skipped = f"; not judged: {skipped}" if skipped else ""
    return [
        *[f"> **Warning:** {warning}\n" for warning in report["warnings"]],
        (
            f"Evaluated **{lines['evaluated']}** of the {lines['judged_in_labels']} "
            "judged lines of the series "
            f"({lines['records']} result records{skipped})."
        ),
        f"Model: {report['model']['name'] or 'not named (no eval_config.json)'}.",
        "",
        (
            f"**Model accuracy: strict {model['strict']} %, candidate-aware "
            f"{model['candidate_aware']} %** "
            f"(prepare on the same lines: strict {prepare['strict']} %, candidate-aware "
            f"{prepare['candidate_aware']} %)."
        ),
        "",
        *_published_sentence(overall),
    ]


def _hybrid_section(hybrid: dict) -> list[str]:
    best = hybrid["best"]
    shown = [
        hybrid["prepare_only"],
        *[p for p in hybrid["points"] if p["t"] in HYBRID_GRID],
        hybrid["model_only"],
    ]
    return [
        "## Hybrid: prepare's label where its margin ≥ t, the model elsewhere",
        "",
        (
            f"Best t = {best['t']}: strict {_pct(best['strict'])} %, candidate-aware "
            f"{_pct(best['candidate_aware'])} %, "
            f"prepare labels {_pct(best['prepare_coverage'])} % of the lines (chosen by "
            f"{hybrid['best_by']})."
        ),
        "",
        *_table(
            ["t", "prepare coverage %", "strict", "cand.-aware"],
            [
                [p["t"], _pct(p["prepare_coverage"]), _pct(p["strict"]), _pct(p["candidate_aware"])]
                for p in shown
            ],
        ),
    ]


def _behaviour_section(report: dict) -> list[str]:
    use = report["behaviour"]
    turns = ", ".join(f"{d['turns']} turns: {d['lines']}" for d in use["turns"]["distribution"])
    invalid, duplicates = use["invalid_turns"], use["duplicates"]
    percentile_keys = ("count", "mean", "p50", "p90", "p99", "max")
    return [
        "## Tool use and format",
        "",
        *_table(
            ["tool", "calls", "lines using it", "share %"],
            [
                [name, t["calls"], t["lines"], _pct(t["share"])]
                for name, t in use["tool_calls"].items()
            ],
        ),
        f"Turns per line: mean {use['turns']['mean']}; {turns}.",
        (
            f"Incomplete lines (no answer): {use['incomplete_lines']}. Invalid-format "
            f"turns: {invalid['total']} on "
            f"{invalid['lines']} lines. Repeated tool calls: {duplicates['total']} on "
            f"{duplicates['lines']} lines."
        ),
        "",
        "## Latency (seconds) and serving ports",
        "",
        *_table(
            ["per", *percentile_keys],
            [[name, *[p[k] for k in percentile_keys]] for name, p in report["latency_s"].items()],
        ),
        *_table(
            ["port", "lines", "requests", "retried"],
            [[p["port"], p["lines"], p["requests"], p["retries"]] for p in report["ports"]],
        ),
    ]


def render_markdown(report: dict, plots: dict[str, str], legend: dict[str, str]) -> str:
    """report.md: the headline, the tables, and links to the plots."""
    acc = report["accuracy"]
    out = [
        f"# Speaker recognition report: {report['series']}",
        "",
        *_headline(report),
        "## Accuracy (%)",
        "",
        *_accuracy_table("set", [{"set": "all judged lines", **acc["overall"]}], "set"),
        "### Per episode",
        "",
        *_accuracy_table("episode", acc["by_episode"], "episode"),
        "### Per duration",
        "",
        *_accuracy_table("duration", acc["by_duration"], "bucket"),
        "### Per sample type (prepare's line selection)",
        "",
        *_accuracy_table("sample type", acc["by_sample_type"], "sample_type"),
        *_overlap_section(acc["by_overlap"]),
        f"### Per character (ground truth, top {report['settings']['top_n']})",
        "",
        *_accuracy_table("character", acc["by_character"], "character"),
        *_hybrid_section(report["hybrid"]),
        *_behaviour_section(report),
        "## Plots",
        "",
        *[f"![{name}]({file})" for name, file in plots.items()],
    ]
    if legend:
        out += ["", "Character codes in the plots (no installed font has their glyphs):", ""]
        out += [f"- {code}: {name}" for code, name in legend.items()]
    return "\n".join(out) + "\n"


def render_series_markdown(report: dict, plots: dict[str, str]) -> str:
    """The overview report.md of several series: the per-series table with both overall rows,
    the pooled cuts, and links to each series' own report."""
    lines, overall = report["lines"], report["overall"]
    weighted, averaged = overall["lines_weighted"], overall["drama_averaged"]
    rows = [
        *report["by_series"],
        {"series": "all, lines-weighted", **weighted},
        {"series": f"all, drama-averaged ({averaged['series_count']} series)", **averaged},
    ]
    models = ", ".join(
        f"{series}: {name or 'not named'}" for series, name in report["model"]["names"].items()
    )
    out = [
        f"# Speaker recognition report: {len(report['series'])} series",
        "",
        *[f"> **Warning:** {warning}\n" for warning in report["warnings"]],
        (
            f"Evaluated **{lines['evaluated']}** of the {lines['judged_in_labels']} "
            "judged lines of "
            f"{len(report['series'])} series ({lines['records']} result records). Models: {models}."
        ),
        "",
        (
            "**Model accuracy, lines-weighted: strict "
            f"{_pct(weighted['model']['strict']['accuracy'])} %, "
            f"candidate-aware {_pct(weighted['model']['candidate_aware']['accuracy'])} "
            "%; drama-averaged: "
            f"strict {_pct(averaged['model']['strict']['accuracy'])} %, candidate-aware "
            f"{_pct(averaged['model']['candidate_aware']['accuracy'])} %** (prepare on "
            "the same lines, "
            f"lines-weighted: strict {_pct(weighted['prepare']['strict']['accuracy'])} "
            "%, candidate-aware "
            f"{_pct(weighted['prepare']['candidate_aware']['accuracy'])} %)."
        ),
        "",
        *_published_sentence(weighted),
        "## Accuracy per series (%)",
        "",
        "Lines-weighted counts every judged line once; drama-averaged is the mean of the "
        "series' figures.",
        "",
        *_accuracy_table("series", rows, "series"),
        "## All series' lines together",
        "",
        "### Per duration",
        "",
        *_accuracy_table("duration", report["accuracy"]["by_duration"], "bucket"),
        "### Per sample type (prepare's line selection)",
        "",
        *_accuracy_table("sample type", report["accuracy"]["by_sample_type"], "sample_type"),
        *_overlap_section(report["accuracy"]["by_overlap"]),
        *_hybrid_section(report["hybrid"]),
        *_behaviour_section(report),
        "## Each series' own report",
        "",
        *[f"- [{entry['series']}]({entry['series']}/report.md)" for entry in report["inputs"]],
        "",
        "## Plots",
        "",
        *[f"![{name}]({file})" for name, file in plots.items()],
    ]
    return "\n".join(out) + "\n"


# ---- command ------------------------------------------------------------------------------


def read_series_run(
    results: Path, labels_path: Path, *, top_n: int, edges: tuple[float, ...]
) -> SeriesRun:
    """One series' inputs read, checked and turned into its report (InputError on bad input)."""
    labels = read_labels_for_report(labels_path)
    lines = read_results(results, labels, labels_path)
    config_path, model = read_eval_model(results)
    inputs = {
        "results": str(results),
        "labels": str(labels_path),
        "eval_config": str(config_path) if config_path else None,
    }
    report = build_report(
        lines,
        labels,
        top_n=top_n,
        edges=edges,
        inputs=inputs,
        model=model,
        tiny=model is not None and is_tiny_model(model),
    )
    return SeriesRun(lines, report)


def check_series_names(runs: list[SeriesRun], labels_paths: list[Path]) -> None:
    """Several series name sub-folders of the output: each an identifier, and each once."""
    seen = {}
    for run, path in zip(runs, labels_paths, strict=True):
        name = run.report["series"]
        if not SERIES_NAME.match(name):
            raise InputError(
                f"{path}: series {name!r} is not an identifier; it names the report's sub-folder"
            )
        if name in seen:
            raise InputError(f"{path}: series {name!r} is given twice (also {seen[name]})")
        seen[name] = path


def write_report(report: dict, out_dir: Path) -> None:
    """One series' report.json, report.md and plots into out_dir."""
    from tools.sr.report_plots import write_plots  # matplotlib only once the inputs are known good

    plots, legend = write_plots(report, out_dir)
    report["plots"] = plots
    report["plot_legend"] = legend
    atomic_write_text(
        out_dir / "report.json",
        json.dumps(report, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
    )
    atomic_write_text(out_dir / "report.md", render_markdown(report, plots, legend))


def write_series_report(report: dict, out_dir: Path) -> None:
    """The several-series overview's report.json, report.md and plots into out_dir."""
    from tools.sr.report_plots import write_series_plots

    report["plots"] = write_series_plots(report, out_dir)
    atomic_write_text(
        out_dir / "report.json",
        json.dumps(report, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
    )
    atomic_write_text(out_dir / "report.md", render_series_markdown(report, report["plots"]))


def _log_figures(what: str, lines: dict, overall: dict, where: Path) -> None:
    logger.info(
        "%s: %d of %d judged lines: model strict %s %% / candidate-aware %s %%, prepare "
        "%s %% / %s %% -> %s",
        what,
        lines["evaluated"],
        lines["judged_in_labels"],
        _pct(overall["model"]["strict"]["accuracy"]),
        _pct(overall["model"]["candidate_aware"]["accuracy"]),
        _pct(overall["prepare"]["strict"]["accuracy"]),
        _pct(overall["prepare"]["candidate_aware"]["accuracy"]),
        where,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.report",
        description="Report an evaluation: join results.jsonl (tools.sr.evaluate) with labels.json "
        "(tools.sr.prepare) and "
        "write report.json, report.md and PNG plots to --out-dir: model vs prepare "
        "accuracy under both rules "
        "(overall, per episode, duration bucket, sample type, character), the hybrid "
        "curve, tool use, turns, "
        "latency. Several series: one --results and one --labels each, in the same "
        "order; each series' report "
        "goes to --out-dir/<series>/ and --out-dir holds a table with a row per series "
        "and the overall figure, "
        "lines-weighted and drama-averaged. Exit 2 on bad input, naming the file and "
        "line, with nothing written.",
    )
    parser.add_argument(
        "--results",
        required=True,
        type=Path,
        nargs="+",
        metavar="RESULTS",
        help="results.jsonl written by tools.sr.evaluate (one per series)",
    )
    parser.add_argument(
        "--labels",
        required=True,
        type=Path,
        nargs="+",
        metavar="LABELS",
        help="labels.json written by tools.sr.prepare (one per series, in the order of --results)",
    )
    parser.add_argument(
        "--out-dir", required=True, type=Path, help="where report.json, report.md and plots go"
    )
    parser.add_argument(
        "--top-n",
        type=int,
        default=15,
        help="characters shown one by one, by line count; the rest form one row (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--buckets",
        type=parse_edges,
        default=DEFAULT_EDGES,
        metavar="S1,S2,...",
        help="duration bucket edges in seconds (default: 1,2,4,8 -> <1, 1-2, 2-4, 4-8, >=8; "
        "lines under 1 s are the hard case the published work singled out)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.top_n < 1:
        parser.error("--top-n must be >= 1")
    if len(args.results) != len(args.labels):
        parser.error(
            f"{len(args.results)} --results but {len(args.labels)} --labels: give one of "
            "each per series"
        )
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Join the results with the labels and write the reports; 2 on bad input."""
    try:
        runs = [
            read_series_run(results, labels, top_n=args.top_n, edges=args.buckets)
            for results, labels in zip(args.results, args.labels, strict=True)
        ]
        several = len(runs) > 1
        if several:
            check_series_names(runs, args.labels)
            overview = build_series_report(runs, edges=args.buckets)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for warning in (overview if several else runs[0].report)["warnings"]:
        logger.warning("%s", warning)
    if not several:
        report = runs[0].report
        write_report(report, args.out_dir)
        _log_figures(report["series"], report["lines"], report["accuracy"]["overall"], args.out_dir)
        return 0
    for series_run in runs:
        write_report(series_run.report, args.out_dir / series_run.report["series"])
        _log_figures(
            series_run.report["series"],
            series_run.report["lines"],
            series_run.report["accuracy"]["overall"],
            args.out_dir / series_run.report["series"],
        )
    write_series_report(overview, args.out_dir)
    _log_figures(
        f"{len(runs)} series, lines-weighted",
        overview["lines"],
        overview["overall"]["lines_weighted"],
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
