"""PNG plots of a speaker-recognition report, drawn from report.json's content; called by
tools.sr.report only (matplotlib's object API with the Agg canvas, no pyplot state).

Character names are drawn in the first installed font that has all their glyphs; when none has
(a Chinese series on a box without CJK fonts) the plots use short codes and the legend that
comes back maps them to the names, so report.md can print it.
"""

import functools
import io
import math
from pathlib import Path

from matplotlib import font_manager, ft2font, rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tools.common.fileio import atomic_write_bytes

SERIES = (
    ("model", "strict", "model strict", "#1f77b4"),
    ("model", "candidate_aware", "model cand.-aware", "#aec7e8"),
    ("prepare", "strict", "prepare strict", "#ff7f0e"),
    ("prepare", "candidate_aware", "prepare cand.-aware", "#ffbb78"),
)


@functools.cache
def _glyphs(path: str) -> frozenset[int]:
    """Code points a font file has glyphs for (none when freetype cannot read it)."""
    try:
        return frozenset(ft2font.FT2Font(path).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()


def _needed(texts: list[str]) -> set[int]:
    return {ord(c) for text in texts for c in text if not c.isspace()}


def _default_font() -> str:
    return font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))


def _font_for(texts: list[str]) -> str | None:
    """Path of the default font if it has every glyph of `texts`, else of the first installed
    font (by path) that has; None when no font has them all."""
    needed = _needed(texts)
    # matplotlib's "Last Resort" font maps every code point to a placeholder box: no real glyphs.
    installed = sorted(
        {
            font.fname
            for font in font_manager.fontManager.ttflist
            if not font.name.startswith("Last Resort")
        }
    )
    for path in [_default_font(), *installed]:
        if needed <= _glyphs(path):
            return path
    return None


