"""tools.sr.report against a hand-built evaluation with known answers (tests/assets/report/).

The fixture is a toy English series: characters Alice, Bob, Cara, 林晚 (Dan is named but not in
the inventory), other label "other", three episodes. labels.json has 21 lines: 0-20; line 12 has
no ground truth, lines 6 and 20 are seed lines, so 18 lines are judged. results.jsonl has 18
records (lines 0-17): 16 judged evaluated lines, plus seed line 6 and truthless line 12.

The 16 judged evaluated lines, with (strict, candidate-aware) correctness, 1 = right:

    line ep dur  margin sample     truth  prepare label  model answer
     0   1  0.5  0.40  confident  Alice  Alice  (1,1)   Alice (1,1)
     1   1  0.8  0.05  wrong      Bob    Alice  (0,0)   Bob   (1,1)
     2   1  1.5  0.30  confident  Alice  Alice  (1,1)   Alice (1,1)
     3   1  3.0  0.10  wrong      Cara   Bob    (0,0)   other (0,1)  Cara not a candidate
     4   1  5.0  0.20  low_score  Bob    Bob    (1,1)   Bob   (1,1)
     5   1  9.0  0.00  wrong      Cara   other  (0,1)   other (0,1)  Cara not a candidate
     7   2  0.3  0.15  wrong      Alice  Bob    (0,0)   none  (0,0)  incomplete
     8   2  1.0  0.03  close      Bob    Bob    (1,1)   Alice (0,0)
     9   2  2.5  0.35  confident  Alice  Alice  (1,1)   Alice (1,1)
    10   2  4.0  0.05  wrong      林晚   Alice  (0,0)   林晚  (1,1)
    11   2  7.9  0.45  confident  Bob    Bob    (1,1)   Bob   (1,1)
    13   3  0.9  0.10  wrong      林晚   Alice  (0,0)   林晚  (1,1)
    14   3  1.9  0.30  confident  Alice  Alice  (1,1)   Alice (1,1)
    15   3  2.0  0.20  low_score  Cara   Cara   (1,1)   other (0,0)
    16   3  8.0  0.15  wrong      Dan    Bob    (0,0)   Bob   (0,0)
    17   3  6.0  0.40  confident  Alice  Alice  (1,1)   Alice (1,1)

Model right: strict {0,1,2,4,9,10,11,13,14,17} = 10, candidate-aware adds {3,5} = 12.
Prepare right: strict {0,2,4,8,9,11,14,15,17} = 9, candidate-aware adds {5} = 10.
"""

import json
import shutil
import struct
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT
from tools.sr import report

ASSETS = REPO_ROOT / "tests" / "assets" / "report"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(
    lines,
    model_strict,
    model_aware,
    prepare_strict,
    prepare_aware,
    model_published=None,
    prepare_published=None,
):
    """An accuracy row from hand counts: each rule is (correct, accuracy %); the published rule's
    cells only when given."""

    def cell(pair):
        return {"correct": pair[0], "accuracy": pair[1]}

    out = {
        "lines": lines,
        "model": {"strict": cell(model_strict), "candidate_aware": cell(model_aware)},
        "prepare": {"strict": cell(prepare_strict), "candidate_aware": cell(prepare_aware)},
    }
    if model_published is not None:
        out["model"]["published"] = cell(model_published)
        out["prepare"]["published"] = cell(prepare_published)
    return out


