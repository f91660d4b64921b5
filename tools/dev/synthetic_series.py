"""A large synthetic series for benchmarks, built from a real one (never committed).

Episodes of the source are repeated until the target number of lines is reached (the last
episode cut short). The first copy keeps the real voiceprints; later copies mix each line's
unit voiceprint with half of another line of the same speaker plus a little noise, so every
copy holds new but plausible voices. Subtitles, faces, relations and seeds are repeated with
the episodes. The files are written from the loaded series, in the DramaSR-LRM layout. `make bench`
builds one
in a temporary directory; to build one by hand:

    python -m tools.dev.synthetic_series --series zhan_chang_sha --data-dir ../shared/data/dramasr \
        --lines 60000 --out-dir runs/synthetic --name synthetic_60000 --seed 0
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from plugins.speaker_rec.series import SERIES_NAME, Series, SeriesError
from tools.common.series_args import add_series_args, load_series_from_args

NOISE = 0.05


def _stamp(seconds: float) -> str:
    ms = round(max(seconds, 0.0) * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def _perturbed(series: Series, rng: np.random.Generator) -> np.ndarray:
    """Every line's voiceprint mixed with another line of the same speaker, plus noise."""
    emb = series.embeddings.astype(np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    units = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    by_speaker: dict[str, list[int]] = {}
    for line in series.lines:
        if series.embedding_ok[line.index]:
            by_speaker.setdefault(line.speaker or "", []).append(line.index)
    partner = np.arange(len(series.lines))
    for members in by_speaker.values():
        partner[members] = rng.choice(members, size=len(members))
    mixed = units + 0.5 * units[partner] + NOISE * rng.standard_normal(units.shape)
    mixed[~series.embedding_ok] = np.nan
    return mixed.astype(np.float32)


def build_synthetic(
    series: Series, data_dir: Path | str, name: str, n_lines: int, seed: int
) -> Path:
    """Write series `name` with `n_lines` lines under `data_dir`; returns its directory."""
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / name
    for sub in ("subtitle_data", "sv_embedding", "face_data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    seeds = series.seeds() if series.seed_files else {}
    names = sorted(set(seeds.values()))
    codes = {n: c for c, n in enumerate(names)}
    utterances, face_names, written, number, copy = [], set(), 0, 0, 0
    while written < n_lines:
        embeddings = series.embeddings if copy == 0 else _perturbed(series, rng)
        for episode in series.episodes:
            if written >= n_lines:
                break
            number += 1
            take = min(episode.n_lines, n_lines - written)
            lines = series.lines[episode.first_line : episode.first_line + take]
            objects = {}
            for i, line in enumerate(lines):
                objects[str(i)] = {
                    "episode_idx": number - 1,
                    "object_idx": i,
                    "start_time": _stamp(line.start),
                    "end_time": _stamp(line.end),
                    "text": line.text,
                }
                if line.label is not None:
                    objects[str(i)]["character"] = line.label
                utterances.append({"code": codes[seeds[line.index]] if line.index in seeds else -1})
            _write_json(
                root / "subtitle_data" / f"{number:04d}.json",
                {"episode_idx": number - 1, "objects": len(objects), "object_list": objects},
            )
            rows = embeddings[episode.first_line : episode.first_line + take]
            np.save(root / "sv_embedding" / f"{number:04d}.npy", rows)
            faces = {}
            if series.faces is not None:
                end = episode.abs_offset + episode.end - episode.start
                lo, hi = np.searchsorted(
                    series.faces.abs_time, [episode.abs_offset, end], side="left"
                )
                for j in range(lo, hi):
                    face = series.faces.names[j]
                    face_names.add(face)
                    faces[str(len(faces))] = {
                        "start_time": _stamp(
                            series.faces.abs_time[j] - episode.abs_offset + episode.start
                        ),
                        "id_list": {"0": {"name": face, "score": float(series.faces.scores[j])}},
                    }
            _write_json(
                root / "face_data" / f"{number:04d}.json",
                {"episode_idx": number - 1, "objects": len(faces), "object_list": faces},
            )
            written += take
        copy += 1
    known = series.known_characters or sorted(face_names)
    _write_json(
        root / "face_data" / "face_info.json", {"role_name_variants": {n: n for n in known}}
    )
    if series.relations is not None:
        _write_json(
            root / "relation.json",
            {
                "character_list": series.relations.characters,
                "relationship_list": [list(edge) for edge in series.relations.edges],
                "character_name_mapping": series.relations.name_mapping,
            },
        )
    if seeds:
        _write_json(
            root / "init_seeds_1pct.json",
            {"character_list": [{"name": n} for n in names], "utterance_label": utterances},
        )
    return root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.synthetic_series",
        description="Build a synthetic series of --lines lines from a real one (repeated episodes, "
        "perturbed voiceprints, seeded) for benchmarks at sizes the real data does not reach.",
    )
    add_series_args(parser)
    parser.add_argument("--lines", type=int, required=True, help="lines of the synthetic series")
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="directory to write <name>/ into"
    )
    parser.add_argument(
        "--name", required=True, help="name of the synthetic series (an identifier)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the voiceprint perturbation")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not SERIES_NAME.match(args.name):
        parser.error(f"--name {args.name!r} is not an identifier")
    if args.lines < 1:
        parser.error("--lines must be at least 1")
    if (args.out_dir / args.name).exists():
        parser.error(f"{args.out_dir / args.name} exists; choose another --name or remove it")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Load the real series and write the synthetic one, printing its folder; 2 on a bad series."""
    try:
        series = load_series_from_args(args)
    except SeriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(build_synthetic(series, args.out_dir, args.name, args.lines, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
