"""Choose seed lines when a series has no seed file (`prepare --seeds select`).

The rule, like the published recipe, reads the ground truth: for every known character
(face_info's list, or relation.json's when there are no faces) with at least one line, take
max(1, floor(fraction x its lines)) of its lines, drawn uniformly with a seeded generator from
its lines of at least `min_seconds` that have a voiceprint (from all its lines with a
voiceprint when there are too few long ones). Deleted lines are never drawn.
"""

import numpy as np

from plugins.speaker_rec.labels import LabelKind
from plugins.speaker_rec.series import Series

MIN_SECONDS = 1.0


def known_characters(series: Series) -> list[str]:
    """The characters a seed rule may seed: face_info's, else relation.json's, else none."""
    if series.known_characters:
        return list(series.known_characters)
    return list(series.relations.characters) if series.relations else []


def select_seeds(
    series: Series, fraction: float, seed: int, min_seconds: float = MIN_SECONDS
) -> dict[int, str]:
    """{line index: character} for about `fraction` of each known character's lines."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"seed fraction must be within (0, 1], got {fraction}")
    lines_of: dict[str, list[int]] = {name: [] for name in known_characters(series)}
    for line in series.lines:
        if (
            line.kind is LabelKind.NAMED
            and line.speaker in lines_of
            and series.embedding_ok[line.index]
        ):
            lines_of[line.speaker].append(line.index)
    rng = np.random.default_rng(seed)
    seeds = {}
    for name in sorted(lines_of):
        indices = lines_of[name]
        if not indices:
            continue
        want = max(1, int(len(indices) * fraction))
        long_ones = [i for i in indices if series.lines[i].duration >= min_seconds]
        pool = long_ones if len(long_ones) >= want else indices
        for index in sorted(rng.choice(pool, size=want, replace=False).tolist()):
            seeds[index] = name
    return seeds
