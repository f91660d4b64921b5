"""tools.sr.evaluate: two real `llamafactory-cli api` servers sharing the lines, failover when one
of
them is SIGKILLed mid-run, resume after the client is SIGKILLed (against a scripted stand-in with
latency, so that the kill reliably lands mid-run), config checks, how the served chat template
renders earlier `<think>` turns, and `make eval` / `make report` on two series at once, killed
and resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from plugins.speaker_rec.correctness import published
from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.labelfile import read_labels
from plugins.speaker_rec.series import load_series
from repo_paths import REPO_ROOT
from tools.common.ports import free_port
from tools.dev.scripted_openai import ScriptedOpenAI
from tools.sr import evaluate as sr_eval

SERIES, DATA_DIR = "chun_jiang", REPO_ROOT / "data" / "demo"
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
SECOND = (
    "chun_jiang_s1"  # the demo script with another seed: other timings, voiceprints, faces, seeds
)
# make's own variables of an outer `make test` must not reach the makes a test starts.
MAKE_ENV = {
    k: v for k, v in ENV.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
}


def eval_args(labels: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--series",
        SERIES,
        "--data-dir",
        str(DATA_DIR),
        "--labels",
        str(labels),
        "--out",
        str(out),
        *extra,
    ]


def read_results(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def count_lines(out: Path) -> int:
    return out.read_text(encoding="utf-8").count("\n") if out.exists() else 0


def wait_for_record_from(out: Path, port: int, timeout: float) -> None:
    """Until `out` holds a whole record that the server on `port` answered (a loaded machine can
    let the other server answer the first lines alone)."""
    deadline = time.monotonic() + timeout
    while True:
        text = out.read_text(encoding="utf-8") if out.exists() else ""
        whole = text[: text.rfind("\n") + 1].splitlines()
        if any(json.loads(line)["port"] == port for line in whole):
            return
        assert time.monotonic() < deadline, f"no record from port {port} in {out}"
        time.sleep(0.02)


def wait_for_lines(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while count_lines(out) < n:
        assert time.monotonic() < deadline, f"{out} never reached {n} records"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def second_api_server(tiny_model, tmp_path_factory):
    from llamafactory_run import api_server

    with api_server(tiny_model, tmp_path_factory.mktemp("api2") / "server.log") as url:
        yield url


@pytest.mark.slow
def test_two_real_servers_share_the_lines(api_server, second_api_server, demo_labels, tmp_path):
    out = tmp_path / "results.jsonl"
    assert (
        sr_eval.main(
            eval_args(
                demo_labels,
                out,
                "--urls",
                api_server,
                second_api_server,
                "--sample",
                "20",
                "--seed",
                "1",
                "--max-tokens",
                "8",
                "--max-turns",
                "2",
                "--concurrency",
                "2",
            )
        )
        == 0
    )
    records = read_results(out)
    config = json.loads((tmp_path / "eval_config.json").read_text())
    assert sorted(r["line"] for r in records) == config["lines"] and len(config["lines"]) == 20
    ports = Counter(r["port"] for r in records)
    assert set(ports) == {
        int(u.rsplit(":", 1)[1].split("/")[0]) for u in (api_server, second_api_server)
    }
    assert all(n > 0 for n in ports.values())
    assert config["run"]["model"] == "tiny-qwen3"
    assert config["run"]["sampling"] == {
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 8,
        "seed": 1,
    }
    for record in records:
        assert record["turns"] == record["timing"]["requests"] == len(record["latency_s"]) <= 2
        assert record["attempts"] == 0 and record["hint_used"] is False
        assert record["teacher"] == {"kind": "api", "model": "tiny-qwen3"}


@pytest.mark.slow
def test_a_port_killed_mid_run_hands_its_lines_to_the_other(
    api_server, tiny_model, demo_labels, tmp_path
):
    from llamafactory_run import start_api_server, stop

    victim, victim_url = start_api_server(tiny_model, tmp_path / "victim.log")
    out = tmp_path / "results.jsonl"
    try:
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.sr.evaluate",
                *eval_args(
                    demo_labels,
                    out,
                    "--urls",
                    api_server,
                    victim_url,
                    "--sample",
                    "24",
                    "--seed",
                    "3",
                    "--max-tokens",
                    "8",
                    "--max-turns",
                    "2",
                    "--concurrency",
                    "2",
                    "--backoff",
                    "0.05",
                ),
            ],
            cwd=REPO_ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        victim_port = int(victim_url.rsplit(":", 1)[1].split("/")[0])
        wait_for_record_from(out, victim_port, timeout=120)
        victim.send_signal(signal.SIGKILL)  # a server that dies with requests in flight
        victim.wait()
        at_kill = count_lines(out)
        _, err = client.communicate(timeout=300)
        assert client.returncode == 0, err[-2000:]
    finally:
        stop(victim)
    records = read_results(out)
    config = json.loads((tmp_path / "eval_config.json").read_text())
    lines = [r["line"] for r in records]
    assert len(lines) == len(set(lines)) and sorted(lines) == config["lines"] and len(lines) == 24
    assert at_kill < len(records), "the kill must land mid-run"
    ports = Counter(r["port"] for r in records)
    assert 0 < ports[victim_port] < ports[int(api_server.rsplit(":", 1)[1].split("/")[0])]
    assert "dropped" in err


@pytest.mark.slow
def test_sigkilled_client_resumes_to_the_uninterrupted_line_set(demo_labels, tmp_path):
    with ScriptedOpenAI(latency=0.05) as server:
        common = [
            "--urls",
            server.url,
            "--model",
            "m",
            "--sample",
            "60",
            "--seed",
            "2",
            "--concurrency",
            "4",
        ]
        assert (
            sr_eval.main(eval_args(demo_labels, tmp_path / "ref" / "results.jsonl", *common)) == 0
        )
        out = tmp_path / "killed" / "results.jsonl"
        client = subprocess.Popen(
            [sys.executable, "-m", "tools.sr.evaluate", *eval_args(demo_labels, out, *common)],
            cwd=REPO_ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_lines(out, 10)
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
        partial = count_lines(out)
        with out.open("a", encoding="utf-8") as f:
            f.write('{"line": 999, "torn')  # as if the kill had landed mid-write
        assert 10 <= partial < 60, "the kill must land mid-run"
        assert sr_eval.main(eval_args(demo_labels, out, *common)) == 0
    reference = [r["line"] for r in read_results(tmp_path / "ref" / "results.jsonl")]
    resumed = [r["line"] for r in read_results(out)]
    assert len(resumed) == len(set(resumed)) == 60
    assert sorted(resumed) == sorted(reference)


def test_a_different_configuration_refuses_to_append(demo_labels, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    with ScriptedOpenAI() as server:
        common = ["--urls", server.url, "--model", "m", "--lines", "0-4"]
        assert sr_eval.main(eval_args(demo_labels, out, *common)) == 0
        before = out.read_text(encoding="utf-8")
        assert sr_eval.main(eval_args(demo_labels, out, *common, "--temperature", "0")) == 2
        assert "differs in sampling" in capsys.readouterr().err
        assert out.read_text(encoding="utf-8") == before
        assert sr_eval.main(eval_args(demo_labels, out, *common, "--lines", "0-6", "--force")) == 0
    config = json.loads((tmp_path / "eval_config.json").read_text())
    assert (
        config["previous"][0]["selection"]["lines"] == "0-4"
        and config["run"]["selection"]["lines"] == "0-6"
    )
    assert sorted(r["line"] for r in read_results(out)) == list(range(7))


def test_bad_lines_and_dead_ports_exit_non_zero(demo_labels, tmp_path, capsys):
    labels = read_labels(demo_labels, load_series(SERIES, DATA_DIR))
    out = tmp_path / "results.jsonl"
    missing = max(labels.lines) + 1
    assert (
        sr_eval.main(
            eval_args(
                demo_labels,
                out,
                "--urls",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--lines",
                f"0,{missing}",
            )
        )
        == 2
    )
    assert f"first: {missing}" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "eval_config.json").exists()
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    assert (
        sr_eval.main(
            eval_args(
                demo_labels,
                out,
                "--urls",
                *dead,
                "--model",
                "m",
                "--lines",
                "0-9",
                "--backoff",
                "0.01",
            )
        )
        == 3
    )
    assert "every port" in capsys.readouterr().err
    assert count_lines(out) == 0


def test_a_results_file_that_is_not_results_exits_2_and_writes_nothing(
    demo_labels, tmp_path, capsys
):
    out = tmp_path / "results.jsonl"
    out.write_text('{"line": 3}\nnot json\n', encoding="utf-8")
    assert (
        sr_eval.main(
            eval_args(
                demo_labels, out, "--urls", "http://127.0.0.1:9/v1", "--model", "m", "--force"
            )
        )
        == 2
    )
    assert f"{out}:2: not a record" in capsys.readouterr().err
    assert not (tmp_path / "eval_config.json").exists()


def test_seed_lines_are_not_evaluated(demo_labels):
    series = load_series(SERIES, DATA_DIR)
    labels = read_labels(demo_labels, series)
    chosen = sr_eval.judged_lines(series, labels)
    assert labels.seeds and not labels.seeds & set(chosen)
    assert len(chosen) == json.loads(demo_labels.read_text())["summary"]["judged_lines"]


def test_a_url_without_a_port_counts_as_its_schemes_default():
    from tools.sr.eval_pool import Endpoint

    assert Endpoint("https://api.example.com/v1", None).port == 443
    assert Endpoint("http://127.0.0.1:8001/v1", None).port == 8001


def test_the_sft_template_keeps_earlier_think_turns_that_qwen3s_own_template_drops(
    tiny_model, demo_labels
):
    """What each server renders for a tags conversation after two turns: LLaMA-Factory's
    qwen3_nothink (tools.sr.serve on CPU, and SFT) keeps both earlier `<think>` blocks verbatim, as
    DramaSR-LRM's tags checkpoints were trained; the stock Qwen3 chat template (what vLLM applies)
    drops them because every tags observation is a user message."""
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    series = load_series(SERIES, DATA_DIR)
    labels = read_labels(demo_labels, series)
    env = SpeakerEnv(series, labels.lines, protocol="tags", known=labels.characters)
    messages = env.prompt(next(iter(sorted(labels.lines))))
    for n, tool in enumerate(("audio_sim", "char_relation")):
        messages += [
            {"role": "assistant", "content": f"<think>第{n}步推理</think>\n<tool>{tool}</tool>"},
            {"role": "user", "content": f"观察{n}"},
        ]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    # As LLaMA-Factory's HF engine does for /v1/chat/completions: system apart, an empty reply
    # appended.
    prompt_ids, _ = TEMPLATES["qwen3_nothink"].encode_oneturn(
        tokenizer, messages[1:] + [{"role": "assistant", "content": ""}], messages[0]["content"]
    )
    served = tokenizer.decode(prompt_ids)
    assert (
        "<think>第0步推理</think>\n<tool>audio_sim</tool>" in served
        and "<think>第1步推理</think>" in served
    )
    stock = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "第0步推理" not in stock and "<tool>audio_sim</tool>" in stock


@pytest.fixture(scope="module")
def two_series_dir(tmp_path_factory) -> Path:
    """A DATA_DIR holding the demo series and a second small one made from the same script with seed
    1."""
    from tools.dev import demo_series

    data = tmp_path_factory.mktemp("two-series")
    shutil.copytree(
        DATA_DIR / SERIES, data / SERIES
    )  # a copy: the loader refuses links out of DATA_DIR
    assert (
        demo_series.main(
            [
                "--script",
                str(DATA_DIR / "script" / "chun_jiang.yaml"),
                "--out",
                str(data / SECOND),
                "--seed",
                "1",
            ]
        )
        == 0
    )
    return data


def make(target: str, *variables: str) -> list[str]:
    """A `make` command line run with this interpreter's environment (what `make install` built)."""
    if shutil.which("make") is None or not (Path(sys.prefix) / ".dramakit-env").exists():
        pytest.skip("needs make and an environment built by `make install`")
    return ["make", "--no-print-directory", target, f"VENV={sys.prefix}", *variables]


