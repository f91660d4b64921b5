"""Load and validate one drama series in the DramaSR-LRM `drama_data/<series>/` layout.

    <series>/subtitle_data/NNNN.json   lines with times, text and ground-truth speaker
    <series>/sv_embedding/NNNN.npy     one voiceprint row per line
    <series>/face_data/NNNN.json       single-frame face detections (optional)
    <series>/face_data/face_info.json  known characters and name variants (optional)
    <series>/relation.json             characters, relations, label-name mapping (optional)
    <series>/caption.json              brief and detailed scene captions (optional)
    <series>/init_seeds_*.json         labelled seed lines (optional)

Lines get a global index (episodes concatenated in order) and an absolute time on one
timeline across episodes. A missing optional part leaves its attribute None so the matching
tool is switched off; anything malformed raises SeriesError naming the file and the reason.
Files are read by the rules of series_files (regular files only, a size limit, no symlinks out
of the data directory unless allowed, a BOM accepted).

Real releases differ in small ways that are read, not refused, and reported in
`Series.warnings` (also logged), with counts: fields nobody here knows are ignored; a
timestamp whose minutes or seconds field is 60 is read arithmetically, as the published code
reads it (`00:25:60.000` = `00:26:00.000`); hidden files (`.DS_Store`) in an episode directory
are skipped.

Used by every speaker-recognition step: prepare, traces, the tool server, eval and report.
"""

import bisect
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plugins.speaker_rec import labels as label_rules
from plugins.speaker_rec.labels import LabelKind
from plugins.speaker_rec.series_files import (
    DEFAULT_POLICY,
    DataDir,
    ReadPolicy,
    SeriesError,
    show,
)

__all__ = [
    "Caption",
    "Captions",
    "Episode",
    "Faces",
    "Line",
    "ReadPolicy",
    "Relations",
    "Series",
    "SeriesError",
    "load_series",
    "parse_timestamp",
    "series_dir",
]

logger = logging.getLogger(__name__)

SERIES_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
EPISODE_FILE = re.compile(r"^([0-9]{4})\.(json|npy)$")
# Minutes and seconds of 60 occur in the release; they roll over (see parse_timestamp).
TIMESTAMP = re.compile(r"^([0-9]{2}):([0-5][0-9]|60):([0-5][0-9]|60)\.([0-9]{3})$")
# The upstream timeline pads each episode by 10 s on both sides so that time windows
# around the first and last lines do not reach into the neighbouring episode.
EPISODE_PADDING_S = 10.0
CJK = re.compile(r"[\u4e00-\u9fff]")
# Truths containing this count as known characters under the published judging rule.
PUBLISHED_NARRATION = "旁白"

EPISODE_FIELDS = {"episode_idx", "objects", "object_list"}
EPISODE_OPTIONAL = {"mainbody"}
LINE_FIELDS = {"episode_idx", "object_idx", "start_time", "end_time", "text"}
LINE_OPTIONAL = {"character", "start_frame", "end_frame", "geometry", "auxiliary_text", "overlap"}
FACE_FIELDS = {"start_time", "id_list"}
FACE_OPTIONAL = {
    "episode_idx",
    "object_idx",
    "end_time",
    "start_frame",
    "end_frame",
    "geometry",
    "ids",
}


