"""Prepare: a pseudo-label, a scored candidate list and a sample type for every line of a
series, by label propagation from ~1% labelled seed lines: `make prepare SERIES=...`.

Writes labels.json (layout in plugins/speaker_rec/labelfile.py) atomically, with accuracy
against the ground truth under both correctness rules and, beside them, the published code's
judging rule (each also on known vs other truths and overlapped vs clean lines), next to the
voiceprint-only nearest-centroid baseline. Exit status 2 with `file: reason` on bad input.
"""

import argparse
import collections
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from plugins.speaker_rec import correctness
from plugins.speaker_rec.labelfile import FORMAT, dumps
from plugins.speaker_rec.labels import LabelKind, new_role_label, other_label
from plugins.speaker_rec.series import Line, Series, SeriesError
from tools.common.fileio import atomic_write_text
from tools.common.series_args import add_series_args, load_series_from_args
from tools.sr import onscreen, voiceprint
from tools.sr.accuracy import accuracy_cell, accuracy_table
from tools.sr.propagation import Inputs, Params, Propagation, Result
from tools.sr.seeding import MIN_SECONDS, select_seeds

logger = logging.getLogger(__name__)

DEFAULT_LOW_SCORE = 0.5
DEFAULT_CLOSE_MARGIN = 0.05
# How many offending items a warning names before it only counts them.
NAMED_IN_WARNING = 5


def resolve_seeds(
    series: Series, spec: str | None, fraction: float, seed: int
) -> tuple[dict[int, str], dict, list[str]]:
    """(seeds, how they were chosen, warnings). Seeds on deleted lines are dropped."""
    if spec == "select":
        seeds = select_seeds(series, fraction, seed)
        info = {
            "source": "select",
            "fraction": fraction,
            "seed": seed,
            "min_seconds": MIN_SECONDS,
            "rule": "per known character, max(1, floor(fraction x lines)) of its lines drawn "
            "with the seed, preferring lines of at least min_seconds; reads the ground truth",
        }
    else:
        if spec is None and not series.seed_files:
            raise SeriesError(
                series.root, "no init_seeds_*.json file; pass --seeds select to choose seeds"
            )
        seeds = series.seeds(spec)
        info = {"source": "file", "file": spec or _default_seed_file(series)}
    warnings = []
    dropped = [i for i in seeds if series.lines[i].deleted]
    if dropped:
        warnings.append(
            f"{len(dropped)} seed lines are deleted lines and were dropped: {_some(dropped)}"
        )
        seeds = {i: name for i, name in seeds.items() if not series.lines[i].deleted}
    silent = [i for i in seeds if not series.embedding_ok[i]]
    if silent:
        warnings.append(
            f"{len(silent)} seed lines have no finite voiceprint; they keep their label but "
            f"propagate nothing: {_some(silent)}"
        )
    if not seeds:
        raise SeriesError(series.root, "no usable seed lines: nothing to propagate from")
    return seeds, info, warnings


def _default_seed_file(series: Series) -> str:
    return series.seed_files[0] if len(series.seed_files) == 1 else "init_seeds_1pct.json"


def _some(items: list) -> str:
    shown = ", ".join(str(x) for x in items[:NAMED_IN_WARNING])
    return shown + (
        f" (+{len(items) - NAMED_IN_WARNING} more)" if len(items) > NAMED_IN_WARNING else ""
    )


def data_warnings(series: Series, presence: onscreen.Presence) -> list[str]:
    """What is missing or odd in the series, as prepare deals with it."""
    warnings = []
    silent = [
        line.index
        for line in series.lines
        if not series.embedding_ok[line.index] and not line.deleted
    ]
    if silent:
        warnings.append(
            f"{len(silent)} lines have no finite voiceprint; they are labelled other and their "
            f"candidates carry no score: {_some(silent)}"
        )
    if not presence.has_faces:
        warnings.append(
            "no face detections (face_data missing or empty): every character counts as present "
            "everywhere and only voiceprints decide"
        )
    else:
        if presence.blind_episodes:
            warnings.append(
                f"episodes without face detections, where every character counts as present: "
                f"{_some(presence.blind_episodes)}"
            )
        if presence.never_seen:
            warnings.append(
                "seeded characters never detected on screen, present everywhere on "
                "their voice alone "
                f"(unseen_penalty below a seen character): {_some(presence.never_seen)}"
            )
    if series.relations is None:
        warnings.append("relation.json is missing: char_relation will not be offered")
    elif not series.relations.characters or not series.relations.edges:
        warnings.append(
            "relation.json lists no characters or no relations: char_relation has nothing to say"
        )
    return warnings


