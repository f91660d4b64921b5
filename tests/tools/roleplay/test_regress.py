"""tools.roleplay.regress: resume, compare, training-set overlap, bad input, and real runs.

The slow tests run the bank against a real `llamafactory-cli api` serving the tiny model on
127.0.0.1, and against the tiny model + a LoRA adapter loaded by LLaMA-Factory's ChatModel. Tiny
model responses are noise, so those tests assert on plumbing values (every case answered, counts
that add up, stable config hash, identical greedy responses); the check logic itself is pinned by
hand-built responses in test_bank.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.common.fileio import AppendOnlyJsonl, OutputBusy, OutputError
from tools.common.ports import free_port
from tools.roleplay import regress
from tools.roleplay.bank import load_bank

SHIPPED_BANK = Path("data/regression/孙悟空.jsonl")
TINY_TOKENS = "8"  # the tiny model's output is noise; a few tokens prove the plumbing


def _record(case_id, passed, tags=("persona",), sample=0):
    return {
        "id": case_id,
        "sample": sample,
        "tags": list(tags),
        "passed": passed,
        "failures": [] if passed else [{"check": "must_contain", "reason": "missing"}],
    }


def _write_jsonl(path: Path, records) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def _bank(tmp_path: Path, prompts: list[str]) -> Path:
    cases = [
        {
            "id": f"c{i}",
            "tags": ["persona", f"t{i % 2}"],
            "messages": [{"role": "user", "content": p}],
            "checks": {"must_not_contain": "人工智能"},
        }
        for i, p in enumerate(prompts)
    ]
    return _write_jsonl(tmp_path / "bank.jsonl", cases)


# ---- pure parts -------------------------------------------------------------


def test_sample_seeds_depend_on_seed_case_and_sample_only():
    seed = regress.sample_seed(7, "c1", 0)
    assert seed == regress.sample_seed(7, "c1", 0)
    assert (
        len(
            {
                seed,
                regress.sample_seed(8, "c1", 0),
                regress.sample_seed(7, "c2", 0),
                regress.sample_seed(7, "c1", 1),
            }
        )
        == 4
    )
    assert 0 <= seed < 2**31


def test_greedy_config_ignores_seed_and_top_p_but_sampling_config_keeps_them():
    greedy = regress.GenerationSettings(seed=1, top_p=0.5).as_config()
    assert greedy == regress.GenerationSettings(seed=2, top_p=0.9).as_config()
    assert greedy["seed"] is None and greedy["top_p"] is None
    sampled = regress.GenerationSettings(temperature=0.7, samples=4, seed=3).as_config()
    assert (sampled["seed"], sampled["top_p"], sampled["samples"]) == (3, 1.0, 4)


def test_summary_counts_overall_per_tag_and_per_check(tmp_path):
    cases = load_bank(_bank(tmp_path, ["a", "b", "c"]))
    settings = regress.GenerationSettings(temperature=1.0, samples=2)
    records = [
        _record("c0", True, ("persona", "t0"), 0),
        _record("c0", False, ("persona", "t0"), 1),
        _record("c1", True, ("persona", "t1"), 0),
        _record("c1", True, ("persona", "t1"), 1),
        _record("c2", False, ("persona", "t0"), 0),
    ]
    summary = regress.summarize(cases, records, settings)
    assert (summary["results"], summary["passed"], summary["failed"], summary["complete"]) == (
        5,
        3,
        2,
        False,
    )
    assert summary["pass_rate"] == 0.6
    assert summary["cases_all_passed"] == 1
    assert summary["by_tag"] == {
        "persona": {"cases": 3, "samples": 5, "passed": 3, "pass_rate": 0.6},
        "t0": {"cases": 2, "samples": 3, "passed": 1, "pass_rate": 0.3333},
        "t1": {"cases": 1, "samples": 2, "passed": 2, "pass_rate": 1.0},
    }
    assert summary["failures_by_check"] == {"must_contain": 2}
    assert summary["failed_cases"] == {"c0": 0.5, "c2": 0.0}


def test_compare_lists_regressions_and_fixes_per_case_and_per_tag():
    before = [
        _record("a", True, ("persona",)),
        _record("b", False, ("style",)),
        _record("c", True, ("style",)),
        _record("gone", True, ("style",)),
    ]
    now = [
        _record("a", False, ("persona",)),
        _record("b", True, ("style",)),
        _record("c", True, ("style",)),
        _record("new", False, ("persona",)),
    ]
    result = regress.compare(before, now)
    assert result["regressions"] == [{"id": "a", "tags": ["persona"], "before": 1.0, "now": 0.0}]
    assert result["fixes"] == [{"id": "b", "tags": ["style"], "before": 0.0, "now": 1.0}]
    assert (result["unchanged"], result["only_before"], result["only_now"]) == (
        1,
        ["gone"],
        ["new"],
    )
    assert result["by_tag"] == {
        "persona": {"before": 1.0, "now": 0.0, "regressions": 1, "fixes": 0},
        "style": {"before": 0.6667, "now": 1.0, "regressions": 0, "fixes": 1},
    }


def test_compare_with_samples_uses_pass_rates():
    before = [_record("a", True, sample=0), _record("a", True, sample=1)]
    now = [_record("a", True, sample=0), _record("a", False, sample=1)]
    assert regress.compare(before, now)["regressions"] == [
        {"id": "a", "tags": ["persona"], "before": 1.0, "now": 0.5}
    ]


def test_training_prompts_read_alpaca_and_sharegpt_user_turns_with_locations(tmp_path):
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(
        json.dumps(
            [
                {"instruction": "你是谁？", "input": "", "output": "俺老孙"},
                {
                    "instruction": "翻译",
                    "input": "hello",
                    "output": "你好",
                    "history": [["上一问", "上一答"]],
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    prompts = regress.training_prompts(alpaca)
    assert prompts["你是谁？"] == f"{alpaca}[0]"
    assert (
        prompts["翻译 hello"] == f"{alpaca}[1]"
    )  # instruction + "\n" + input, white space normalized
    assert prompts["上一问"] == f"{alpaca}[1]"
    assert "俺老孙" not in prompts and "上一答" not in prompts

    sharegpt = _write_jsonl(
        tmp_path / "sharegpt.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": "大圣好"},
                    {"from": "gpt", "value": "好"},
                ]
            },
            {
                "messages": [
                    {"role": "system", "content": "你是孙悟空"},
                    {"role": "user", "content": "吃桃吗"},
                ]
            },
        ],
    )
    assert regress.training_prompts(sharegpt) == {
        "大圣好": f"{sharegpt}:1",
        "吃桃吗": f"{sharegpt}:2",
    }


def test_training_files_that_cannot_be_read_name_file_and_line(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(regress.InputError, match=r"broken\.jsonl:2: broken JSON"):
        regress.training_prompts(broken)
    unknown = _write_jsonl(tmp_path / "unknown.jsonl", [{"question": "q"}])
    with pytest.raises(regress.InputError, match=r"unknown\.jsonl:1: neither alpaca"):
        regress.training_prompts(unknown)
    with pytest.raises(regress.InputError, match="no such training file"):
        regress.training_prompts(tmp_path / "absent.json")


def test_overlap_names_case_turn_and_training_location(tmp_path):
    cases = load_bank(_bank(tmp_path, ["你是谁？", "吃桃吗"]))
    train = _write_jsonl(tmp_path / "train.jsonl", [{"instruction": "  你是谁？ ", "output": "x"}])
    assert regress.find_training_overlap(cases, [str(train)]) == [
        {
            "id": "c0",
            "turn": 0,
            "train_file": str(train),
            "where": f"{train}:1",
            "match": "exact",
            "similarity": 1.0,
        }
    ]


def test_leak_check_runs_alone_and_sees_through_width_spacing_addresses_and_longer_prompts(
    tmp_path, capsys
):
    prompts = [
        "孙悟空，你最喜欢什么兵器？",  # the training copy has no address and half-width punctuation
        "讲讲你大闹天宫的\n那一天吧",  # a line break inside CJK text
        "你师父是谁",  # inside a longer training prompt
        "Sherlock, what do you make of this footprint near the door?",  # a near duplicate
        "今天天气怎么样？",  # clean
    ]
    bank = _bank(tmp_path, prompts)
    train = _write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"instruction": "你最喜欢什么兵器?", "output": "金箍棒"},
            {
                "conversations": [
                    {"from": "human", "value": "讲讲你大闹天宫的那一天吧！"},
                    {"from": "gpt", "value": "好"},
                ]
            },
            {"instruction": "我问你：你师父是谁？他对你好吗？", "output": "唐僧"},
            {"instruction": "What do you make of this footprint near the door", "output": "Mud."},
            {"instruction": "你好", "output": "嗯"},
        ],
    )
    code = regress.main(["--check-leak", "--cases", str(bank), "--train", str(train)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == "checked 5 prompts against 5 samples: 4 found"
    for case, kind, line in (
        ("c0", "exact", 1),
        ("c1", "exact", 2),
        ("c2", "contained", 3),
        ("c3", "exact", 4),
    ):
        assert f"case {case} turn 0: {kind} (similarity 1.0) at {train}:{line}" in out
    assert "case c4" not in out

    near = _write_jsonl(
        tmp_path / "near.jsonl",
        [{"instruction": "What do ya make of this footprint near the door?", "output": "Mud."}],
    )
    assert regress.main(["--check-leak", "--cases", str(bank), "--train", str(near)]) == 1
    assert "case c3 turn 0: near (similarity" in capsys.readouterr().out
    assert (
        regress.main(
            ["--check-leak", "--cases", str(bank), "--train", str(near), "--leak-threshold", "0.9"]
        )
        == 0
    )
    assert capsys.readouterr().out == "checked 5 prompts against 1 samples: 0 found\n"
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes('{"instruction": "你好"}\n'.encode("gbk"))
    assert regress.main(["--check-leak", "--cases", str(bank), "--train", str(gbk)]) == 2
    assert "gbk.jsonl: not UTF-8" in capsys.readouterr().err


def _resume(out: Path, digest: str, dedupe: bool = False) -> dict:
    """What regress resumes from `out`: its finished records, through the shared locked writer."""
    with AppendOnlyJsonl(
        out, regress.result_key(digest), dedupe=dedupe, keep_records=True
    ) as output:
        return output.records


def test_resume_drops_a_torn_last_line_and_keeps_the_rest(tmp_path):
    out = tmp_path / "results.jsonl"
    done = [{**_record("a", True), "config_hash": "h"}, {**_record("b", False), "config_hash": "h"}]
    out.write_text(
        "".join(json.dumps(r) + "\n" for r in done) + '{"id": "c", "sam', encoding="utf-8"
    )
    assert sorted(_resume(out, "h")) == [("a", 0), ("b", 0)]
    assert out.read_text(encoding="utf-8").endswith("\n")
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_resume_refuses_another_config_a_duplicate_or_a_broken_middle_line(tmp_path):
    out = tmp_path / "results.jsonl"
    _write_jsonl(out, [{**_record("a", True), "config_hash": "old"}])
    with pytest.raises(OutputError, match=r"results\.jsonl:1: made with another configuration"):
        _resume(out, "new")
    _write_jsonl(out, [{**_record("a", True), "config_hash": "h"}] * 2)
    with pytest.raises(OutputError, match=r"1 duplicate"):
        _resume(out, "h")
    assert sorted(_resume(out, "h", dedupe=True)) == [("a", 0)]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    out.write_text(
        "{oops\n" + json.dumps({**_record("a", True), "config_hash": "h"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(OutputError, match=r"results\.jsonl:1: "):
        _resume(out, "h")
    # A refused file is left as it was, torn last line included.
    kept = json.dumps({**_record("a", True), "config_hash": "old"}) + '\n{"id": "b", "sa'
    out.write_text(kept, encoding="utf-8")
    with pytest.raises(OutputError, match="another configuration"):
        _resume(out, "new")
    assert out.read_text(encoding="utf-8") == kept


def test_a_second_run_on_one_output_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "results.jsonl"
    with AppendOnlyJsonl(out, regress.result_key("h")):
        with pytest.raises(OutputBusy) as busy:
            _resume(out, "h")
    assert busy.value.pid == os.getpid() and str(os.getpid()) in str(busy.value)


# ---- command line: bad input writes nothing ---------------------------------


def _run_cli(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo_root), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tools.roleplay.regress", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_help_names_the_command(repo_root):
    proc = _run_cli(repo_root, "--help")
    assert proc.returncode == 0 and "python -m tools.roleplay.regress" in proc.stdout


@pytest.mark.parametrize("problem", ["bank", "compare", "train", "profiles"])
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(repo_root, tmp_path, problem):
    bank = _bank(tmp_path, ["你是谁？"])
    args = [
        "--cases",
        str(bank),
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--out",
        str(tmp_path / "out" / "results.jsonl"),
    ]
    if problem == "bank":
        bank.write_text(bank.read_text(encoding="utf-8") + '{"id": "c0"}\n', encoding="utf-8")
        expected = f"{bank}:2: missing field 'tags'"
    elif problem == "compare":
        args += ["--compare", str(tmp_path / "absent.jsonl")]
        expected = "absent.jsonl: no such results file"
    elif problem == "train":
        args += ["--train", str(_write_jsonl(tmp_path / "t.jsonl", [{"question": "q"}]))]
        expected = "t.jsonl:1: neither alpaca"
    else:
        profiles = tmp_path / "profiles.json"
        profiles.write_text(json.dumps({"李白": "爱喝酒"}, ensure_ascii=False), encoding="utf-8")
        args += ["--role", "孙悟空", "--profiles", str(profiles)]
        expected = "unknown role '孙悟空'; known roles: 李白"
    proc = _run_cli(repo_root, *args)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_unreachable_endpoint_exits_1_and_a_rerun_can_resume(repo_root, tmp_path):
    bank = _bank(tmp_path, ["你是谁？"])
    closed = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "out" / "results.jsonl"
    common = [
        "--cases",
        str(bank),
        "--endpoint",
        closed,
        "--max-retries",
        "0",
        "--timeout",
        "5",
        "--out",
        str(out),
    ]
    proc = _run_cli(repo_root, *common)  # the model list is the first request: nothing is written
    assert proc.returncode == 1 and f"{closed}: cannot list models" in proc.stderr
    assert not out.parent.exists()
    proc = _run_cli(repo_root, *common, "--model", "tiny-qwen3")  # fails on the first case
    assert proc.returncode == 1 and "generation failed, rerun to resume" in proc.stderr
    assert out.read_text(encoding="utf-8") == ""
    summary = json.loads(regress.summary_path(out).read_text(encoding="utf-8"))
    assert (summary["complete"], summary["results"], summary["cases"]) == (False, 0, 1)


# ---- real runs --------------------------------------------------------------


def _endpoint_run(url: str, bank: Path, out: Path, *extra: str) -> tuple[int, dict, list[dict]]:
    code = regress.main(
        [
            "--cases",
            str(bank),
            "--endpoint",
            url,
            "--max-new-tokens",
            TINY_TOKENS,
            "--out",
            str(out),
            *extra,
        ]
    )
    summary_file = regress.summary_path(out)
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    records = (
        [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        if out.exists()
        else []
    )
    return code, summary, records


@pytest.fixture(scope="module")
def shipped_runs(api_server, repo_root, tmp_path_factory):
    """The shipped bank run twice, greedy, into two result files."""
    folder = tmp_path_factory.mktemp("regress")
    return [
        _endpoint_run(api_server, repo_root / SHIPPED_BANK, folder / name / "results.jsonl")
        for name in ("a", "b")
    ]


@pytest.mark.slow
def test_every_case_gets_a_response_and_the_summary_adds_up(shipped_runs, repo_root):
    code, summary, records = shipped_runs[0]
    cases = load_bank(repo_root / SHIPPED_BANK)
    assert code == 0
    assert [r["id"] for r in records] == [case.id for case in cases]
    assert all(isinstance(r["response"], str) and r["response"] for r in records)
    # The prompt is the case's own messages, unchanged: checks never add hints.
    assert [r["prompt"] for r in records] == [list(case.messages) for case in cases]
    assert all(
        r["model"] == "tiny-qwen3" and r["adapter"] is None and r["seed"] is None for r in records
    )
    assert summary["complete"] and summary["results"] == len(cases) == summary["cases"]
    assert summary["passed"] + summary["failed"] == summary["results"]
    assert summary["passed"] == sum(r["passed"] for r in records)
    assert sum(len(r["failures"]) for r in records) == sum(summary["failures_by_check"].values())
    for tag, entry in summary["by_tag"].items():
        tagged = [r for r in records if tag in r["tags"]]
        assert (entry["samples"], entry["passed"]) == (
            len(tagged),
            sum(r["passed"] for r in tagged),
        )
    assert all(r["passed"] == (r["failures"] == []) for r in records)


@pytest.mark.slow
def test_config_hash_is_stable_and_greedy_responses_repeat(shipped_runs):
    (_, summary_a, records_a), (_, summary_b, records_b) = shipped_runs
    assert summary_a["config_hash"] == summary_b["config_hash"]
    assert {r["config_hash"] for r in records_a + records_b} == {summary_a["config_hash"]}
    assert [r["response"] for r in records_a] == [r["response"] for r in records_b]


@pytest.mark.slow
def test_a_rerun_resumes_after_a_kill_without_duplicates(
    shipped_runs, api_server, repo_root, tmp_path, caplog
):
    _, _, finished = shipped_runs[0]
    out = tmp_path / "results.jsonl"
    # What a kill leaves: some whole lines, then half of the next one.
    torn = json.dumps(finished[5], ensure_ascii=False)[:40]
    out.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in finished[:5]) + torn,
        encoding="utf-8",
    )
    code, summary, records = _endpoint_run(api_server, repo_root / SHIPPED_BANK, out)
    assert code == 0 and summary["complete"]
    assert [r["id"] for r in records] == [r["id"] for r in finished]
    assert records[:5] == finished[:5]  # kept as they were, not regenerated (same timings)
    assert [r["response"] for r in records] == [r["response"] for r in finished]
    assert "torn last record" in caplog.text

    before = out.read_bytes()
    code, summary, _ = _endpoint_run(api_server, repo_root / SHIPPED_BANK, out)
    assert code == 0 and summary["complete"] and out.read_bytes() == before


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused_and_leaves_the_results_alone(
    shipped_runs, api_server, repo_root, tmp_path
):
    out = tmp_path / "results.jsonl"
    _write_jsonl(out, shipped_runs[0][2])
    before = out.read_bytes()
    code = regress.main(
        [
            "--cases",
            str(repo_root / SHIPPED_BANK),
            "--endpoint",
            api_server,
            "--max-new-tokens",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert out.read_bytes() == before and not regress.summary_path(out).exists()


@pytest.mark.slow
def test_compare_reports_regressions_and_fixes_and_exits_1(
    shipped_runs, api_server, repo_root, tmp_path
):
    _, _, finished = shipped_runs[0]
    passing = next(r for r in finished if r["passed"])
    failing = next(r for r in finished if not r["passed"])
    # A previous run that disagrees on two cases: one passed then (regression), one failed then
    # (fix).
    previous = [
        {**r, "passed": not r["passed"]} if r["id"] in (passing["id"], failing["id"]) else r
        for r in finished
    ]
    previous_file = _write_jsonl(tmp_path / "previous.jsonl", previous)
    # Comparing a finished run is a rerun with --compare: every case is already done.
    now = _write_jsonl(tmp_path / "results.jsonl", finished)
    code, summary, records = _endpoint_run(
        api_server, repo_root / SHIPPED_BANK, now, "--compare", str(previous_file)
    )
    assert records == finished
    assert code == 1
    comparison = summary["compare"]
    assert [e["id"] for e in comparison["regressions"]] == [failing["id"]]
    assert [e["id"] for e in comparison["fixes"]] == [passing["id"]]
    assert comparison["unchanged"] == len(finished) - 2
    for tag in failing["tags"]:
        assert comparison["by_tag"][tag]["regressions"] == 1


@pytest.mark.slow
def test_case_prompts_verbatim_in_training_data_are_warned_and_recorded(
    api_server, tmp_path, caplog
):
    bank = _bank(tmp_path, ["你是谁？", "吃桃吗", "大圣好"])
    alpaca = tmp_path / "train.json"
    alpaca.write_text(
        json.dumps([{"instruction": "你是谁？", "output": "俺老孙"}], ensure_ascii=False),
        encoding="utf-8",
    )
    sharegpt = _write_jsonl(
        tmp_path / "train.jsonl", [{"conversations": [{"from": "human", "value": "大圣好"}]}]
    )
    code, summary, records = _endpoint_run(
        api_server, bank, tmp_path / "out" / "results.jsonl", "--train", str(alpaca), str(sharegpt)
    )
    assert code == 0 and len(records) == 3
    assert summary["training_overlap"] == [
        {
            "id": "c0",
            "turn": 0,
            "train_file": str(alpaca),
            "where": f"{alpaca}[0]",
            "match": "exact",
            "similarity": 1.0,
        },
        {
            "id": "c2",
            "turn": 0,
            "train_file": str(sharegpt),
            "where": f"{sharegpt}:1",
            "match": "exact",
            "similarity": 1.0,
        },
    ]
    assert "case c0 (turn 0) is in training data (exact)" in caplog.text


@pytest.fixture(scope="module")
def lora_adapter(tiny_model, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (non-zero) weights, made with peft directly."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    out = tmp_path_factory.mktemp("lora") / "adapter"
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.mark.slow
def test_local_mode_renders_like_the_server_and_seeds_its_samples(
    shipped_runs, repo_root, tiny_model, lora_adapter, tmp_path, capsys
):
    # In-process: importing LLaMA-Factory once costs more than all these runs together.
    local = [
        "--model",
        str(tiny_model),
        "--template",
        "qwen3_nothink",
        "--max-new-tokens",
        TINY_TOKENS,
    ]
    base = tmp_path / "base" / "results.jsonl"
    assert regress.main(["--cases", str(repo_root / SHIPPED_BANK), *local, "--out", str(base)]) == 0
    served = [r["response"] for r in shipped_runs[0][2]]
    # Same model, template and LLaMA-Factory code: greedy local output equals the served one.
    assert [
        json.loads(line)["response"] for line in base.read_text(encoding="utf-8").splitlines()
    ] == served
    assert "tiny random model" in capsys.readouterr().out

    small_bank = _bank(tmp_path, ["你是谁？", "吃桃吗"])
    sampled = []
    for name in ("s1", "s2"):
        out = tmp_path / name / "results.jsonl"
        code = regress.main(
            [
                "--cases",
                str(small_bank),
                *local,
                "--adapter",
                str(lora_adapter),
                "--samples",
                "2",
                "--temperature",
                "1.0",
                "--seed",
                "7",
                "--out",
                str(out),
            ]
        )
        assert code == 0
        sampled.append([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()])
    first, second = sampled
    assert [(r["id"], r["sample"]) for r in first] == [("c0", 0), ("c0", 1), ("c1", 0), ("c1", 1)]
    assert [r["response"] for r in first] == [r["response"] for r in second]  # seeded: reproducible
    assert first[0]["response"] != first[1]["response"]  # two samples of one case differ
    assert first[0]["seed"] == regress.sample_seed(7, "c0", 0)
    assert {r["adapter"] for r in first} == {str(lora_adapter)}