class _Load:
    """One load in progress: how its files are read, and what it tolerated, counted per
    directory and turned into warnings at the end."""

    def __init__(self, files: DataDir):
        self.files = files
        self.unknown: dict[tuple[Path, str], list] = {}  # (dir, field) -> [records, files]
        self.rollovers: dict[Path, list] = {}  # dir -> [timestamps, files, first place]
        self.hidden: dict[Path, list[str]] = {}  # dir -> hidden file names
        self.times: dict[str, float] = {}  # timestamp text -> seconds, for repeated values

    def timestamp(self, value: object, path: Path, where: str) -> float:
        """`parse_timestamp`, remembering well-formed values without a field of 60: a release
        repeats the same times many times over (start = end, several faces in one frame)."""
        if type(value) is str:
            seconds = self.times.get(value)
            if seconds is not None:
                return seconds
        seconds = parse_timestamp(value, path, where, self)
        if ":60" not in value:  # a str, or parse_timestamp would have refused it
            self.times[value] = seconds
        return seconds

    def unknown_fields(self, path: Path, fields) -> None:
        for name in fields:
            entry = self.unknown.setdefault((path.parent, name), [0, {}])
            entry[0] += 1
            entry[1][path.name] = entry[1].get(path.name, 0) + 1

    def rollover(self, path: Path, where: str, value: str) -> None:
        entry = self.rollovers.setdefault(path.parent, [0, {}, f"{path.name} {where} {value!r}"])
        entry[0] += 1
        entry[1][path.name] = entry[1].get(path.name, 0) + 1

    def hidden_file(self, path: Path) -> None:
        self.hidden.setdefault(path.parent, []).append(path.name)

    def warnings(self) -> list[str]:
        out = []
        for directory, names in sorted(self.hidden.items(), key=lambda kv: str(kv[0])):
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"{directory}: {len(names)} hidden file(s) ignored: {shown}")
        for (directory, name), (records, files) in sorted(
            self.unknown.items(), key=lambda kv: str(kv[0])
        ):
            out.append(
                f"{directory}: unknown field {name!r} ignored in {records} record(s) of "
                f"{len(files)} file(s): {_per_file(files)}"
            )
        for directory, (count, files, first) in sorted(
            self.rollovers.items(), key=lambda kv: str(kv[0])
        ):
            out.append(
                f"{directory}: {count} timestamp(s) with a minutes or seconds field of 60, read "
                f"arithmetically (00:25:60.000 = 00:26:00.000) in {_per_file(files)}; "
                f"first: {first}"
            )
        return out


def _per_file(counts: dict[str, int], shown: int = 5) -> str:
    names = sorted(counts)
    text = ", ".join(f"{name} ({counts[name]})" for name in names[:shown])
    return text + (f" and {len(names) - shown} more file(s)" if len(names) > shown else "")


@dataclass(frozen=True)
class Line:
    """One subtitle line; `index` is global across episodes, times are in seconds."""

    index: int
    episode: int
    local_index: int
    start: float
    end: float
    abs_start: float
    abs_end: float
    text: str
    label: str | None
    speaker: str | None
    kind: LabelKind
    auxiliary_text: str = ""
    overlap: bool = False  # the release marks lines whose speech overlaps another's

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def deleted(self) -> bool:
        return self.kind is LabelKind.DELETED


@dataclass(frozen=True)
class Episode:
    """Episode `number` (1-based, as in the file name) and where it sits on the timeline."""

    number: int
    first_line: int
    n_lines: int
    start: float
    end: float
    abs_offset: float

    def to_abs(self, t: float) -> float:
        """Episode-relative seconds to absolute seconds on the series timeline."""
        return t - self.start + self.abs_offset


@dataclass
class Faces:
    """Face detections sorted by absolute time; names are canonical role names or
    unknown-face cluster ids."""

    abs_time: np.ndarray
    names: list[str]
    scores: np.ndarray

    def between(self, abs_start: float, abs_end: float) -> list[tuple[str, float, float]]:
        """(name, score, abs_time) of every detection with abs_start <= time <= abs_end."""
        lo = bisect.bisect_left(self.abs_time, abs_start)
        hi = bisect.bisect_right(self.abs_time, abs_end)
        return [
            (self.names[i], float(self.scores[i]), float(self.abs_time[i])) for i in range(lo, hi)
        ]


@dataclass(frozen=True)
class Caption:
    episode: int
    abs_start: float
    abs_end: float
    text: str


@dataclass
class Captions:
    """Scene captions: brief ones cover a minute or two, detailed ones a few seconds."""

    brief: list[Caption]
    detailed: list[Caption]


@dataclass
class Relations:
    """relation.json: `edges` are (A, B, rel) meaning "A is B's rel"."""

    characters: list[str]
    edges: list[tuple[str, str, str]]
    name_mapping: dict[str, str | None]