def sample_type(
    correct: bool | None,
    label: str,
    other: str,
    top: float | None,
    margin: float,
    low_score: float,
    close_margin: float,
) -> str:
    """wrong (needs a truth) / low_score / close / confident."""
    if correct is False:
        return "wrong"
    if label == other or top is None or top < low_score:
        return "low_score"
    if margin < close_margin:
        return "close"
    return "confident"


def line_records(
    series: Series,
    result: Result,
    presence: onscreen.Presence,
    params: Params,
    low_score: float,
    close_margin: float,
) -> list[dict]:
    """One labels.json record per non-deleted line."""
    other = other_label(series.language)
    known = result.classes[: result.n_known]
    known_set = frozenset(known)  # the rules only ask whether a name is in it
    # Python values once, not a numpy scalar per line.
    labels, levels = result.labels.tolist(), result.level.tolist()
    voiced = series.embedding_ok.tolist()
    records = []
    for line in series.lines:
        if line.deleted:
            continue
        i = line.index
        label = result.classes[labels[i]] if labels[i] >= 0 else other
        if voiced[i]:
            candidates = [[result.classes[c], round(score, 4)] for c, score in result.candidates[i]]
        else:  # no voiceprint: the characters on screen, unscored
            names = [known[c] for c in np.flatnonzero(presence.matrix[i])][: params.max_candidates]
            if label != other and label not in names:
                names = names[: params.max_candidates - 1] + [label]
            candidates = [[name, None] for name in names]
        scores = [score for _, score in candidates if score is not None]
        margin = round(scores[0] - (scores[1] if len(scores) > 1 else 0.0), 4) if scores else 0.0
        correct = None
        if line.speaker is not None and correctness.is_judged(line.kind):
            names = [name for name, _ in candidates]
            correct = {
                "strict": correctness.strict(label, line.speaker, line.kind, known_set),
                "candidate_aware": correctness.candidate_aware(
                    label, line.speaker, line.kind, known_set, names
                ),
            }
        records.append(
            {
                "index": i,
                "episode": line.episode,
                "duration": round(line.duration, 3),
                "label": label,
                "source": result.source[i],
                "level": None if math.isnan(levels[i]) else levels[i],
                "candidates": candidates + [[other, None]],
                "margin": margin,
                "sample": sample_type(
                    correct["strict"] if correct else None,
                    label,
                    other,
                    scores[0] if scores else None,
                    margin,
                    low_score,
                    close_margin,
                ),
                "truth": line.speaker if correct is not None else None,
                "correct": correct,
                "overlap": line.overlap,
            }
        )
    return records


def truth_class(line: Line, known: list[str]) -> str:
    """closed, or open_<kind> (open_named_unseeded for a name outside the inventory)."""
    if not correctness.is_open_truth(line.speaker, line.kind, known):
        return "closed"
    return "open_named_unseeded" if line.kind is LabelKind.NAMED else f"open_{line.kind.value}"


