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

Real releases differ in small ways that are read, not refused, and reported in
`Series.warnings` (also logged), with counts: fields nobody here knows are ignored; a
timestamp whose minutes or seconds field is 60 is read arithmetically, as the published code
reads it (`00:25:60.000` = `00:26:00.000`).
Used by every speaker-recognition step: prepare, traces, the tool server, eval and report.
"""

import bisect
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plugins.speaker_rec import labels as label_rules
from plugins.speaker_rec.labels import LabelKind

log = logging.getLogger(__name__)

SERIES_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
EPISODE_FILE = re.compile(r"^(\d{4})\.(json|npy)$")
# Minutes and seconds of 60 occur in the release; they roll over (see parse_timestamp).
TIMESTAMP = re.compile(r"^(\d{2}):([0-5]\d|60):([0-5]\d|60)\.(\d{3})$")
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
FACE_OPTIONAL = {"episode_idx", "object_idx", "end_time", "start_frame", "end_frame", "geometry", "ids"}


class SeriesError(ValueError):
    """A series on disk is malformed; names the file, where in it, and why."""

    def __init__(self, path: Path | str, reason: str, where: str | None = None):
        self.path, self.reason, self.where = Path(path), reason, where
        location = f"{self.path}: {where}" if where else str(self.path)
        super().__init__(f"{location}: {reason}")


class _Findings:
    """What a load tolerated, counted per directory, turned into warnings at the end."""

    def __init__(self):
        self.unknown: dict[tuple[Path, str], list] = {}  # (dir, field) -> [records, files]
        self.rollovers: dict[Path, list] = {}  # dir -> [timestamps, files, first place]

    def unknown_fields(self, path: Path, fields) -> None:
        for name in fields:
            entry = self.unknown.setdefault((path.parent, name), [0, {}])
            entry[0] += 1
            entry[1][path.name] = entry[1].get(path.name, 0) + 1

    def rollover(self, path: Path, where: str, value: str) -> None:
        entry = self.rollovers.setdefault(path.parent, [0, {}, f"{path.name} {where} {value!r}"])
        entry[0] += 1
        entry[1][path.name] = entry[1].get(path.name, 0) + 1

    def warnings(self) -> list[str]:
        out = []
        for (directory, name), (records, files) in sorted(self.unknown.items(), key=lambda kv: str(kv[0])):
            out.append(f"{directory}: unknown field {name!r} ignored in {records} record(s) of "
                       f"{len(files)} file(s): {_per_file(files)}")
        for directory, (count, files, first) in sorted(self.rollovers.items(), key=lambda kv: str(kv[0])):
            out.append(f"{directory}: {count} timestamp(s) with a minutes or seconds field of 60, read "
                       f"arithmetically (00:25:60.000 = 00:26:00.000) in {_per_file(files)}; first: {first}")
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
        return [(self.names[i], float(self.scores[i]), float(self.abs_time[i])) for i in range(lo, hi)]


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
            raise SeriesError(self.root / file_name, f"no such seed file; available: {self.seed_files}")
        return _read_seeds(self.root / file_name, len(self.lines))


def series_dir(name: str, data_dir: Path | str) -> Path:
    """Directory of series `name` under `data_dir`; the name must be an identifier."""
    data_dir = Path(data_dir)
    if not SERIES_NAME.match(name or ""):
        raise SeriesError(data_dir, f"series name {name!r} is not an identifier "
                          "(letters, digits, '_' and '-'; never a path)")
    root = data_dir / name
    if not (root / "subtitle_data").is_dir():
        available = sorted(p.parent.name for p in data_dir.glob("*/subtitle_data"))
        raise SeriesError(data_dir, f"unknown series {name!r}; available: {available or 'none'}")
    return root


def load_series(name: str, data_dir: Path | str) -> Series:
    """Load and validate series `name` from `data_dir` (a `drama_data/` directory)."""
    root = series_dir(name, data_dir)
    findings = _Findings()
    numbers = _episode_numbers(root / "subtitle_data")
    relations = _read_relations(root / "relation.json") if (root / "relation.json").exists() else None
    mapping = relations.name_mapping if relations else {}
    episodes, lines = _read_subtitles(root / "subtitle_data", numbers, mapping, findings)
    embeddings = _read_embeddings(root / "sv_embedding", numbers, episodes)
    embedding_ok = np.isfinite(embeddings).all(axis=1)
    if not embedding_ok.all():
        log.info("%s: %d voiceprint rows are not finite", name, int((~embedding_ok).sum()))
    known, faces = [], None
    if (root / "face_data").is_dir():
        known, faces = _read_faces(root / "face_data", numbers, episodes, findings)
    captions = (_read_captions(root / "caption.json", episodes, findings)
                if (root / "caption.json").exists() else None)
    seen = set(faces.names) & set(known) if faces else set()
    narration = {line.speaker for line in lines
                 if line.speaker and not line.deleted and PUBLISHED_NARRATION in line.speaker}
    warnings = findings.warnings()
    for warning in warnings:
        log.warning("%s", warning)
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
    )


def parse_timestamp(value: object, path: Path, where: str, findings: _Findings | None = None) -> float:
    """'HH:MM:SS.mmm' to seconds. A minutes or seconds field of 60 is read arithmetically, as the
    published code reads it ('00:25:60.000' is 1560 s), and counted in `findings`."""
    match = TIMESTAMP.match(value) if isinstance(value, str) else None
    if not match:
        raise SeriesError(path, f"bad timestamp {value!r}, expected HH:MM:SS.mmm", where)
    h, m, s, ms = (int(g) for g in match.groups())
    if (m == 60 or s == 60) and findings is not None:
        findings.rollover(path, where, value)
    return h * 3600 + m * 60 + s + ms / 1000


def _read_json(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SeriesError(path, "file is missing") from None
    except json.JSONDecodeError as e:
        raise SeriesError(path, f"malformed JSON: {e.msg}", f"line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise SeriesError(path, f"not UTF-8 ({e.reason} at byte {e.start})") from None


def _expect(condition: bool, path: Path, reason: str, where: str | None = None) -> None:
    if not condition:
        raise SeriesError(path, reason, where)


def _check_fields(obj: object, required: set, optional: set, path: Path, where: str,
                  findings: _Findings) -> None:
    """Required fields present; unknown ones are counted (a warning), not refused."""
    _expect(isinstance(obj, dict), path, f"expected an object, got {type(obj).__name__}", where)
    missing = required - obj.keys()
    _expect(not missing, path, f"missing field(s) {sorted(missing)}", where)
    unknown = obj.keys() - required - optional
    if unknown:
        findings.unknown_fields(path, sorted(unknown))


def _episode_files(directory: Path, suffix: str) -> list[int]:
    """Numbers of the `NNNN<suffix>` files in `directory`; any other file is an error."""
    _expect(directory.is_dir(), directory, "directory is missing")
    numbers = []
    for path in sorted(directory.iterdir()):
        match = EPISODE_FILE.match(path.name)
        if match and path.suffix == suffix:
            numbers.append(int(match.group(1)))
        elif not (directory.name == "face_data" and path.name == "face_info.json"):
            raise SeriesError(path, f"unexpected file; episodes are named NNNN{suffix}")
    _expect(bool(numbers), directory, f"no episode files (NNNN{suffix})")
    return numbers


def _episode_numbers(directory: Path) -> list[int]:
    """Episodes of subtitle_data, which define the series: they must run 0001..n."""
    numbers = _episode_files(directory, ".json")
    missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
    _expect(not missing, directory, "episodes must run from 0001 without gaps; missing "
            + ", ".join(f"{n:04d}" for n in missing))
    return numbers


def _same_episodes(directory: Path, suffix: str, numbers: list[int]) -> None:
    """Per-episode files of another part must match subtitle_data's episodes exactly."""
    found = _episode_files(directory, suffix)
    extra = sorted(set(found) - set(numbers))
    missing = sorted(set(numbers) - set(found))
    _expect(not extra, directory, f"extra episode(s) {', '.join(f'{n:04d}' for n in extra)} "
            f"not in subtitle_data ({len(numbers)} episodes)")
    _expect(not missing, directory, f"missing episode(s) {', '.join(f'{n:04d}' for n in missing)}")