def run_report(out_dir, results=ASSETS / "results.jsonl", labels=ASSETS / "labels.json", *extra):
    return report.main(
        [
            "--results",
            str(results),
            "--labels",
            str(labels),
            "--out-dir",
            str(out_dir),
            "--top-n",
            "2",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "a"
    assert run_report(out) == 0
    return out, json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_line_counts_and_tiny_model_warning(built):
    _, rep = built
    assert rep["lines"]["records"] == 18
    assert rep["lines"]["evaluated"] == 16
    assert rep["lines"]["judged_in_labels"] == 18  # 0-5, 7-11, 13-19
    assert rep["lines"]["not_judged"] == {"no ground truth": 1, "seed line": 1}
    assert rep["model"] == {"name": "tiny-qwen3", "tiny": True}
    assert rep["warnings"] == [report.TINY_WARNING]


def test_accuracy_overall_and_per_episode(built):
    acc = built[1]["accuracy"]
    assert acc["overall"] == row(16, (10, 62.5), (12, 75.0), (9, 56.25), (10, 62.5))
    assert acc["by_episode"] == [
        # ep 1 = lines 0-5: model {0,1,2,4} + {3,5}; prepare {0,2,4} + {5}
        {"episode": 1, **row(6, (4, 66.67), (6, 100.0), (3, 50.0), (4, 66.67))},
        # ep 2 = 7-11: model {9,10,11}; prepare {8,9,11}
        {"episode": 2, **row(5, (3, 60.0), (3, 60.0), (3, 60.0), (3, 60.0))},
        # ep 3 = 13-17: model {13,14,17}; prepare {14,15,17}
        {"episode": 3, **row(5, (3, 60.0), (3, 60.0), (3, 60.0), (3, 60.0))},
    ]


def test_accuracy_per_duration_bucket(built):
    # default edges 1,2,4,8 s; a line on an edge belongs to the bucket above it (1.0, 2.0, 4.0, 8.0)
    assert built[1]["accuracy"]["by_duration"] == [
        # lines 0,1,7,13: model {0,1,13}; prepare {0}
        {
            "bucket": "<1s",
            "from_s": 0.0,
            "to_s": 1.0,
            **row(4, (3, 75.0), (3, 75.0), (1, 25.0), (1, 25.0)),
        },
        # lines 2,8,14: model {2,14}; prepare all
        {
            "bucket": "1-2s",
            "from_s": 1.0,
            "to_s": 2.0,
            **row(3, (2, 66.67), (2, 66.67), (3, 100.0), (3, 100.0)),
        },
        # lines 3,9,15: model {9} + {3}; prepare {9,15}
        {
            "bucket": "2-4s",
            "from_s": 2.0,
            "to_s": 4.0,
            **row(3, (1, 33.33), (2, 66.67), (2, 66.67), (2, 66.67)),
        },
        # lines 4,10,11,17: model all; prepare {4,11,17}
        {
            "bucket": "4-8s",
            "from_s": 4.0,
            "to_s": 8.0,
            **row(4, (4, 100.0), (4, 100.0), (3, 75.0), (3, 75.0)),
        },
        # lines 5,16: model {} + {5}; prepare {} + {5}
        {
            "bucket": ">=8s",
            "from_s": 8.0,
            "to_s": None,
            **row(2, (0, 0.0), (1, 50.0), (0, 0.0), (1, 50.0)),
        },
    ]


def test_custom_buckets(tmp_path):
    # edges 2: lines under 2 s are 0,1,2,7,8,13,14 (7): model {0,1,2,13,14}; prepare {0,2,8,14}
    assert (
        run_report(tmp_path, ASSETS / "results.jsonl", ASSETS / "labels.json", "--buckets", "2")
        == 0
    )
    buckets = json.loads((tmp_path / "report.json").read_text())["accuracy"]["by_duration"]
    assert [(b["bucket"], b["lines"]) for b in buckets] == [("<2s", 7), (">=2s", 9)]
    assert buckets[0]["model"]["strict"] == {"correct": 5, "accuracy": 71.43}
    assert buckets[0]["prepare"]["strict"] == {"correct": 4, "accuracy": 57.14}


def test_accuracy_per_sample_type_and_character(built):
    acc = built[1]["accuracy"]
    assert acc["by_sample_type"] == [
        # wrong = 1,3,5,7,10,13,16: model {1,10,13} + {3,5}; prepare {} + {5}
        {"sample_type": "wrong", **row(7, (3, 42.86), (5, 71.43), (0, 0.0), (1, 14.29))},
        # low_score = 4,15: model {4}; prepare both
        {"sample_type": "low_score", **row(2, (1, 50.0), (1, 50.0), (2, 100.0), (2, 100.0))},
        # close = 8: model wrong, prepare right
        {"sample_type": "close", **row(1, (0, 0.0), (0, 0.0), (1, 100.0), (1, 100.0))},
        # confident = 0,2,9,11,14,17: all right
        {"sample_type": "confident", **row(6, (6, 100.0), (6, 100.0), (6, 100.0), (6, 100.0))},
    ]
    assert acc["by_character"] == [
        # Alice = 0,2,7,9,14,17 (6 lines): model and prepare both miss only line 7
        {"character": "Alice", **row(6, (5, 83.33), (5, 83.33), (5, 83.33), (5, 83.33))},
        # Bob = 1,4,8,11: model misses 8, prepare misses 1
        {"character": "Bob", **row(4, (3, 75.0), (3, 75.0), (3, 75.0), (3, 75.0))},
        # rest = Cara 3,5,15 + 林晚 10,13 + Dan 16: model {10,13} + {3,5}; prepare {15} + {5}
        {
            "character": "(rest)",
            "characters": 3,
            **row(6, (2, 33.33), (4, 66.67), (1, 16.67), (2, 33.33)),
        },
    ]


def test_hybrid_curve(built):
    hybrid = built[1]["hybrid"]
    # Raising t past a margin hands its lines from prepare to the model; change in right answers
    # (strict, candidate-aware): 0.00 line 5 (0,0); 0.03 line 8 (-1,-1); 0.05 lines 1,10 (+2,+2);
    # 0.10 lines 3,13 (+1,+2); 0.15 lines 7,16 (0,0); 0.20 lines 4,15 (-1,-1); higher margins (0,0).
    # Start from prepare only: 9 strict, 10 aware, of 16.
    expected = [
        (0.0, 100.0, 56.25, 62.5),  # nothing below t: 9, 10
        (0.03, 93.75, 56.25, 62.5),  # line 5 to the model: 9, 10; prepare keeps 15
        (0.05, 87.5, 50.0, 56.25),  # + line 8: 8, 9; 14
        (0.1, 75.0, 62.5, 68.75),  # + 1, 10: 10, 11; 12
        (0.15, 62.5, 68.75, 81.25),  # + 3, 13: 11, 13; 10
        (0.2, 50.0, 68.75, 81.25),  # + 7, 16: 11, 13; 8
        (0.3, 37.5, 62.5, 75.0),  # + 4, 15: 10, 12; 6
        (0.35, 25.0, 62.5, 75.0),  # + 2, 14: 4 left
        (0.4, 18.75, 62.5, 75.0),  # + 9: 3 left
        (0.45, 6.25, 62.5, 75.0),  # + 0, 17: 1 left
        *[(t, 0.0, 62.5, 75.0) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)],  # + 11: model only
    ]
    assert [
        (p["t"], p["prepare_coverage"], p["strict"], p["candidate_aware"]) for p in hybrid["points"]
    ] == expected
    assert hybrid["prepare_only"] == {
        "t": "-inf",
        "prepare_coverage": 100.0,
        "strict": 56.25,
        "candidate_aware": 62.5,
    }
    assert hybrid["model_only"] == {
        "t": "inf",
        "prepare_coverage": 0.0,
        "strict": 62.5,
        "candidate_aware": 75.0,
    }
    # 0.15 and 0.2 tie on both rules; 0.15 leaves more lines to prepare
    assert hybrid["best"] == {
        "t": 0.15,
        "prepare_coverage": 62.5,
        "strict": 68.75,
        "candidate_aware": 81.25,
    }


def test_confusion_of_top_characters(built):
    assert built[1]["confusion"] == {
        "rows": ["Alice", "Bob", "(rest)"],
        "columns": ["Alice", "Bob", "other", "(rest)", "(no answer)"],
        "counts": [
            [5, 0, 0, 0, 1],  # Alice: 0,2,9,14,17 right, 7 no answer
            [1, 3, 0, 0, 0],  # Bob: 8 answered Alice
            [0, 1, 3, 2, 0],
        ],  # rest: 16 -> Bob, 3,5,15 -> other, 10,13 -> 林晚
    }


def test_tool_use_turns_and_format(built):
    use = built[1]["behaviour"]
    # over all 18 records; audio_sim on every line, char_relation on 1,2,5,10,15,
    # video_cap_brief on 3,8,10,17, video_cap_detailed on 3,13,17
    assert use["tool_calls"] == {
        "audio_sim": {"calls": 18, "lines": 18, "share": 100.0},
        "char_relation": {"calls": 5, "lines": 5, "share": 27.78},
        "video_cap_brief": {"calls": 4, "lines": 4, "share": 22.22},
        "video_cap_detailed": {"calls": 3, "lines": 3, "share": 16.67},
    }
    assert use["calls_total"] == 30
    # 2 turns: 0,4,6,9,11,12,14; 3: 1,5,8,13,15,16; 4: 2,3,10,17; 15: line 7 -> 63 turns / 18
    assert use["turns"] == {
        "mean": 3.5,
        "distribution": [
            {"turns": 2, "lines": 7},
            {"turns": 3, "lines": 6},
            {"turns": 4, "lines": 4},
            {"turns": 15, "lines": 1},
        ],
    }
    assert use["incomplete_lines"] == 1
    assert use["invalid_turns"] == {"total": 16, "lines": 3}  # line 2: 1, line 7: 14, line 16: 1
    assert use["duplicates"] == {"total": 4, "lines": 2}  # line 2: 1, line 7: 3


def test_latency_and_ports(built):
    rep = built[1]
    # one latency per turn: 44 of 0.2 s, line 3's 4 of 0.5 s, line 7's 15 of 1.0 s (63 in all);
    # p50 at position 31 -> 0.2; p90 at 55.8 and p99 at 61.38 fall among the 1.0s; mean 25.8/63
    assert rep["latency_s"]["request"] == {
        "count": 63,
        "mean": 0.41,
        "p50": 0.2,
        "p90": 1.0,
        "p99": 1.0,
        "max": 1.0,
    }
    # per line: sixteen 1.0 s, line 3 2.0 s, line 7 16.0 s; p90 at position 15.3 -> 1.0 + 0.3 * 1.0;
    # p99 at 16.83 -> 2.0 + 0.83 * 14.0 = 13.62; mean 34/18
    assert rep["latency_s"]["line"] == {
        "count": 18,
        "mean": 1.889,
        "p50": 1.0,
        "p90": 1.3,
        "p99": 13.62,
        "max": 16.0,
    }
    # even lines on 8001, odd on 8002; requests are the turns; line 7 needed 2 retries
    assert rep["ports"] == [
        {"port": 8001, "lines": 9, "requests": 24, "retries": 0},
        {"port": 8002, "lines": 9, "requests": 39, "retries": 2},
    ]


def test_percentiles_interpolate_between_order_statistics():
    # positions q * (n - 1) in [1, 2, 3, 4]: 1.5 -> 2.5, 2.7 -> 3.7, 2.97 -> 3.97
    assert report.percentiles([4.0, 1.0, 3.0, 2.0]) == {
        "count": 4,
        "mean": 2.5,
        "p50": 2.5,
        "p90": 3.7,
        "p99": 3.97,
        "max": 4.0,
    }
    assert report.percentiles([])["p50"] is None


def test_markdown_plots_and_determinism(built, tmp_path):
    out, rep = built
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Evaluated **16** of the 18 judged lines" in md
    assert "strict 62.50 %, candidate-aware 75.00 %" in md
    assert "prepare on the same lines: strict 56.25 %, candidate-aware 62.50 %" in md
    assert "Best t = 0.15: strict 68.75 %" in md
    assert report.TINY_WARNING in md
    assert set(rep["plots"]) == {
        "accuracy_by_duration",
        "accuracy_by_episode",
        "accuracy_by_character",
        "hybrid_curve",
        "confusion_top_characters",
    }
    for name in rep["plots"].values():
        assert f"]({name})" in md
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", name
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 400 and height >= 300 and len(data) > 10_000, (
            name,
            width,
            height,
            len(data),
        )
    assert run_report(tmp_path) == 0
    for name in ("report.json", "report.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_tiny_model_detection(tmp_path):
    from tools.common.tiny_model_files import STAMP_NAME

    assert report.is_tiny_model(
        "tiny-qwen3"
    )  # tools.sr.serve's default served name: the folder's name
    assert report.is_tiny_model(".cache/models/tiny-qwen3/")
    assert report.is_tiny_model("tiny-qwen3-sft")  # what make demo serves its SFT output as
    (tmp_path / "m").mkdir()
    assert not report.is_tiny_model(str(tmp_path / "m"))
    (tmp_path / "m" / STAMP_NAME).write_text("{}")
    assert report.is_tiny_model(str(tmp_path / "m"))
    assert not report.is_tiny_model("Qwen/Qwen3-8B")
    assert not report.is_tiny_model("x" * 5000)  # too long for a path: no crash


def _corrupt(tmp_path, line_no: int, edit) -> tuple:
    """A copy of results.jsonl with line `line_no` (1-based) replaced by edit(record)."""
    lines = (ASSETS / "results.jsonl").read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = edit(json.loads(lines[line_no - 1]))
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line_no, edit, reason",
    [
        (3, lambda r: '{"line": 2, "episode":', "broken JSON"),
        (5, lambda r: json.dumps({**r, "line": 99}), "line 99 is not in"),
        (
            4,
            lambda r: json.dumps({k: v for k, v in r.items() if k != "correct"}),
            "missing or invalid 'correct'",
        ),
        (
            6,
            lambda r: json.dumps({**r, "latency_s": [0.2, "slow"]}),
            "missing or invalid 'latency_s'",
        ),
        (2, lambda r: json.dumps({**r, "line": 0}), "line 0 already has a record (line 1)"),
        (7, lambda r: json.dumps({**r, "episode": 3}), "episode 3 disagrees with"),
        (8, lambda r: "[1, 2]", "not a JSON object"),
    ],
)
def test_bad_results_exit_2_naming_file_and_line(tmp_path, capsys, line_no, edit, reason):
    results = _corrupt(tmp_path, line_no, edit)
    out = tmp_path / "out"
    assert run_report(out, results) == 2
    err = capsys.readouterr().err
    assert f"{results}:{line_no}: " in err and reason in err, err
    assert not out.exists()


def test_bad_labels_and_arguments_exit_2(tmp_path, capsys):
    text = (
        (ASSETS / "labels.json")
        .read_text(encoding="utf-8")
        .replace('"margin":0.2,', '"margin":"high",', 1)
    )
    labels = tmp_path / "labels.json"
    labels.write_text(text, encoding="utf-8")
    assert run_report(tmp_path / "out", ASSETS / "results.jsonl", labels) == 2
    assert f"{labels}: lines[4]: missing or invalid 'margin'" in capsys.readouterr().err
    assert run_report(tmp_path / "out", tmp_path / "none.jsonl") == 2
    assert "none.jsonl: file is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run_report(
            tmp_path / "out", ASSETS / "results.jsonl", ASSETS / "labels.json", "--buckets", "4,2"
        )
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