def summarise(
    series: Series,
    records: list[dict],
    seeds: dict[int, str],
    known: list[str],
    baseline: dict[int, str],
) -> dict:
    """Accuracy of the pseudo-labels (both rules) and of the baseline on the judged lines
    that are not seeds; candidate coverage and length; sample types."""
    judged = [
        (r, series.lines[r["index"]])
        for r in records
        if r["correct"] is not None and r["index"] not in seeds
    ]
    known_set = frozenset(known)  # the rules only ask whether a name is in it
    # Each rule's outcome and each split's membership once per line, shared by the tables.
    episodes = [r["episode"] for r, _ in judged]
    durations = [line.duration for _, line in judged]

    def table(outcomes: list[bool]) -> dict:
        return accuracy_table(zip(episodes, durations, outcomes, strict=True))

    published_known = series.published_known
    parts = {
        "known_truths": [line.speaker in published_known for _, line in judged],
        "other_truths": [line.speaker not in published_known for _, line in judged],
        "overlapped": [bool(line.overlap) for _, line in judged],
        "clean": [not line.overlap for _, line in judged],
    }

    def splits(outcomes: list[bool]) -> dict:
        """The rule's accuracy on known vs other truths (known as the published rule counts
        them) and on overlapped vs clean lines."""
        return {
            name: accuracy_cell(o for o, inside in zip(outcomes, part, strict=True) if inside)
            for name, part in parts.items()
        }

    outcomes = {
        "strict": [r["correct"]["strict"] for r, _ in judged],
        "candidate_aware": [r["correct"]["candidate_aware"] for r, _ in judged],
        "published": [
            correctness.published(r["label"], line.speaker, published_known) for r, line in judged
        ],
    }
    truths = [truth_class(line, known) for _, line in judged]
    classes = collections.Counter(truths)
    covered = sum(
        truth != "closed" or line.speaker in {name for name, _ in r["candidates"]}
        for truth, (r, line) in zip(truths, judged, strict=True)
    )
    named = [len(r["candidates"]) - 1 for r in records]
    return {
        "judged_lines": len(judged),
        "judged_excludes": "seed lines, deleted lines, lines without a ground truth",
        "truth_classes": dict(sorted(classes.items())),
        "propagation": {name: table(o) for name, o in outcomes.items()},
        "propagation_splits": {name: splits(o) for name, o in outcomes.items()},
        "published_rule": "the published code's own judging rule, beside ours so that figures "
        "compare with its "
        "published ones: right iff the label equals the truth, or neither is a known character "
        "(published_known: face_info characters seen as a top-1 face, plus narration truths)",
        "nearest_centroid": {
            "description": "voiceprint only: nearest seed-character centroid by cosine, always "
            "a name",
            "strict": table(
                [
                    correctness.strict(baseline.get(r["index"]), line.speaker, line.kind, known_set)
                    for r, line in judged
                ]
            ),
        },
        "truth_in_candidates_or_open_set": round(100.0 * covered / len(judged), 2)
        if judged
        else None,
        "candidates": {
            "median_named": statistics.median(named) if named else 0,
            "mean_named": round(statistics.fmean(named), 2) if named else 0,
            "plus": "the other label, always last",
        },
        "sample_types": dict(sorted(collections.Counter(r["sample"] for r in records).items())),
    }