@dataclass
class Series:
    """A loaded series. `embeddings[i]` is line i's voiceprint; rows that are not finite
    stay in place (indices must not shift) and are flagged False in `embedding_ok`.

    `known_characters` are face_info.json's role_name_variants keys; `published_known` is what
    the published code's judging rule (correctness.published) counts as known: those of them
    seen as a top-1 face name in the series, plus every truth containing 旁白."""

    name: str
    root: Path
    language: str
    episodes: list[Episode]
    lines: list[Line]
    embeddings: np.ndarray
    embedding_ok: np.ndarray
    known_characters: list[str] = field(default_factory=list)
    faces: Faces | None = None
    relations: Relations | None = None
    captions: Captions | None = None
    seed_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published_known: frozenset[str] = frozenset()
    policy: ReadPolicy = DEFAULT_POLICY  # how seed files are read when asked for

    def __len__(self) -> int:
        return len(self.lines)

    def seeds(self, file_name: str | None = None) -> dict[int, str]:
        """Seed labels {global line index: name} from one `init_seeds_*.json`.

        Without `file_name`, the only seed file, or `init_seeds_1pct.json` among several."""
        if file_name is None:
            if not self.seed_files:
                raise SeriesError(self.root, "no init_seeds_*.json file in this series")
            if len(self.seed_files) > 1 and "init_seeds_1pct.json" not in self.seed_files:
                raise SeriesError(self.root, f"several seed files, choose one of {self.seed_files}")
            file_name = self.seed_files[0] if len(self.seed_files) == 1 else "init_seeds_1pct.json"
        if file_name not in self.seed_files:
            raise SeriesError(
                self.root / file_name, f"no such seed file; available: {self.seed_files}"
            )
        return _read_seeds(
            DataDir(self.root.parent, self.policy), self.root / file_name, len(self.lines)
        )


def series_dir(name: str, data_dir: Path | str) -> Path:
    """Directory of series `name` under `data_dir`; the name must be an identifier."""
    data_dir = Path(data_dir)
    if not SERIES_NAME.match(name or ""):
        raise SeriesError(
            data_dir,
            f"series name {name!r} is not an identifier "
            "(letters, digits, '_' and '-'; never a path)",
        )
    root = data_dir / name
    if not (root / "subtitle_data").is_dir():
        available = sorted(p.parent.name for p in data_dir.glob("*/subtitle_data"))
        raise SeriesError(data_dir, f"unknown series {name!r}; available: {available or 'none'}")
    return root


def load_series(name: str, data_dir: Path | str, policy: ReadPolicy = DEFAULT_POLICY) -> Series:
    """Load and validate series `name` from `data_dir` (a `drama_data/` directory), reading
    its files by `policy` (size limit, symlinks out of `data_dir`)."""
    root = series_dir(name, data_dir)
    load = _Load(DataDir(data_dir, policy))
    load.files.check_inside(root)
    numbers = _episode_numbers(root / "subtitle_data", load)
    relations = (
        _read_relations(root / "relation.json", load)
        if os.path.lexists(root / "relation.json")
        else None
    )
    mapping = relations.name_mapping if relations else {}
    episodes, lines = _read_subtitles(root / "subtitle_data", numbers, mapping, load)
    embeddings = _read_embeddings(root / "sv_embedding", numbers, episodes, load)
    embedding_ok = np.isfinite(embeddings).all(axis=1)
    if not embedding_ok.all():
        logger.info("%s: %d voiceprint rows are not finite", name, int((~embedding_ok).sum()))
    known, faces = [], None
    if load.files.is_dir(root / "face_data"):
        known, faces = _read_faces(root / "face_data", numbers, episodes, load)
    captions = (
        _read_captions(root / "caption.json", episodes, load)
        if os.path.lexists(root / "caption.json")
        else None
    )
    seen = set(faces.names) & set(known) if faces else set()
    narration = {
        line.speaker
        for line in lines
        if line.speaker and not line.deleted and PUBLISHED_NARRATION in line.speaker
    }
    warnings = load.warnings()
    for warning in warnings:
        logger.warning("%s", warning)
    return Series(
        name=name,
        root=root,
        language=_detect_language(lines),
        episodes=episodes,
        lines=lines,
        embeddings=embeddings,
        embedding_ok=embedding_ok,
        known_characters=known,
        faces=faces,
        relations=relations,
        captions=captions,
        seed_files=sorted(p.name for p in root.glob("init_seeds_*.json")),
        warnings=warnings,
        published_known=frozenset(seen | narration),
        policy=policy,
    )