def _episode_objects(path: Path, number: int, findings: _Findings) -> tuple[list[dict], dict | None]:
    """(`object_list` as a list, `mainbody` or None) of an episode file, envelope checked."""
    data = _read_json(path)
    _check_fields(data, EPISODE_FIELDS, EPISODE_OPTIONAL, path, "top level", findings)
    _expect(data["episode_idx"] == number - 1, path,
            f"episode_idx is {data['episode_idx']!r}, expected {number - 1} (0-based) for file {number:04d}")
    objects = data["object_list"]
    _expect(isinstance(objects, dict), path, "object_list must be an object keyed '0', '1', ...")
    _expect(data["objects"] == len(objects), path,
            f"objects says {data['objects']!r} but object_list has {len(objects)} entries")
    for i in range(len(objects)):
        _expect(str(i) in objects, path, f"object_list keys must be '0'..'{len(objects) - 1}', '{i}' is missing")
    return [objects[str(i)] for i in range(len(objects))], data.get("mainbody")


def _read_subtitles(directory: Path, numbers: list[int], mapping: dict,
                    findings: _Findings) -> tuple[list[Episode], list[Line]]:
    episodes, lines, offset = [], [], 0.0
    for number in numbers:
        path = directory / f"{number:04d}.json"
        objects, mainbody = _episode_objects(path, number, findings)
        _expect(bool(objects), path, "episode has no lines")
        times = []
        for i, obj in enumerate(objects):
            where = f"object_list['{i}']"
            _check_fields(obj, LINE_FIELDS, LINE_OPTIONAL, path, where, findings)
            # Plain ifs, not _expect: its message would be formatted for every one of ~10^5 records.
            if obj["object_idx"] != i:
                raise SeriesError(path, f"object_idx is {obj['object_idx']!r}, expected {i}", where)
            start = parse_timestamp(obj["start_time"], path, where + ".start_time", findings)
            end = parse_timestamp(obj["end_time"], path, where + ".end_time", findings)
            if end < start:
                raise SeriesError(path, f"end_time {obj['end_time']} is before start_time {obj['start_time']}", where)
            if times and start < times[-1][0]:
                raise SeriesError(path, f"start_time {obj['start_time']} is earlier than the previous line's", where)
            if not isinstance(obj["text"], str):
                raise SeriesError(path, "text must be a string", where)
            label = obj.get("character")
            if not (label is None or isinstance(label, str)):
                raise SeriesError(path, "character must be a string", where)
            auxiliary, overlap = obj.get("auxiliary_text"), obj.get("overlap")
            if not (auxiliary is None or isinstance(auxiliary, str)):
                raise SeriesError(path, f"auxiliary_text must be a string, got {type(auxiliary).__name__}", where)
            if overlap not in (True, False, None):
                raise SeriesError(path, f"overlap must be true or false, got {overlap!r}", where)
            times.append((start, end))
        ep_start = (parse_timestamp(mainbody["start_time"], path, "mainbody.start_time", findings)
                    if mainbody and "start_time" in mainbody else times[0][0] - EPISODE_PADDING_S)
        ep_end = (parse_timestamp(mainbody["end_time"], path, "mainbody.end_time", findings)
                  if mainbody and "end_time" in mainbody else max(e for _, e in times) + EPISODE_PADDING_S)
        episode = Episode(number, len(lines), len(objects), ep_start, ep_end, offset)
        for i, (obj, (start, end)) in enumerate(zip(objects, times)):
            lines.append(_make_line(len(lines), episode, i, start, end, obj, mapping))
        episodes.append(episode)
        offset += ep_end - ep_start
    return episodes, lines


