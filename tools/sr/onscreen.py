"""Who is on screen around each line, from the series' face detections; used by prepare.

A face counts at a line when a detection with at least `min_score` falls within `window_s`
seconds of the line (the same inclusive window as `Faces.between`). For *presence* (may this
character be speaking here?) missing evidence is not absence: without face_data, or in an
episode without a single detection, every character counts as present. For *nearby* faces
(evidence about who speaks) nothing is assumed where nothing was detected.
"""

from dataclasses import dataclass

import numpy as np

from plugins.speaker_rec.series import Series


@dataclass
class Presence:
    """`matrix[i, c]`: character `names[c]` is present around line i. `blind_episodes` lists
    the episodes without any detection; `never_seen` the names no detection ever matched."""

    names: list[str]
    matrix: np.ndarray
    blind_episodes: list[int]
    never_seen: list[str]
    has_faces: bool


def _detections_near(
    series: Series, wanted: np.ndarray, codes: np.ndarray, window_s: float, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """(line, code) for every detection kept by `wanted` within `window_s` of a line."""
    faces = series.faces
    keep = wanted & (faces.scores >= min_score)
    times, codes = faces.abs_time[keep], codes[keep]
    starts = np.array([line.abs_start for line in series.lines])
    ends = np.array([line.abs_end for line in series.lines])
    lo = np.searchsorted(times, starts - window_s, side="left")
    hi = np.searchsorted(times, ends + window_s, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(series.lines)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, codes[np.repeat(lo, counts) + offsets]


def _blind_episodes(series: Series) -> list[int]:
    times = series.faces.abs_time
    blind = []
    for episode in series.episodes:
        last = episode.abs_offset + episode.end - episode.start
        if np.searchsorted(times, episode.abs_offset, "left") == np.searchsorted(
            times, last, "right"
        ):
            blind.append(episode.number)
    return blind


def face_presence(
    series: Series,
    names: list[str],
    window_s: float,
    min_score: float,
    blind_means_present: bool = True,
) -> Presence:
    """Faces of each of `names` around each line of `series`."""
    n = len(series.lines)
    matrix = np.zeros((n, len(names)), dtype=bool)
    if series.faces is None or len(series.faces.names) == 0:
        matrix[:] = blind_means_present
        return Presence(names, matrix, [e.number for e in series.episodes], list(names), False)
    code_of = {name: c for c, name in enumerate(names)}
    codes = np.array([code_of.get(name, -1) for name in series.faces.names], dtype=np.int64)
    rows, found = _detections_near(series, codes >= 0, codes, window_s, min_score)
    matrix[rows, found] = True
    blind = _blind_episodes(series)
    if blind_means_present:
        for number in blind:
            episode = series.episodes[number - 1]
            matrix[episode.first_line : episode.first_line + episode.n_lines] = True
    seen = set(found.tolist())
    never_seen = [name for c, name in enumerate(names) if c not in seen]
    return Presence(names, matrix, blind, never_seen, True)


def others_nearby(
    series: Series, names: list[str], window_s: float, min_score: float
) -> np.ndarray:
    """Per line: a face of someone not in `names` (another character, or an unknown-face
    cluster) within `window_s`."""
    nearby = np.zeros(len(series.lines), dtype=bool)
    if series.faces is None or len(series.faces.names) == 0:
        return nearby
    named = set(names)
    others = np.array([name not in named for name in series.faces.names])
    rows, _ = _detections_near(
        series, others, np.zeros(len(others), dtype=np.int64), window_s, min_score
    )
    nearby[rows] = True
    return nearby