def parse_timestamp(value: object, path: Path, where: str, load: _Load | None = None) -> float:
    """'HH:MM:SS.mmm' to seconds. A minutes or seconds field of 60 is read arithmetically, as the
    published code reads it ('00:25:60.000' is 1560 s), and counted in `load`."""
    match = TIMESTAMP.match(value) if isinstance(value, str) else None
    if not match:
        raise SeriesError(path, f"bad timestamp {show(value)}, expected HH:MM:SS.mmm", where)
    h, m, s, ms = map(int, match.groups())
    if (m == 60 or s == 60) and load is not None:
        load.rollover(path, where, value)
    return h * 3600 + m * 60 + s + ms / 1000


def _expect(condition: bool, path: Path, reason: str, where: str | None = None) -> None:
    if not condition:
        raise SeriesError(path, reason, where)


def _check_fields(
    obj: object, required: set, optional: set, path: Path, where: str, load: _Load
) -> None:
    """Required fields present; unknown ones are counted (a warning), not refused. Runs once per
    record, so messages are only formatted on failure."""
    if not isinstance(obj, dict):
        raise SeriesError(path, f"expected an object, got {type(obj).__name__}", where)
    keys = obj.keys()
    if keys >= required and not keys - required - optional:
        return
    missing = required - keys
    if missing:
        raise SeriesError(path, f"missing field(s) {sorted(missing)}", where)
    unknown = keys - required - optional
    if unknown:
        load.unknown_fields(path, sorted(unknown))


def _episode_files(directory: Path, suffix: str, load: _Load) -> list[int]:
    """Numbers of the `NNNN<suffix>` files in `directory`; hidden files are skipped (and
    warned about), any other file is an error."""
    _expect(directory.is_dir(), directory, "directory is missing")
    numbers = []
    for path in load.files.list_dir(directory):
        match = EPISODE_FILE.match(path.name)
        if path.name.startswith("."):
            load.hidden_file(path)
        elif match and path.suffix == suffix:
            _expect(match.group(1) != "0000", path, "episode files are numbered from 0001")
            numbers.append(int(match.group(1)))
        elif not (directory.name == "face_data" and path.name == "face_info.json"):
            raise SeriesError(path, f"unexpected file; episodes are named NNNN{suffix}")
    _expect(bool(numbers), directory, f"no episode files (NNNN{suffix})")
    return numbers


def _numbered(numbers: list[int], shown: int = 10) -> str:
    text = ", ".join(f"{n:04d}" for n in numbers[:shown])
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def _episode_numbers(directory: Path, load: _Load) -> list[int]:
    """Episodes of subtitle_data, which define the series: they must run 0001..n."""
    numbers = _episode_files(directory, ".json", load)
    missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
    _expect(
        not missing,
        directory,
        "episodes must run from 0001 without gaps; missing " + _numbered(missing),
    )
    return numbers


def _same_episodes(directory: Path, suffix: str, numbers: list[int], load: _Load) -> None:
    """Per-episode files of another part must match subtitle_data's episodes exactly."""
    found = _episode_files(directory, suffix, load)
    extra = sorted(set(found) - set(numbers))
    missing = sorted(set(numbers) - set(found))
    _expect(
        not extra,
        directory,
        f"extra episode(s) {_numbered(extra)} not in subtitle_data ({len(numbers)} episodes)",
    )
    _expect(not missing, directory, f"missing episode(s) {_numbered(missing)}")