def _make_line(index: int, episode: Episode, local: int, start: float, end: float,
               obj: dict, mapping: dict) -> Line:
    label = obj.get("character")
    kind = label_rules.classify(label)
    speaker = None
    if label is not None and kind is not LabelKind.UNLABELLED:
        speaker = label_rules.canonical(label_rules.strip_deleted(label)[0], mapping)
    return Line(index, episode.number, local, start, end, episode.to_abs(start), episode.to_abs(end),
                obj["text"], label, speaker, kind, obj.get("auxiliary_text") or "", bool(obj.get("overlap")))


def _read_embeddings(directory: Path, numbers: list[int], episodes: list[Episode]) -> np.ndarray:
    _same_episodes(directory, ".npy", numbers)
    blocks, dim = [], None
    for episode in episodes:
        path = directory / f"{episode.number:04d}.npy"
        try:
            block = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise SeriesError(path, f"not a readable .npy array ({e})") from None
        _expect(block.ndim == 2 and np.issubdtype(block.dtype, np.floating), path,
                f"expected a 2-D float array, got shape {block.shape} dtype {block.dtype}")
        _expect(block.shape[0] == episode.n_lines, path,
                f"{block.shape[0]} embedding rows but {episode.n_lines} subtitle lines")
        _expect(dim is None or block.shape[1] == dim, path,
                f"embedding dimension {block.shape[1]} differs from earlier episodes ({dim})")
        dim = block.shape[1]
        blocks.append(block.astype(np.float32, copy=False))
    return np.concatenate(blocks)