def test_without_eval_config_the_model_is_unnamed(tmp_path):
    shutil.copy(ASSETS / "results.jsonl", tmp_path / "results.jsonl")
    assert report.read_eval_model(tmp_path / "results.jsonl") == (None, None)
    labels = report.read_labels_for_report(ASSETS / "labels.json")
    lines = report.read_results(tmp_path / "results.jsonl", labels, ASSETS / "labels.json")
    rep = report.build_report(
        lines,
        labels,
        top_n=15,
        edges=report.DEFAULT_EDGES,
        inputs={"results": "r"},
        model=None,
        tiny=False,
    )
    assert rep["warnings"] == [] and rep["model"] == {"name": None, "tiny": False}
    # top 15 covers every truth: Alice 6, Bob 4, Cara 3, 林晚 2, Dan 1; no rest row
    assert [r["character"] for r in rep["accuracy"]["by_character"]] == [
        "Alice",
        "Bob",
        "Cara",
        "林晚",
        "Dan",
    ]


# ---- several series ------------------------------------------------------------------------


def second_series(folder: Path) -> tuple[Path, Path]:
    """The fixture as a second series, "toy_b", of which only episode 1 (lines 0-5) was evaluated:
    model strict {0,1,2,4} = 4, candidate-aware + {3,5} = 6; prepare strict {0,2,4} = 3, + {5} =
    4."""
    folder.mkdir(parents=True)
    labels = json.loads((ASSETS / "labels.json").read_text(encoding="utf-8"))
    (folder / "labels.json").write_text(
        json.dumps({**labels, "series": "toy_b"}, ensure_ascii=False), encoding="utf-8"
    )
    records = [
        json.loads(line)
        for line in (ASSETS / "results.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    (folder / "results.jsonl").write_text(
        "".join(json.dumps({**r, "series": "toy_b"}) + "\n" for r in records if r["line"] <= 5),
        encoding="utf-8",
    )
    shutil.copy(ASSETS / "eval_config.json", folder / "eval_config.json")
    return folder / "results.jsonl", folder / "labels.json"


def run_series_report(out_dir, pairs, *extra):
    results = [str(r) for r, _ in pairs]
    labels = [str(x) for _, x in pairs]
    return report.main(
        [
            "--results",
            *results,
            "--labels",
            *labels,
            "--out-dir",
            str(out_dir),
            "--top-n",
            "2",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def two_series(tmp_path_factory, built):
    root = tmp_path_factory.mktemp("series")
    pairs = [(ASSETS / "results.jsonl", ASSETS / "labels.json"), second_series(root / "toy_b")]
    assert run_series_report(root / "out", pairs) == 0
    singles = []
    for results, labels in pairs:
        single = root / "single" / json.loads(labels.read_text(encoding="utf-8"))["series"]
        assert run_report(single, results, labels) == 0
        singles.append(single)
    return (
        root / "out",
        json.loads((root / "out" / "report.json").read_text(encoding="utf-8")),
        singles,
    )


def test_a_row_per_series_equals_that_series_own_report(two_series):
    out, rep, singles = two_series
    assert rep["series"] == ["toy", "toy_b"]
    assert rep["by_series"] == [
        {"series": "toy", **row(16, (10, 62.5), (12, 75.0), (9, 56.25), (10, 62.5))},
        {"series": "toy_b", **row(6, (4, 66.67), (6, 100.0), (3, 50.0), (4, 66.67))},
    ]
    for single, entry in zip(singles, rep["by_series"], strict=True):
        alone = json.loads((single / "report.json").read_text(encoding="utf-8"))
        assert {"series": alone["series"], **alone["accuracy"]["overall"]} == entry
        # each series' sub-report is the report it gets alone
        for name in ("report.json", "report.md", *alone["plots"].values()):
            assert (out / alone["series"] / name).read_bytes() == (single / name).read_bytes(), name


def test_overall_lines_weighted_and_drama_averaged(two_series):
    rep = two_series[1]
    # every judged line once: model 14 / 18 of 22, prepare 12 / 14 of 22
    assert rep["overall"]["lines_weighted"] == row(
        22, (14, 63.64), (18, 81.82), (12, 54.55), (14, 63.64)
    )
    # every series once: model (62.5 + 66.67) / 2, (75 + 100) / 2; prepare (56.25 + 50) / 2, (62.5 +
    # 66.67) / 2
    averaged = rep["overall"]["drama_averaged"]
    assert averaged["series_count"] == 2 and averaged["lines"] == 22
    assert {
        source: {rule: averaged[source][rule]["accuracy"] for rule in report.RULES}
        for source in report.SOURCES
    } == {
        "model": {"strict": 64.58, "candidate_aware": 87.5},
        "prepare": {"strict": 53.12, "candidate_aware": 64.58},
    }
    assert rep["lines"]["records"] == 24 and rep["lines"]["evaluated"] == 22
    assert rep["lines"]["judged_in_labels"] == 36
    # pooled cuts: under 1 s are toy's 0,1,7,13 and toy_b's 0,1: model {0,1,13} + {0,1}; prepare {0}
    # + {0}
    assert rep["accuracy"]["by_duration"][0] == {
        "bucket": "<1s",
        "from_s": 0.0,
        "to_s": 1.0,
        **row(6, (5, 83.33), (5, 83.33), (2, 33.33), (2, 33.33)),
    }
    assert rep["model"] == {"names": {"toy": "tiny-qwen3", "toy_b": "tiny-qwen3"}, "tiny": True}
    assert rep["warnings"] == [report.TINY_WARNING]


def test_series_markdown_and_plots(two_series):
    out, rep, _ = two_series
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| toy | 16 | 62.50 | 75.00 | 56.25 | 62.50 |" in md
    assert "| toy_b | 6 | 66.67 | 100.00 | 50.00 | 66.67 |" in md
    assert "| all, lines-weighted | 22 | 63.64 | 81.82 | 54.55 | 63.64 |" in md
    assert "| all, drama-averaged (2 series) | 22 | 64.58 | 87.50 | 53.12 | 64.58 |" in md
    assert "[toy_b](toy_b/report.md)" in md
    assert set(rep["plots"]) == {"accuracy_by_series", "accuracy_by_duration", "hybrid_curve"}
    for name in rep["plots"].values():
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE


def test_several_series_refuse_bad_pairs_and_write_nothing(tmp_path, capsys):
    other = second_series(tmp_path / "toy_b")
    twice = [(ASSETS / "results.jsonl", ASSETS / "labels.json")] * 2
    assert run_series_report(tmp_path / "out", twice) == 2
    assert "series 'toy' is given twice" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(other[0].read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    assert (
        run_series_report(
            tmp_path / "out",
            [(ASSETS / "results.jsonl", ASSETS / "labels.json"), (broken, other[1])],
        )
        == 2
    )
    assert f"{broken}:7: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        report.main(
            [
                "--results",
                str(ASSETS / "results.jsonl"),
                str(other[0]),
                "--labels",
                str(ASSETS / "labels.json"),
                "--out-dir",
                str(tmp_path / "out"),
            ]
        )
    assert exit_info.value.code == 2
    assert "2 --results but 1 --labels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- the published rule and overlapped speech ------------------------------------------------

OVERLAPPED = (1, 3, 10, 16)


def published_labels(folder: Path) -> tuple[Path, Path]:
    """The fixture as prepare writes it now: `published_known` = Alice and Bob (Cara never the
    top-1 face), and lines 1, 3, 10 and 16 overlapped. By the published rule (equal, or neither
    answer nor truth known) the model is also right on 3, 5, 15 (Cara truth, "other" answer) and
    still wrong on 16 (Bob for Dan): 13; prepare also on 5 ("other" for Cara): 10."""
    folder.mkdir(parents=True)
    labels = json.loads((ASSETS / "labels.json").read_text(encoding="utf-8"))
    labels["published_known"] = ["Alice", "Bob"]
    for record in labels["lines"]:
        record["overlap"] = record["index"] in OVERLAPPED
    (folder / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    for name in ("results.jsonl", "eval_config.json"):
        shutil.copy(ASSETS / name, folder / name)
    return folder / "results.jsonl", folder / "labels.json"


def test_published_rule_beside_ours_and_overlapped_vs_clean(tmp_path):
    results, labels = published_labels(tmp_path / "in")
    assert run_report(tmp_path / "out", results, labels) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    acc = rep["accuracy"]
    assert acc["overall"] == row(
        16, (10, 62.5), (12, 75.0), (9, 56.25), (10, 62.5), (13, 81.25), (10, 62.5)
    )
    assert acc["by_overlap"] == [
        # 1, 3, 10, 16: model strict {1,10}, + {3}, published {1,3,10}; prepare none right
        {
            "speech": "overlapped",
            **row(4, (2, 50.0), (3, 75.0), (0, 0.0), (0, 0.0), (3, 75.0), (0, 0.0)),
        },
        {
            "speech": "clean",
            **row(12, (8, 66.67), (9, 75.0), (9, 75.0), (10, 83.33), (10, 83.33), (10, 83.33)),
        },
    ]
    # every cut carries the rule: episode 1 = lines 0-5: model published {0,1,2,3,4,5}, prepare
    # {0,2,4,5}
    assert acc["by_episode"][0] == {
        "episode": 1,
        **row(6, (4, 66.67), (6, 100.0), (3, 50.0), (4, 66.67), (6, 100.0), (4, 66.67)),
    }
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "By the published code's judging rule: model 81.25 %, prepare 62.50 %." in md
    assert "| overlapped | 4 | 50.00 | 75.00 | 75.00 | 0.00 | 0.00 | 0.00 |" in md
    assert "model published rule" in md


def test_a_labels_file_without_the_new_fields_reports_without_them(built):
    out, rep = built
    assert (
        "published" not in rep["accuracy"]["overall"]["model"]
        and rep["accuracy"]["by_overlap"] is None
    )
    assert "no overlap flags" in (out / "report.md").read_text(encoding="utf-8")


def test_series_with_and_without_the_published_rule(tmp_path):
    pairs = [published_labels(tmp_path / "toy"), second_series(tmp_path / "toy_b")]
    assert run_series_report(tmp_path / "out", pairs) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert rep["by_series"][0]["model"]["published"] == {"correct": 13, "accuracy": 81.25}
    assert "published" not in rep["by_series"][1]["model"]
    # a figure over all series needs the rule on all of them
    assert "published" not in rep["overall"]["lines_weighted"]["model"]
    assert "published" not in rep["overall"]["drama_averaged"]["model"]
    assert (
        "| toy_b | 6 | 66.67 | 100.00 | – | 50.00 | 66.67 | – |"
        in (tmp_path / "out" / "report.md").read_text()
    )


@pytest.mark.parametrize(
    "edit, reason",
    [
        (
            lambda labels: labels.update(published_known="Alice"),
            "'published_known' is not a list of names",
        ),
        (
            lambda labels: labels["lines"][2].update(overlap="yes"),
            "lines[2]: invalid 'overlap' ('yes')",
        ),
    ],
)
def test_bad_published_fields_exit_2(tmp_path, capsys, edit, reason):
    results, labels = published_labels(tmp_path / "in")
    data = json.loads(labels.read_text(encoding="utf-8"))
    edit(data)
    labels.write_text(json.dumps(data), encoding="utf-8")
    assert run_report(tmp_path / "out", results, labels) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