def _episode_objects(path: Path, number: int, load: _Load) -> tuple[list[dict], dict | None]:
    """(`object_list` as a list, `mainbody` or None) of an episode file, envelope checked."""
    data = load.files.read_json(path)
    _check_fields(data, EPISODE_FIELDS, EPISODE_OPTIONAL, path, "top level", load)
    _expect(
        data["episode_idx"] == number - 1,
        path,
        f"episode_idx is {show(data['episode_idx'])}, expected {number - 1} (0-based) "
        f"for file {number:04d}",
    )
    objects = data["object_list"]
    _expect(isinstance(objects, dict), path, "object_list must be an object keyed '0', '1', ...")
    _expect(
        data["objects"] == len(objects),
        path,
        f"objects says {show(data['objects'])} but object_list has {len(objects)} entries",
    )
    mainbody = data.get("mainbody")
    _expect(
        mainbody is None or isinstance(mainbody, dict),
        path,
        "mainbody must be an object",
        "mainbody",
    )
    for i in range(len(objects)):
        _expect(
            str(i) in objects,
            path,
            f"object_list keys must be '0'..'{len(objects) - 1}', '{i}' is missing",
        )
    return [objects[str(i)] for i in range(len(objects))], mainbody


def _read_subtitles(
    directory: Path, numbers: list[int], mapping: dict, load: _Load
) -> tuple[list[Episode], list[Line]]:
    episodes, lines, offset = [], [], 0.0
    for number in numbers:
        path = directory / f"{number:04d}.json"
        objects, mainbody = _episode_objects(path, number, load)
        _expect(bool(objects), path, "episode has no lines")
        times = []
        for i, obj in enumerate(objects):
            where = f"object_list['{i}']"
            _check_fields(obj, LINE_FIELDS, LINE_OPTIONAL, path, where, load)
            # Plain ifs, not _expect: its message would be formatted for every one of ~10^5 records.
            if obj["object_idx"] != i:
                raise SeriesError(
                    path, f"object_idx is {show(obj['object_idx'])}, expected {i}", where
                )
            start = load.timestamp(obj["start_time"], path, where + ".start_time")
            end = load.timestamp(obj["end_time"], path, where + ".end_time")
            if end < start:
                raise SeriesError(
                    path,
                    f"end_time {obj['end_time']} is before start_time {obj['start_time']}",
                    where,
                )
            if times and start < times[-1][0]:
                raise SeriesError(
                    path,
                    f"start_time {obj['start_time']} is earlier than the previous line's",
                    where,
                )
            if not isinstance(obj["text"], str):
                raise SeriesError(path, "text must be a string", where)
            label = obj.get("character")
            if not (label is None or isinstance(label, str)):
                raise SeriesError(path, "character must be a string", where)
            auxiliary, overlap = obj.get("auxiliary_text"), obj.get("overlap")
            if not (auxiliary is None or isinstance(auxiliary, str)):
                raise SeriesError(
                    path, f"auxiliary_text must be a string, got {type(auxiliary).__name__}", where
                )
            if overlap not in (True, False, None):
                raise SeriesError(
                    path, f"overlap must be true or false, got {show(overlap)}", where
                )
            times.append((start, end))
        ep_start = (
            parse_timestamp(mainbody["start_time"], path, "mainbody.start_time", load)
            if mainbody and "start_time" in mainbody
            else times[0][0] - EPISODE_PADDING_S
        )
        ep_end = (
            parse_timestamp(mainbody["end_time"], path, "mainbody.end_time", load)
            if mainbody and "end_time" in mainbody
            else max(e for _, e in times) + EPISODE_PADDING_S
        )
        episode = Episode(number, len(lines), len(objects), ep_start, ep_end, offset)
        for i, (obj, (start, end)) in enumerate(zip(objects, times, strict=True)):
            lines.append(_make_line(len(lines), episode, i, start, end, obj, mapping))
        episodes.append(episode)
        offset += ep_end - ep_start
    return episodes, lines