def prepare_labels(
    series: Series,
    seeds: dict[int, str],
    seed_info: dict,
    seed: int,
    params: Params,
    low_score: float,
    close_margin: float,
    warnings: list[str],
    progress: bool = False,
) -> tuple[dict, list[dict]]:
    """The whole prepare step on a loaded series: (header, line records)."""
    counts = collections.Counter(seeds.values())
    known = sorted(counts, key=lambda name: (-counts[name], name))
    code = {name: c for c, name in enumerate(known)}
    usable = series.embedding_ok & np.array([not line.deleted for line in series.lines])

    started = time.perf_counter()
    units = voiceprint.integer_units(series.embeddings, usable)
    neighbours, similarity = voiceprint.nearest_neighbours(
        units, usable, params.neighbours, progress=progress
    )
    presence = onscreen.face_presence(series, known, params.window_s, params.face_min_score)
    warnings = warnings + data_warnings(series, presence)
    logger.info("neighbour lists ready in %.1f s", time.perf_counter() - started)

    inputs = Inputs(
        units=units,
        neighbours=neighbours,
        similarity=similarity,
        usable=usable,
        starts=np.array([line.abs_start for line in series.lines]),
        ends=np.array([line.abs_end for line in series.lines]),
        durations=np.array([line.duration for line in series.lines]),
        presence=presence.matrix,
        face_near=onscreen.face_presence(
            series, known, params.face_near_s, params.face_min_score, blind_means_present=False
        ).matrix,
        unnamed_face_near=onscreen.others_nearby(
            series, known, params.face_near_s, params.face_min_score
        ),
        known=known,
        seeds={i: code[name] for i, name in seeds.items()},
        never_seen=np.array([name in presence.never_seen for name in known], dtype=bool)
        if presence.has_faces
        else None,
        new_role_name=lambda n: new_role_label(series.language, n),
    )
    propagation = Propagation(inputs, params)
    result = propagation.run(progress=progress)
    logger.info("propagation done in %.1f s", time.perf_counter() - started)

    members = {name: [i for i, n in seeds.items() if n == name and usable[i]] for name in known}
    members = {name: lines for name, lines in members.items() if lines}
    baseline = {}
    if members:
        names, choice = voiceprint.nearest_centroid(units, usable, members)
        baseline = {i: names[c] for i, c in enumerate(choice) if c >= 0}

    records = line_records(series, result, presence, params, low_score, close_margin)
    sources = collections.Counter(r["source"] for r in records)
    header = {
        "format": FORMAT,
        "series": series.name,
        "language": series.language,
        "seed": seed,
        "seeds": seed_info,
        "parameters": {**params.as_dict(), "low_score": low_score, "close_margin": close_margin},
        "other": other_label(series.language),
        "characters": known,
        "published_known": sorted(
            series.published_known
        ),  # what correctness.published counts as known
        "new_roles": {
            result.classes[c]: int((result.labels == c).sum())
            for c in range(result.n_known, len(result.classes))
        },
        "counts": {
            "lines": len(series.lines),
            "deleted": sum(line.deleted for line in series.lines),
            "no_voiceprint": sum(
                not line.deleted and not series.embedding_ok[line.index] for line in series.lines
            ),
            "seed_lines": len(seeds),
            "characters": len(known),
            "new_roles": len(result.classes) - result.n_known,
            "by_source": dict(sorted(sources.items())),
            "propagation": result.stats,
        },
        "warnings": warnings,
        "summary": summarise(series, records, seeds, known, baseline),
    }
    return header, records


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m tools.sr.prepare`."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.prepare",
        description="Label propagation from seed lines: for every line of a series, a "
        "pseudo-label, a candidate list with voiceprint scores ending in the 'other' label, the "
        "top-1/top-2 margin and a "
        "sample type for line selection; accuracy against the ground truth (strict and "
        "candidate-aware "
        "rules, per episode and per duration) next to a voiceprint-only nearest-centroid baseline. "
        "Output: one JSON file, written atomically. Exit status 2 on bad input.",
        epilog="Sample types: wrong (the pseudo-label is wrong under the strict rule; needs a "
        "ground truth), "
        "low_score (the pseudo-label is 'other' or the top score is below --low-score), "
        "close (top-1/top-2 "
        "margin below --close-margin), confident. Accuracy leaves out seed lines and "
        "deleted lines; a ground "
        "truth outside the seeded characters (unnamed, several speakers, narration, "
        "other, an unseeded name) is right when the answer is 'other' or a new role.",
    )
    add_series_args(parser)
    parser.add_argument(
        "--seeds",
        default=None,
        metavar="FILE|select",
        help="a seed file of the series (init_seeds_*.json; default: its only one, or "
        "init_seeds_1pct.json), or 'select' to draw --seed-fraction of every known character's "
        "lines with --seed; 'select' reads the ground truth, as the published recipe does",
    )
    parser.add_argument(
        "--seed-fraction",
        type=float,
        default=0.01,
        help="share of lines --seeds select draws per character (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of --seeds select (default: %(default)s); "
        "the propagation itself draws nothing",
    )
    parser.add_argument(
        "--low-score",
        type=float,
        default=DEFAULT_LOW_SCORE,
        help="a top candidate score below this makes a line 'low_score' (default: %(default)s)",
    )
    parser.add_argument(
        "--close-margin",
        type=float,
        default=DEFAULT_CLOSE_MARGIN,
        help="a top-1/top-2 margin below this makes a line 'close' (default: %(default)s)",
    )
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=Params.max_candidates,
        help="named candidates per line before the 'other' label (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="labels.json to write, e.g. runs/<series>/labels.json",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_candidates < 1:
        parser.error("--max-candidates must be at least 1")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Load the series and its seeds, propagate, write --out atomically; 2 on bad input."""
    started = time.perf_counter()
    try:
        series = load_series_from_args(args)
        seeds, seed_info, warnings = resolve_seeds(
            series, args.seeds, args.seed_fraction, args.seed
        )
    except (SeriesError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    params = Params(max_candidates=args.max_candidates)
    header, records = prepare_labels(
        series,
        seeds,
        seed_info,
        args.seed,
        params,
        args.low_score,
        args.close_margin,
        warnings,
        progress=not args.quiet,
    )
    try:
        atomic_write_text(args.out, dumps(header, records))
    except OSError as e:
        print(f"error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    for warning in header["warnings"]:
        logger.warning("%s", warning)
    summary = header["summary"]
    logger.info(
        "%s: %d judged lines; strict %.2f%% (nearest centroid %.2f%%), candidate-aware "
        "%.2f%%, published "
        "rule %.2f%%, <1 s strict %s%%; truth in candidates or open-set %.2f%%; wrote %s in %.1f s",
        series.name,
        summary["judged_lines"],
        summary["propagation"]["strict"]["overall"]["accuracy"] or 0,
        summary["nearest_centroid"]["strict"]["overall"]["accuracy"] or 0,
        summary["propagation"]["candidate_aware"]["overall"]["accuracy"] or 0,
        summary["propagation"]["published"]["overall"]["accuracy"] or 0,
        summary["propagation"]["strict"]["by_duration"]["<1s"]["accuracy"],
        summary["truth_in_candidates_or_open_set"] or 0,
        args.out,
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
