"""SFT export of oracle trajectories on the demo series: both formats, both protocols, and bad
inputs (torn last line, trajectory ending on a user turn, missing answer) counted, never a crash."""

import json

import pytest

from plugins.speaker_rec.protocol import parse_turn
from repo_paths import REPO_ROOT
from tools.sr import export, prepare, split, split_manifest, traces

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """labels, oracle traces in both protocols, and a split whose sft part covers most lines."""
    root = tmp_path_factory.mktemp("export")
    labels = root / "labels.json"
    assert (
        prepare.main(
            ["--series", SERIES, "--data-dir", str(DATA_DIR), "--out", str(labels), "--quiet"]
        )
        == 0
    )
    out = {"labels": labels, "split": root / "split.json"}
    for protocol in ("hermes", "tags"):
        out[protocol] = root / f"{protocol}.jsonl"
        assert (
            traces.main(
                [
                    "--series",
                    SERIES,
                    "--data-dir",
                    str(DATA_DIR),
                    "--labels",
                    str(labels),
                    "--out",
                    str(out[protocol]),
                    "--teacher",
                    "oracle",
                    "--protocol",
                    protocol,
                    "--select",
                    "wrong=1,low_score=1,close=1,confident=1",
                ]
            )
            == 0
        )
    assert (
        split.main(
            [
                "--series",
                SERIES,
                "--data-dir",
                str(DATA_DIR),
                "--labels",
                str(labels),
                "--out",
                str(out["split"]),
                "--block-lines",
                "100",
                "--ratios",
                "sft=0.7,eval=0.3",
            ]
        )
        == 0
    )
    return out


def run_export(demo_run, tiny_model, out_dir, traces_path, fmt, *extra):
    argv = [
        "sft",
        "--traces",
        str(traces_path),
        "--split",
        str(demo_run["split"]),
        "--format",
        fmt,
        "--out-dir",
        str(out_dir),
        "--name",
        f"sr_{fmt}",
        "--tokenizer",
        str(tiny_model),
        *extra,
    ]
    code = export.main(argv)
    if code:
        return code, None, None
    rows = json.loads((out_dir / f"sr_{fmt}.json").read_text())
    report = json.loads((out_dir / f"sr_{fmt}.report.json").read_text())
    return code, rows, report


@pytest.mark.parametrize("protocol", ["hermes", "tags"])
@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt"])
def test_export_formats_and_protocols(demo_run, tiny_model, tmp_path, protocol, fmt):
    code, rows, report = run_export(demo_run, tiny_model, tmp_path, demo_run[protocol], fmt)
    assert code == 0
    manifest = split_manifest.read_split(demo_run["split"])
    in_sft = [json.loads(line) for line in demo_run[protocol].read_text().splitlines()]
    in_sft = [r for r in in_sft if split_manifest.part_contains(manifest, "sft", r["line"])]
    assert report["records_out"] == len(in_sft) > 0
    assert report["records_in"] == report["records_out"] + sum(report["dropped"].values())
    assert set(report["dropped"]) == {"not in split part sft"}
    turns = sum(r["turns"] for r in in_sft)
    assert report["rows_out"] == len(rows) == (turns if fmt == "alpaca" else len(in_sft))
    assert report["tool_usage"]["audio_sim"] == len(in_sft)
    assert report["token_lengths"]["p50"] > 100
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    entry = info[f"sr_{fmt}"]
    assert entry["formatting"] == fmt and entry["columns"]["tools"] == "tools"
    if fmt == "alpaca":
        assert entry["columns"]["history"] == "history"
        last = [r for r in rows if parse_turn(r["output"], protocol).kind == "answer"]
        assert len(last) == len(in_sft)
        assert all(parse_turn(r["output"], protocol).kind != "invalid" for r in rows)
        if protocol == "hermes":
            assert all(h[0].startswith("<tool_response>") for r in rows for h in r["history"][1:])
    else:
        for row in rows:
            roles = [t["from"] for t in row["conversations"]]
            assert len(roles) % 2 == 0 and roles[0] == "human" and roles[-1] == "gpt"
            if protocol == "hermes":
                assert "function_call" in roles and "observation" in roles
                assert json.loads(row["tools"])[0]["type"] == "function"
            else:
                assert set(roles) == {"human", "gpt"} and row["tools"] == ""


def test_bad_inputs_are_counted_and_excluded(demo_run, tiny_model, tmp_path):
    good = [json.loads(line) for line in demo_run["hermes"].read_text().splitlines()]
    manifest = split_manifest.read_split(demo_run["split"])
    good = [r for r in good if split_manifest.part_contains(manifest, "sft", r["line"])][:6]
    ends_on_user = dict(
        good[0], messages=good[0]["messages"][:-1] + [{"role": "user", "content": "hi"}]
    )
    no_answer = json.loads(json.dumps(good[1]))
    no_answer["messages"][-1]["content"] = "<think>\nhm\n</think>"
    wrong = dict(good[2], correct={"strict": False, "candidate_aware": False})
    incomplete = dict(good[3], complete=False)
    lines = [
        json.dumps(r, ensure_ascii=False)
        for r in (ends_on_user, no_answer, wrong, incomplete, good[4])
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n" + json.dumps(good[5])[:200], encoding="utf-8")
    code, rows, report = run_export(demo_run, tiny_model, tmp_path / "out", bad, "sharegpt")
    assert code == 0 and report["records_in"] == 6 and report["records_out"] == 1 and len(rows) == 1
    assert report["dropped"] == {
        "broken JSON": 1,
        "ends without an assistant turn": 1,
        "incomplete": 1,
        "incorrect (strict)": 1,
        "no valid answer turn": 1,
    }


def test_nothing_to_export_exits_2_and_writes_nothing(demo_run, tiny_model, tmp_path, capsys):
    code, _, _ = run_export(
        demo_run, tiny_model, tmp_path / "out", demo_run["hermes"], "alpaca", "--part", "rl_val"
    )
    assert code == 2 and "no trajectory left" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_traces_with_a_line_twice_are_refused_with_the_count(
    demo_run, tiny_model, tmp_path, capsys
):
    doubled = tmp_path / "doubled.jsonl"
    text = demo_run["hermes"].read_text(encoding="utf-8")
    rerun = [json.loads(line) for line in text.splitlines()[:3]]
    for record in rerun:  # a second run's record of the same line differs in timing, not in line
        record["timing"]["seconds"] += 1
    doubled.write_text(
        text + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rerun), encoding="utf-8"
    )
    code, _, _ = run_export(demo_run, tiny_model, tmp_path / "out", doubled, "alpaca")
    first = len(text.splitlines()) + 1
    assert (
        code == 2
        and f"3 records repeat the line of an earlier record (first at {doubled}:{first})"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()