def _write_png(figure: Figure, path: Path) -> None:
    """Render to memory, then write atomically: a reader never sees half a PNG. No timestamp
    or version in the metadata, so the same report draws the same bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def _accuracy_bars(rows: list[dict], names: list[str], title: str, xlabel: str, font) -> Figure:
    """Grouped bars: per row, model and prepare accuracy under both rules."""
    figure = Figure(figsize=(max(7.0, 0.9 * len(rows) + 2.5), 4.5))  # 7 in: the legend fits
    ax = figure.add_subplot()
    width = 0.2
    for k, (source, rule, label, colour) in enumerate(SERIES):
        heights = [row[source][rule]["accuracy"] for row in rows]
        ax.bar(
            [i + (k - 1.5) * width for i in range(len(rows))],
            [math.nan if h is None else h for h in heights],
            width,
            label=label,
            color=colour,
        )
    ax.set_xticks(
        range(len(rows)),
        [f"{name}\n(n={row['lines']})" for name, row in zip(names, rows, strict=True)],
        fontproperties=font,
        rotation=30 if len(rows) > 8 else 0,
    )
    ax.set_ylim(0, 125)  # headroom above 100 % for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=4, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _hybrid(hybrid: dict) -> Figure:
    """Hybrid accuracy (both rules) against t, prepare coverage on a second axis."""
    points = hybrid["points"]
    ts = [p["t"] for p in points]
    figure = Figure(figsize=(7.0, 4.5))
    ax = figure.add_subplot()
    ax.plot(ts, [p["strict"] for p in points], marker=".", label="hybrid strict", color="#1f77b4")
    ax.plot(
        ts,
        [p["candidate_aware"] for p in points],
        marker=".",
        label="hybrid cand.-aware",
        color="#2ca02c",
    )
    ax.axhline(
        hybrid["model_only"]["strict"],
        linestyle="--",
        color="#1f77b4",
        alpha=0.5,
        label="model only, strict",
    )
    ax.axhline(
        hybrid["prepare_only"]["strict"],
        linestyle=":",
        color="#ff7f0e",
        alpha=0.8,
        label="prepare only, strict",
    )
    best = hybrid["best"]
    if isinstance(best["t"], float | int):
        ax.axvline(best["t"], color="grey", alpha=0.5)
        ax.annotate(
            f"best t={best['t']:g}",
            (best["t"], best["strict"]),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize="small",
        )
    ax.set_ylim(0, 105)
    ax.set_xlabel("t: prepare's label where its margin ≥ t, the model elsewhere")
    ax.set_ylabel("accuracy (%)")
    coverage = ax.twinx()
    coverage.plot(
        ts,
        [p["prepare_coverage"] for p in points],
        color="#7f7f7f",
        linewidth=1,
        label="prepare coverage",
    )
    coverage.set_ylim(0, 105)
    coverage.set_ylabel("lines labelled by prepare (%)")
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = coverage.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize="small", loc="lower left")
    ax.set_title("Hybrid of prepare and the model")
    figure.tight_layout()
    return figure


def _confusion(table: dict, rows: list[str], columns: list[str], font) -> Figure:
    """Counts of truth (rows) against answer (columns)."""
    counts = table["counts"]
    figure = Figure(figsize=(0.7 * len(columns) + 3.0, 0.6 * len(rows) + 2.5))
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap="Blues", aspect="auto")
    figure.colorbar(image, ax=ax)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontproperties=font)
    ax.set_yticks(range(len(rows)), rows, fontproperties=font)
    ax.set_xlabel("answer")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion of the top characters")
    peak = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if count > peak / 2 else "black",
                )
    figure.tight_layout()
    return figure


def write_plots(report: dict, out_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Draw every plot into `out_dir`; return ({plot: file name}, {code: character name})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    accuracy, table = report["accuracy"], report["confusion"]
    names = [row["character"] for row in accuracy["by_character"]]
    texts = list(dict.fromkeys([*names, *table["rows"], *table["columns"]]))
    font_path = _font_for(texts)
    legend = {}
    if font_path is None:
        font_path = _default_font()
        for text in texts:
            if not _needed([text]) <= _glyphs(font_path):
                legend[f"C{len(legend) + 1}"] = text
    shown = {name: code for code, name in legend.items()}
    font = font_manager.FontProperties(fname=font_path)

    def label(text: str) -> str:
        return shown.get(text, text)

    durations, episodes = accuracy["by_duration"], accuracy["by_episode"]
    figures = {
        "accuracy_by_duration": _accuracy_bars(
            durations,
            [r["bucket"] for r in durations],
            "Accuracy by line duration",
            "duration",
            font,
        ),
        "accuracy_by_episode": _accuracy_bars(
            episodes, [str(r["episode"]) for r in episodes], "Accuracy by episode", "episode", font
        ),
        "accuracy_by_character": _accuracy_bars(
            accuracy["by_character"],
            [label(n) for n in names],
            "Accuracy by character (ground truth)",
            "character",
            font,
        ),
        "hybrid_curve": _hybrid(report["hybrid"]),
        "confusion_top_characters": _confusion(
            table, [label(r) for r in table["rows"]], [label(c) for c in table["columns"]], font
        ),
    }
    files = {}
    for name, figure in figures.items():
        files[name] = f"{name}.png"
        _write_png(figure, out_dir / files[name])
    return files, legend


def write_series_plots(report: dict, out_dir: Path) -> dict[str, str]:
    """Draw the several-series overview's plots into `out_dir`; return {plot: file name}.
    Series names are identifiers, so the default font draws them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    font = font_manager.FontProperties(fname=_default_font())
    overall = report["overall"]
    rows = [*report["by_series"], overall["lines_weighted"], overall["drama_averaged"]]
    names = [*report["series"], "all (lines-\nweighted)", "all (drama-\naveraged)"]
    durations = report["accuracy"]["by_duration"]
    figures = {
        "accuracy_by_series": _accuracy_bars(rows, names, "Accuracy by series", "series", font),
        "accuracy_by_duration": _accuracy_bars(
            durations,
            [r["bucket"] for r in durations],
            "Accuracy by line duration, all series",
            "duration",
            font,
        ),
        "hybrid_curve": _hybrid(report["hybrid"]),
    }
    files = {}
    for name, figure in figures.items():
        files[name] = f"{name}.png"
        _write_png(figure, out_dir / files[name])
    return files