def _read_faces(directory: Path, numbers: list[int], episodes: list[Episode],
                findings: _Findings) -> tuple[list[str], Faces]:
    info_path = directory / "face_info.json"
    info = _read_json(info_path)
    _expect(isinstance(info, dict) and isinstance(info.get("role_name_variants"), dict), info_path,
            "role_name_variants (known character -> name variants) is missing")
    known = list(info["role_name_variants"])
    variants = {name: name for name in known}
    for name, alias_list in info["role_name_variants"].items():
        for alias in str(alias_list).split("&"):
            variants.setdefault(alias, name)
    for alias, name in (info.get("role_name") or {}).items():
        variants.setdefault(alias, name)
    _same_episodes(directory, ".json", numbers)
    times, names, scores = [], [], []
    for episode in episodes:
        path = directory / f"{episode.number:04d}.json"
        objects, _ = _episode_objects(path, episode.number, findings)
        for i, obj in enumerate(objects):
            where = f"object_list['{i}']"
            _check_fields(obj, FACE_FIELDS, FACE_OPTIONAL, path, where, findings)
            ids = obj["id_list"]
            _expect(isinstance(ids, dict) and "0" in ids and isinstance(ids["0"], dict)
                    and isinstance(ids["0"].get("name"), str), path, "id_list['0'].name is missing", where)
            best = ids["0"]
            times.append(episode.to_abs(parse_timestamp(obj["start_time"], path, where + ".start_time", findings)))
            if "end_time" in obj:  # unused, but checked and counted like every timestamp
                parse_timestamp(obj["end_time"], path, where + ".end_time", findings)
            names.append(variants.get(best["name"], best["name"]))
            scores.append(float(best.get("score", 1.0)))
    order = np.argsort(np.asarray(times), kind="stable")
    return known, Faces(np.asarray(times)[order], [names[i] for i in order], np.asarray(scores)[order])


def _read_relations(path: Path) -> Relations:
    data = _read_json(path)
    _expect(isinstance(data, dict) and isinstance(data.get("character_list"), list), path,
            "character_list is missing")
    edges = []
    for i, edge in enumerate(data.get("relationship_list", [])):
        _expect(isinstance(edge, list) and len(edge) == 3 and all(isinstance(x, str) for x in edge), path,
                f"expected [A, B, relation], got {edge!r}", f"relationship_list[{i}]")
        edges.append(tuple(edge))
    mapping = data.get("character_name_mapping") or {}
    _expect(isinstance(mapping, dict), path, "character_name_mapping must be an object")
    return Relations(list(data["character_list"]), edges, mapping)


def _read_captions(path: Path, episodes: list[Episode], findings: _Findings) -> Captions:
    data = _read_json(path)
    _expect(isinstance(data, list), path, "expected a list of scenes")
    brief, detailed = [], []

    def caption(obj: dict, episode: Episode, where: str) -> Caption:
        _expect(isinstance(obj, dict) and isinstance(obj.get("description"), str), path,
                "description is missing", where)
        start = parse_timestamp(obj.get("start_timestamp"), path, where + ".start_timestamp", findings)
        end = parse_timestamp(obj.get("end_timestamp"), path, where + ".end_timestamp", findings)
        _expect(end >= start, path, "end_timestamp is before start_timestamp", where)
        return Caption(episode.number, episode.to_abs(start), episode.to_abs(end), obj["description"])

    for i, scene in enumerate(data):
        where = f"[{i}]"
        _expect(isinstance(scene, dict) and isinstance(scene.get("episode_idx"), int)
                and 0 <= scene["episode_idx"] < len(episodes), path,
                f"episode_idx must be 0..{len(episodes) - 1}", where)
        episode = episodes[scene["episode_idx"]]
        brief.append(caption(scene.get("brief_caption"), episode, where + ".brief_caption"))
        for j, obj in enumerate(scene.get("detailed_caption_list", [])):
            detailed.append(caption(obj, episode, f"{where}.detailed_caption_list[{j}]"))
    brief.sort(key=lambda c: c.abs_start)
    detailed.sort(key=lambda c: c.abs_start)
    return Captions(brief, detailed)


def _read_seeds(path: Path, n_lines: int) -> dict[int, str]:
    data = _read_json(path)
    _expect(isinstance(data, dict) and isinstance(data.get("character_list"), list)
            and isinstance(data.get("utterance_label"), list), path,
            "expected character_list and utterance_label")
    names = []
    for i, entry in enumerate(data["character_list"]):
        _expect(isinstance(entry, dict) and isinstance(entry.get("name"), str), path,
                "name is missing", f"character_list[{i}]")
        names.append(entry["name"])
    labels = data["utterance_label"]
    _expect(len(labels) == n_lines, path, f"utterance_label has {len(labels)} entries, the series has {n_lines} lines")
    seeds = {}
    for i, entry in enumerate(labels):
        code = entry.get("code") if isinstance(entry, dict) else None
        _expect(isinstance(code, int) and -1 <= code < len(names), path,
                f"code must be -1 or 0..{len(names) - 1}, got {code!r}", f"utterance_label[{i}]")
        if code >= 0:
            seeds[i] = names[code]
    return seeds


def _detect_language(lines: list[Line]) -> str:
    """'zh' when CJK characters dominate the subtitle text, else 'en'."""
    sample = "".join(line.text for line in lines[:2000])
    letters = sum(ch.isalpha() for ch in sample) or 1
    return "zh" if len(CJK.findall(sample)) / letters > 0.3 else "en"