def _make_line(
    index: int, episode: Episode, local: int, start: float, end: float, obj: dict, mapping: dict
) -> Line:
    label = obj.get("character")
    kind = label_rules.classify(label)
    speaker = None
    if label is not None and kind is not LabelKind.UNLABELLED:
        speaker = label_rules.canonical(label_rules.strip_deleted(label)[0], mapping)
    return Line(
        index,
        episode.number,
        local,
        start,
        end,
        episode.to_abs(start),
        episode.to_abs(end),
        obj["text"],
        label,
        speaker,
        kind,
        obj.get("auxiliary_text") or "",
        bool(obj.get("overlap")),
    )


def _read_embeddings(
    directory: Path, numbers: list[int], episodes: list[Episode], load: _Load
) -> np.ndarray:
    _same_episodes(directory, ".npy", numbers, load)
    blocks, dim = [], None
    for episode in episodes:
        path = directory / f"{episode.number:04d}.npy"
        block = load.files.read_npy(path)  # a 2-D float array
        _expect(
            block.shape[0] == episode.n_lines,
            path,
            f"{block.shape[0]} embedding rows but {episode.n_lines} subtitle lines",
        )
        _expect(
            dim is None or block.shape[1] == dim,
            path,
            f"embedding dimension {block.shape[1]} differs from earlier episodes ({dim})",
        )
        dim = block.shape[1]
        blocks.append(block.astype(np.float32, copy=False))
    return np.concatenate(blocks)


def _read_faces(
    directory: Path, numbers: list[int], episodes: list[Episode], load: _Load
) -> tuple[list[str], Faces]:
    info_path = directory / "face_info.json"
    info = load.files.read_json(info_path)
    _expect(
        isinstance(info, dict) and isinstance(info.get("role_name_variants"), dict),
        info_path,
        "role_name_variants (known character -> name variants) is missing",
    )
    known = list(info["role_name_variants"])
    variants = {name: name for name in known}
    for name, alias_list in info["role_name_variants"].items():
        for alias in str(alias_list).split("&"):
            variants.setdefault(alias, name)
    role_name = info.get("role_name") or {}
    _expect(
        isinstance(role_name, dict) and all(isinstance(name, str) for name in role_name.values()),
        info_path,
        "role_name must map names to names",
        "role_name",
    )
    for alias, name in role_name.items():
        variants.setdefault(alias, name)
    _same_episodes(directory, ".json", numbers, load)
    times, names, scores = [], [], []
    for episode in episodes:
        path = directory / f"{episode.number:04d}.json"
        objects, _ = _episode_objects(path, episode.number, load)
        for i, obj in enumerate(objects):
            where = f"object_list['{i}']"
            _check_fields(obj, FACE_FIELDS, FACE_OPTIONAL, path, where, load)
            ids = obj["id_list"]
            _expect(
                isinstance(ids, dict)
                and "0" in ids
                and isinstance(ids["0"], dict)
                and isinstance(ids["0"].get("name"), str),
                path,
                "id_list['0'].name is missing",
                where,
            )
            best = ids["0"]
            times.append(
                episode.to_abs(load.timestamp(obj["start_time"], path, where + ".start_time"))
            )
            if "end_time" in obj:  # unused, but checked and counted like every timestamp
                load.timestamp(obj["end_time"], path, where + ".end_time")
            names.append(variants.get(best["name"], best["name"]))
            score = best.get("score", 1.0)
            if type(score) not in (float, int) or not math.isfinite(score):
                raise SeriesError(
                    path,
                    f"score must be a number, got {show(score)}",
                    where + ".id_list['0'].score",
                )
            scores.append(float(score))
    order = np.argsort(np.asarray(times), kind="stable")
    return known, Faces(
        np.asarray(times)[order], [names[i] for i in order], np.asarray(scores)[order]
    )