def judged_figures(results: Path, labels: Path) -> tuple[int, dict]:
    """Straight from the files: judged lines of results.jsonl and, per source and rule, how many are
    right (the published rule judged here from the answers, the truths and labels.json's known
    set)."""
    data = json.loads(labels.read_text(encoding="utf-8"))
    records = {r["index"]: r for r in data["lines"]}
    judged = [
        (r, records[r["line"]])
        for r in read_results(results)
        if records[r["line"]]["correct"] is not None and records[r["line"]]["source"] != "seed"
    ]
    right = {
        (source, rule): sum(
            (r if source == "model" else label)["correct"][rule] for r, label in judged
        )
        for source in ("model", "prepare")
        for rule in ("strict", "candidate_aware")
    }
    known = set(data["published_known"])
    right["model", "published"] = sum(
        published(r["answer"], label["truth"], known) for r, label in judged
    )
    right["prepare", "published"] = sum(
        published(label["label"], label["truth"], known) for r, label in judged
    )
    return len(judged), right


@pytest.mark.slow
def test_make_eval_and_report_on_two_series_resume_after_a_kill(
    api_server, second_api_server, two_series_dir, tmp_path
):
    runs = tmp_path / "runs"
    knobs = [
        f"DATA_DIR={two_series_dir}",
        f"RUNS={runs}",
        f"URLS={api_server} {second_api_server}",
        "CONCURRENCY=1",
        "EVAL_ARGS=--sample 4 --seed 1 --max-tokens 4 --max-turns 1",
    ]
    out = {name: runs / name / "eval" / "results.jsonl" for name in (SERIES, SECOND)}
    run = subprocess.Popen(
        make("eval", f"SERIES={SERIES},{SECOND}", *knobs),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_lines(out[SERIES], 1, timeout=180)
    os.killpg(run.pid, signal.SIGKILL)  # make, its sub-make and the eval client at once
    run.wait()
    at_kill = count_lines(out[SERIES])
    assert at_kill < 4 and not out[SECOND].exists(), "the kill must land in the first series"
    # SERIES=all: every series under DATA_DIR, the same two
    done = subprocess.run(
        make("eval", "SERIES=all", *knobs),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, path in out.items():
        lines = [r["line"] for r in read_results(path)]
        config = json.loads((path.parent / "eval_config.json").read_text(encoding="utf-8"))
        assert len(lines) == len(set(lines)) == 4 and sorted(lines) == config["lines"], name
        assert config["run"]["series"] == name

    done = subprocess.run(
        make("report", f"SERIES={SERIES},{SECOND}", *knobs),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    overview_dir = runs / f"{SERIES},{SECOND}" / "report"
    overview = json.loads((overview_dir / "report.json").read_text(encoding="utf-8"))
    assert overview["series"] == [SERIES, SECOND]
    # one series alone, as make demo runs it: the same report as the overview's, and its row
    done = subprocess.run(
        make("report", f"SERIES={SERIES}", *knobs),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    alone = runs / SERIES / "report" / "report.json"
    assert (overview_dir / SERIES / "report.json").read_bytes() == alone.read_bytes()
    assert overview["by_series"][0] == {
        "series": SERIES,
        **json.loads(alone.read_text())["accuracy"]["overall"],
    }
    totals, averages = Counter(), Counter()
    for name, row in zip((SERIES, SECOND), overview["by_series"], strict=True):
        sub = json.loads((overview_dir / name / "report.json").read_text(encoding="utf-8"))
        assert row == {"series": name, **sub["accuracy"]["overall"]}
        lines, right = judged_figures(out[name], runs / name / "labels.json")
        assert row["lines"] == lines == 4
        for (source, rule), n in right.items():
            assert row[source][rule]["correct"] == n
            averages[source, rule] += 100 * n / lines / 2
            totals[source, rule] += n
    # the demo script marks no overlapped speech: every line is clean
    assert [(r["speech"], r["lines"]) for r in overview["accuracy"]["by_overlap"]] == [
        ("overlapped", 0),
        ("clean", 8),
    ]
    assert len(totals) == 6  # our two rules and the published one, for the model and prepare
    for (source, rule), n in totals.items():
        assert overview["overall"]["lines_weighted"][source][rule] == {
            "correct": n,
            "accuracy": round(100 * n / 8, 2),
        }
        assert overview["overall"]["drama_averaged"][source][rule] == {
            "accuracy": round(averages[source, rule], 2)
        }


@pytest.mark.parametrize(
    "variables, reason",
    [
        (["SERIES=chun_jiang,chun_jiang"], "a series is named twice"),
        (["SERIES=all", "DATA_DIR=no/such/folder"], "no series (none under no/such/folder)"),
        (["SERIES=chun_jiang,x", "EVAL_OUT=one.jsonl"], "EVAL_OUT must differ per series"),
    ],
)
def test_make_refuses_several_series_that_would_collide(variables, reason, tmp_path):
    for target in ("eval", "report"):
        done = subprocess.run(
            make(target, "-n", f"RUNS={tmp_path}", *variables),
            cwd=REPO_ROOT,
            env=MAKE_ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and reason in done.stderr, (target, done.stderr)


def test_one_series_runs_the_same_eval_and_report_commands_as_before(tmp_path):
    done = subprocess.run(
        make("eval", "-n", f"RUNS={tmp_path}"),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    command = " ".join(
        done.stdout.replace("\\\n", " ").split()
    )  # make -n keeps the continuation lines
    assert (
        "-m tools.sr.evaluate --series chun_jiang --data-dir data/demo --labels "
        f"{tmp_path}/chun_jiang/labels.json "
        f"--out {tmp_path}/chun_jiang/eval/results.jsonl --ports 1-2 --base-port 8000 "
        "--protocol hermes "
        "--concurrency 8 --seed 0" in command
    ), command
    done = subprocess.run(
        make("report", "-n", f"RUNS={tmp_path}"),
        cwd=REPO_ROOT,
        env=MAKE_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        f"-m tools.sr.report --results {tmp_path}/chun_jiang/eval/results.jsonl --labels "
        f"{tmp_path}/chun_jiang/labels.json --out-dir {tmp_path}/chun_jiang/report" in done.stdout
    )


def test_credentials_in_an_endpoint_url_are_never_written(demo_labels, tmp_path, capsys, caplog):
    out = tmp_path / "results.jsonl"
    with ScriptedOpenAI() as server:
        url = server.url.replace("http://", "http://user:s3cret-key@")
        # The OpenAI client refuses userinfo next to its own Authorization header (lines fail, exit
        # 1);
        # what matters here is that the credential reaches no file and no log line.
        assert sr_eval.main(
            eval_args(
                demo_labels, out, "--urls", url, "--model", "m", "--lines", "0-1", "--retries", "0"
            )
        ) in (0, 1)
        dead = f"http://user:s3cret-key@127.0.0.1:{free_port()}/v1"
        assert (
            sr_eval.main(
                eval_args(
                    demo_labels,
                    tmp_path / "dead" / "results.jsonl",
                    "--urls",
                    dead,
                    "--lines",
                    "0-1",
                )
            )
            == 3
        )
    config = (tmp_path / "eval_config.json").read_text(encoding="utf-8")
    assert "s3cret" not in config and "http://***@127.0.0.1" in config
    captured = capsys.readouterr()
    assert "s3cret" not in captured.err + captured.out and "http://***@127.0.0.1" in captured.err
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