def _read_relations(path: Path, load: _Load) -> Relations:
    data = load.files.read_json(path)
    _expect(
        isinstance(data, dict) and isinstance(data.get("character_list"), list),
        path,
        "character_list is missing",
    )
    for i, name in enumerate(data["character_list"]):
        _expect(
            isinstance(name, str),
            path,
            f"expected a name, got {show(name)}",
            f"character_list[{i}]",
        )
    relationships = data.get("relationship_list", [])
    _expect(isinstance(relationships, list), path, "relationship_list must be a list")
    edges = []
    for i, edge in enumerate(relationships):
        _expect(
            isinstance(edge, list) and len(edge) == 3 and all(isinstance(x, str) for x in edge),
            path,
            f"expected [A, B, relation], got {show(edge)}",
            f"relationship_list[{i}]",
        )
        edges.append(tuple(edge))
    mapping = data.get("character_name_mapping") or {}
    _expect(isinstance(mapping, dict), path, "character_name_mapping must be an object")
    for label, name in mapping.items():
        _expect(
            name is None or isinstance(name, str),
            path,
            f"expected a name or null, got {show(name)}",
            f"character_name_mapping[{label!r}]",
        )
    return Relations(list(data["character_list"]), edges, mapping)


def _read_captions(path: Path, episodes: list[Episode], load: _Load) -> Captions:
    data = load.files.read_json(path)
    _expect(isinstance(data, list), path, "expected a list of scenes")
    brief, detailed = [], []

    def caption(obj: dict, episode: Episode, where: str) -> Caption:
        _expect(
            isinstance(obj, dict) and isinstance(obj.get("description"), str),
            path,
            "description is missing",
            where,
        )
        start = parse_timestamp(obj.get("start_timestamp"), path, where + ".start_timestamp", load)
        end = parse_timestamp(obj.get("end_timestamp"), path, where + ".end_timestamp", load)
        _expect(end >= start, path, "end_timestamp is before start_timestamp", where)
        return Caption(
            episode.number, episode.to_abs(start), episode.to_abs(end), obj["description"]
        )

    for i, scene in enumerate(data):
        where = f"[{i}]"
        _expect(
            isinstance(scene, dict)
            and type(scene.get("episode_idx")) is int
            and 0 <= scene["episode_idx"] < len(episodes),
            path,
            f"episode_idx must be 0..{len(episodes) - 1}",
            where,
        )
        episode = episodes[scene["episode_idx"]]
        brief.append(caption(scene.get("brief_caption"), episode, where + ".brief_caption"))
        details = scene.get("detailed_caption_list", [])
        _expect(isinstance(details, list), path, "detailed_caption_list must be a list", where)
        for j, obj in enumerate(details):
            detailed.append(caption(obj, episode, f"{where}.detailed_caption_list[{j}]"))
    brief.sort(key=lambda c: c.abs_start)
    detailed.sort(key=lambda c: c.abs_start)
    return Captions(brief, detailed)


def _read_seeds(files: DataDir, path: Path, n_lines: int) -> dict[int, str]:
    data = files.read_json(path)
    _expect(
        isinstance(data, dict)
        and isinstance(data.get("character_list"), list)
        and isinstance(data.get("utterance_label"), list),
        path,
        "expected character_list and utterance_label",
    )
    names = []
    for i, entry in enumerate(data["character_list"]):
        _expect(
            isinstance(entry, dict) and isinstance(entry.get("name"), str),
            path,
            "name is missing",
            f"character_list[{i}]",
        )
        names.append(entry["name"])
    labels = data["utterance_label"]
    _expect(
        len(labels) == n_lines,
        path,
        f"utterance_label has {len(labels)} entries, the series has {n_lines} lines",
    )
    seeds = {}
    for i, entry in enumerate(labels):
        code = entry.get("code") if isinstance(entry, dict) else None
        if not (type(code) is int and -1 <= code < len(names)):
            raise SeriesError(
                path,
                f"code must be -1 or 0..{len(names) - 1}, got {show(code)}",
                f"utterance_label[{i}]",
            )
        if code >= 0:
            seeds[i] = names[code]
    return seeds


def _detect_language(lines: list[Line]) -> str:
    """'zh' when CJK characters dominate the subtitle text, else 'en'."""
    sample = "".join(line.text for line in lines[:2000])
    letters = sum(ch.isalpha() for ch in sample) or 1
    return "zh" if len(CJK.findall(sample)) / letters > 0.3 else "en"
