"""The style classifier: data contract and checks, stratified split, metrics, recipes, training with
the HF Trainer on the tiny model, the predict CLI, and the HTTP service over real HTTP.

The slow part trains once per module (`python -m tools.style train`, recipes/style/tiny_cpu.yaml,
in a subprocess as users run it) and starts the service once (a subprocess on a free port of
127.0.0.1, stopped by its pid). The tiny model is random at the start: its scores prove the
plumbing, and that the sample set's classes are learnable, nothing more.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from plugins.style.batching import MicroBatcher
from plugins.style.labels import DEFAULT_LABELS, LabelSet, read_label_mapping
from tools.style.__main__ import main as style_cli
from tools.style.data import (
    StyleDataError,
    StyleRecord,
    check_records,
    exchange_text,
    format_input,
    load_records,
    stratified_split,
    write_records,
)
from tools.style.metrics import classification_metrics, majority_baseline
from tools.style.samples import generate_samples
from tools.style.train import write_label_mapping

SAMPLES = Path("data/style/samples.jsonl")
TINY_RECIPE = Path("recipes/style/tiny_cpu.yaml")
MAX_BODY_BYTES = 65536
MAX_BATCH = 8


def _write_lines(path: Path, lines: list) -> Path:
    path.write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
            for line in lines
        ),
        encoding="utf-8",
    )
    return path


def _record(answer: str, label: str, question: str = "耳机保修多久？") -> dict:
    return {"input": format_input(question, answer), "label": label}


# ---- labels and data contract -------------------------------------------------------------------


def test_default_label_ids_follow_the_published_order_and_mapping_round_trips(tmp_path):
    assert DEFAULT_LABELS.names == ["售前", "售后", "诚实", "有帮助", "无伤害"]
    assert DEFAULT_LABELS.english_names == [
        "presales",
        "aftersales",
        "honest",
        "helpful",
        "harmless",
    ]
    assert DEFAULT_LABELS.id_of("有帮助") == DEFAULT_LABELS.id_of("helpful") == 3
    custom = LabelSet.from_spec(
        [{"label": "正式", "label_english": "formal"}, {"label": "随意", "label_english": "casual"}]
    )
    write_label_mapping(tmp_path, custom, max_length=64)
    mapping = json.loads((tmp_path / "label_mapping.json").read_text(encoding="utf-8"))
    assert mapping["labels"][1] == {"id": 1, "label": "随意", "label_english": "casual"}
    assert read_label_mapping(tmp_path) == (custom, 64)


@pytest.mark.parametrize(
    "spec, message",
    [
        ([{"label": "正式", "label_english": "formal"}], "at least 2"),
        (
            [
                {"label": "正式", "label_english": "formal"},
                {"label": "正式", "label_english": "plain"},
            ],
            "unique",
        ),
        (
            [
                {"label": "正式", "label_english": "Formal Style"},
                {"label": "随意", "label_english": "casual"},
            ],
            "label_english",
        ),
        ([{"label": "正式"}, {"label": "随意", "label_english": "casual"}], "exactly the keys"),
    ],
)
def test_bad_label_sets_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        LabelSet.from_spec(spec)


def test_input_format_and_exchange_forms():
    assert format_input(" 能退吗？ ", "可以。\n") == "用户问题：能退吗？\n回答：可以。"
    assert (
        exchange_text({"question": "能退吗？", "answer": "可以。"})
        == "用户问题：能退吗？\n回答：可以。"
    )
    assert exchange_text({"input": "用户问题：x\n回答：y"}) == "用户问题：x\n回答：y"
    for bad in ({"question": "能退吗？"}, {"answer": 3}, {"input": ""}, ["answer"]):
        with pytest.raises(StyleDataError):
            exchange_text(bad)


def test_check_records_names_every_bad_line_and_counts_classes(tmp_path):
    path = _write_lines(
        tmp_path / "mixed.jsonl",
        [
            _record("现在下单立减20元！", "售前"),
            "{broken",
            _record("请勿自行拆卸。", "无伤害"),
            _record("第一步，打开App。", "好用"),
            _record("现在下单立减20元！", "售前"),
            _record("现在下单立减20元！", "售后"),
            ["not", "an", "object"],
            {"label": "售前"},
            {**_record("非常抱歉。", "售后"), "label_english": "presales"},
            {**_record("实话实说。", "honest"), "label_english": "honest"},
        ],
    )
    records, report = check_records(path, DEFAULT_LABELS)
    assert [r.label for r in records] == ["售前", "无伤害", "诚实"]
    assert records[2].label_english == "honest", "an English label is read as its style"
    assert report.records_in == 10 and report.records_out == 3
    assert dict(report.dropped) == {
        "broken JSON": 1,
        "unknown label": 1,
        "duplicate input": 1,
        "duplicate input with another label": 1,
        "not a JSON object": 1,
        "missing input": 1,
        "label_english does not match label": 1,
    }
    assert report.examples["broken JSON"][0].startswith(f"{path}:2: broken JSON")
    assert report.examples["duplicate input"] == [f"{path}:5 (same input as {path}:1)"]
    assert report.extra["class_counts"] == {
        "售前": 1,
        "售后": 0,
        "诚实": 1,
        "有帮助": 0,
        "无伤害": 1,
    }
    with pytest.raises(StyleDataError, match=r"7 bad record\(s\) of 10.*mixed.jsonl:2"):
        load_records(path, DEFAULT_LABELS)


def test_validate_command_reports_and_exits_1_on_problems_0_on_clean(tmp_path, capsys):
    bad = _write_lines(
        tmp_path / "bad.jsonl", [_record("请勿自行拆卸。", "无伤害"), _record("好的。", "随便")]
    )
    report_path = tmp_path / "report.json"
    assert style_cli(["validate", "--in", str(bad), "--report", str(report_path)]) == 1
    out = capsys.readouterr().out
    assert "2 in, 1 out; dropped: unknown label 1" in out and f"{bad}:2" in out
    assert json.loads(report_path.read_text(encoding="utf-8"))["dropped"] == {"unknown label": 1}
    assert style_cli(["validate", "--in", str(SAMPLES)]) == 0
    assert '"售前": 60' in capsys.readouterr().out


def test_validate_uses_the_label_set_a_recipe_declares(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "labels:\n  - {label: 正式, label_english: formal}\n  - {label: 随意, "
        "label_english: casual}\n",
        encoding="utf-8",
    )
    data = _write_lines(
        tmp_path / "two.jsonl",
        [_record("您好，请问有什么可以帮您？", "正式"), _record("嗨，咋啦？", "casual")],
    )
    assert style_cli(["validate", "--in", str(data), "--recipe", str(recipe)]) == 0
    assert style_cli(["validate", "--in", str(data)]) == 1


def test_convert_turns_pairs_into_contract_records_and_reports_drops(tmp_path, capsys):
    pairs = _write_lines(
        tmp_path / "pairs.jsonl",
        [
            {"q": "能退吗？", "a": "签收7天内支持无理由退换货。", "style": "售后", "shop": "A"},
            {"q": "能退吗？", "a": "签收7天内支持无理由退换货。", "style": "售后"},
            {"q": "能退吗？", "a": "", "style": "售后"},
            {"q": "贵吗？", "a": "领券后到手价更低！", "style": "推销"},
            "not json",
        ],
    )
    out = tmp_path / "out" / "style.jsonl"
    argv = [
        "convert",
        "--in",
        str(pairs),
        "--out",
        str(out),
        "--question-key",
        "q",
        "--answer-key",
        "a",
        "--label-key",
        "style",
    ]
    assert style_cli(argv) == 0
    assert (
        "5 in, 1 out; dropped: broken JSON 1, duplicate input 1, missing a 1, unknown label 1"
        in capsys.readouterr().out
    )
    [record] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert record == {
        "input": "用户问题：能退吗？\n回答：签收7天内支持无理由退换货。",
        "label": "售后",
        "label_english": "aftersales",
        "metadata": {"shop": "A", "source_line": 1},
    }
    fixed = tmp_path / "fixed.jsonl"
    assert (
        style_cli(
            [
                "convert",
                "--in",
                str(pairs),
                "--out",
                str(fixed),
                "--question-key",
                "q",
                "--answer-key",
                "a",
                "--label",
                "helpful",
            ]
        )
        == 0
    )
    assert Counter(
        json.loads(line)["label"] for line in fixed.read_text(encoding="utf-8").splitlines()
    ) == {"有帮助": 2}


def test_convert_writes_nothing_and_exits_2_when_no_record_survives(tmp_path, capsys):
    pairs = _write_lines(
        tmp_path / "pairs.jsonl", [{"question": "贵吗？", "answer": "不贵。", "label": "推销"}]
    )
    out = tmp_path / "out.jsonl"
    assert style_cli(["convert", "--in", str(pairs), "--out", str(out)]) == 2
    assert "nothing written" in capsys.readouterr().err
    assert not out.exists()


# ---- the shipped samples and the stratified split
# -------------------------------------------------


def test_shipped_samples_are_reproduced_by_their_generator(tmp_path):
    regenerated = tmp_path / "samples.jsonl"
    write_records(regenerated, generate_samples(per_class=60, seed=0))
    assert regenerated.read_bytes() == SAMPLES.read_bytes(), "rerun: python -m tools.style samples"


def test_split_keeps_every_class_in_train_and_eval_even_for_a_class_sorted_file():
    records = load_records(SAMPLES, DEFAULT_LABELS)
    order = [DEFAULT_LABELS.id_of(r.label) for r in records]
    assert order == sorted(order), "the shipped file is class-sorted, the original project's trap"
    # The original's split (first 80% train, unshuffled) never trains on the last class:
    assert "无伤害" not in {r.label for r in records[: int(0.8 * len(records))]}

    for seed in range(20):
        train, evaluation = stratified_split(records, DEFAULT_LABELS, eval_fraction=0.2, seed=seed)
        assert Counter(r.label for r in train) == {name: 48 for name in DEFAULT_LABELS.names}
        assert Counter(r.label for r in evaluation) == {name: 12 for name in DEFAULT_LABELS.names}
        assert {r.input for r in train}.isdisjoint(r.input for r in evaluation)
        assert len(train) + len(evaluation) == len(records)
        assert len({r.label for r in evaluation[:10]}) > 1, "the split output is not class-sorted"

    first = stratified_split(records, DEFAULT_LABELS, 0.2, seed=42)
    assert [r.input for r in stratified_split(records, DEFAULT_LABELS, 0.2, seed=42)[1]] == [
        r.input for r in first[1]
    ]
    assert {r.input for r in stratified_split(records, DEFAULT_LABELS, 0.2, seed=7)[1]} != {
        r.input for r in first[1]
    }


def test_split_keeps_a_two_example_class_on_both_sides():
    records = [StyleRecord(f"q{i}", "售前", "presales") for i in range(30)]
    records += [
        StyleRecord(f"r{i}", name, DEFAULT_LABELS.styles[DEFAULT_LABELS.id_of(name)].label_english)
        for name in DEFAULT_LABELS.names[1:]
        for i in range(2)
    ]
    train, evaluation = stratified_split(records, DEFAULT_LABELS, eval_fraction=0.1, seed=0)
    assert {r.label for r in train} == {r.label for r in evaluation} == set(DEFAULT_LABELS.names)


@pytest.mark.parametrize(
    "counts, named", [({"售前": 5, "售后": 1}, "'售后': 1"), ({"售前": 5, "售后": 5}, "'诚实': 0")]
)
def test_split_refuses_a_class_too_small_to_appear_on_both_sides(counts, named):
    records = [StyleRecord(f"{name}{i}", name, "x") for name, n in counts.items() for i in range(n)]
    with pytest.raises(StyleDataError, match=named):
        stratified_split(records, DEFAULT_LABELS, eval_fraction=0.2, seed=0)


# ---- metrics
# ----------------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values():
    labels = LabelSet.from_spec(
        [
            {"label": "甲", "label_english": "a"},
            {"label": "乙", "label_english": "b"},
            {"label": "丙", "label_english": "c"},
        ]
    )
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 1]
    metrics = classification_metrics(y_true, y_pred, labels)
    assert metrics["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # a: p 1, r 2/3 -> f1 0.8; b: p 0.5, r 1 -> 2/3; c: never predicted -> 0
    assert [metrics["per_class"][n]["f1"] for n in ("甲", "乙", "丙")] == pytest.approx(
        [0.8, 2 / 3, 0.0]
    )
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 3)
    assert metrics["weighted_f1"] == pytest.approx((0.8 * 3 + 2 / 3 * 2) / 6)
    baseline = majority_baseline([0, 0, 1], y_true, labels)
    assert baseline == {
        "predicts": "甲",
        "accuracy": pytest.approx(0.5),
        "macro_f1": pytest.approx((2 / 3) / 3),
    }


# ---- micro-batching
# -----------------------------------------------------------------------------------


def test_micro_batcher_merges_concurrent_callers_and_keeps_each_callers_results():
    batches = []

    def double(items):
        batches.append(len(items))
        return [2 * x for x in items]

    batcher = MicroBatcher(double, max_items=64, max_wait_s=0.5)
    start = threading.Barrier(8)
    results = {}

    def call(i):
        start.wait()
        results[i] = batcher([i, i + 100])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {i: [2 * i, 2 * (i + 100)] for i in range(8)}
    assert sum(batches) == 16 and len(batches) < 8, f"batch sizes {batches}"


def test_micro_batcher_hands_a_failure_to_its_callers_and_keeps_serving():
    def fail_on_negative(items):
        if any(x < 0 for x in items):
            raise ValueError("negative")
        return items

    batcher = MicroBatcher(fail_on_negative, max_items=4, max_wait_s=0.0)
    with pytest.raises(ValueError, match="negative"):
        batcher([-1])
    assert batcher([1, 2]) == [1, 2]


def test_train_command_refuses_bad_data_before_loading_a_model(tmp_path, capsys):
    out = tmp_path / "out"
    bad = _write_lines(tmp_path / "bad.jsonl", [_record("现在下单立减20元！", "售前"), "{oops"])
    argv = [
        "train",
        "--recipe",
        str(TINY_RECIPE),
        f"train_file={bad}",
        f"output_dir={out}",
        "model_name_or_path=/nonexistent",
    ]
    assert style_cli(argv) == 2
    assert f"{bad}:2: broken JSON" in capsys.readouterr().err
    small = _write_lines(
        tmp_path / "small.jsonl",
        [_record(f"{name}{i}", name) for name in DEFAULT_LABELS.names for i in range(2)][:-1],
    )
    assert (
        style_cli(
            [
                "train",
                "--recipe",
                str(TINY_RECIPE),
                f"train_file={small}",
                f"output_dir={out}",
                "model_name_or_path=/nonexistent",
            ]
        )
        == 2
    )
    assert "'无伤害': 1" in capsys.readouterr().err
    assert not out.exists(), "nothing written"


def test_class_weighted_loss_is_weighted_cross_entropy(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from tools.style.train import _balanced_class_weights, _weighted_loss_trainer_class

    weights = _balanced_class_weights([0, 0, 0, 1], num_classes=2)
    assert weights == pytest.approx([4 / 6, 2.0])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = _weighted_loss_trainer_class()(model=model, args=args, class_weights=weights)
    inputs = {
        "input_ids": torch.tensor([[11, 12, 13], [21, 22, 23], [31, 32, 33]]),
        "labels": torch.tensor([0, 1, 1]),
    }
    loss = trainer.compute_loss(model, dict(inputs))
    logits = model(input_ids=inputs["input_ids"]).logits
    expected = torch.nn.functional.cross_entropy(
        logits, inputs["labels"], weight=torch.tensor(weights)
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx(
        torch.nn.functional.cross_entropy(logits, inputs["labels"]).item(), rel=1e-3
    )


# ---- training, prediction, service (slow)
# --------------------------------------------------------------


def _subprocess_env(repo_root: Path) -> dict:
    # One torch thread: on a few shared cores, two spinning OpenMP threads per process make the
    # tiny model's steps several times slower, not faster.
    path = os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(repo_root, tiny_model, tmp_path_factory):
    """The tiny model trained by the real command on the shipped samples; (output dir, wall
    seconds)."""
    out = tmp_path_factory.mktemp("style") / "model"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.style",
            "train",
            "--recipe",
            str(TINY_RECIPE),
            f"model_name_or_path={tiny_model}",
            f"output_dir={out}",
            "disable_tqdm=true",
        ],
        cwd=repo_root,
        env=_subprocess_env(repo_root),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "proves the plumbing only" in proc.stdout
    return out, time.monotonic() - started


@pytest.mark.slow
def test_training_beats_the_majority_baseline_and_writes_consistent_outputs(trained):
    out, seconds = trained
    metrics = json.loads((out / "eval_metrics.json").read_text(encoding="utf-8"))
    baseline = metrics["majority_baseline"]
    print(
        f"tiny style classifier: macro F1 {metrics['macro_f1']:.3f} vs majority "
        f"{baseline['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}, trained in {seconds:.0f}s"
    )
    assert metrics["macro_f1"] >= baseline["macro_f1"] + 0.3
    assert baseline["accuracy"] == pytest.approx(0.2)

    labels, max_length = read_label_mapping(out)
    assert labels == DEFAULT_LABELS and max_length == 80
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {str(i): name for i, name in enumerate(DEFAULT_LABELS.names)}
    assert set(metrics["per_class"]) == set(DEFAULT_LABELS.names)
    assert all(entry["support"] == 12 for entry in metrics["per_class"].values())
    matrix = metrics["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["eval_examples"] == 60
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(5)) / 60)
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["best_checkpoint"] and metrics["best_metric"]["macro_f1"] == pytest.approx(
        metrics["macro_f1"]
    )
    split = {
        name: [json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()]
        for name in ("train.jsonl", "eval.jsonl")
    }
    assert all({r["label"] for r in rows} == set(DEFAULT_LABELS.names) for rows in split.values())


@pytest.mark.slow
def test_predict_command_on_the_eval_split_reproduces_the_reported_metrics(
    trained, tmp_path, capsys
):
    out, _ = trained
    predictions = tmp_path / "predictions.jsonl"
    assert (
        style_cli(
            [
                "predict",
                "--model",
                str(out),
                "--in",
                str(out / "eval.jsonl"),
                "--out",
                str(predictions),
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "eval_metrics.json").read_text(encoding="utf-8"))
    assert summary["records"] == summary["labelled"] == 60
    assert summary["accuracy"] == pytest.approx(metrics["accuracy"])

    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    y_true = [DEFAULT_LABELS.id_of(r["label"]) for r in rows]
    y_pred = [DEFAULT_LABELS.id_of(r["prediction"]["label"]) for r in rows]
    assert (
        classification_metrics(y_true, y_pred, DEFAULT_LABELS)["confusion_matrix"]
        == metrics["confusion_matrix"]
    )
    for row in rows:
        probabilities = row["prediction"]["probabilities"]
        assert list(probabilities) == DEFAULT_LABELS.names and sum(
            probabilities.values()
        ) == pytest.approx(1.0)
        assert row["prediction"]["label"] == max(probabilities, key=probabilities.get)


def test_predict_command_stops_on_a_bad_line_and_writes_nothing(tmp_path, capsys):
    # Input and labels are checked before the model is loaded: a label mapping is all it reads.
    model_dir = tmp_path / "model"
    write_label_mapping(model_dir, DEFAULT_LABELS, 32)
    out = tmp_path / "out.jsonl"
    cases = [
        (
            [{"question": "贵吗？", "answer": "不贵。"}, {"question": "贵吗？"}],
            ":2: needs a non-empty",
        ),
        ([{"answer": "不贵。"}, "{oops"], ":2: broken JSON"),
        ([{"answer": "不贵。", "label": "推销"}], ":1: label '推销' is not one of the model's"),
    ]
    for lines, message in cases:
        data = _write_lines(tmp_path / "in.jsonl", lines)
        assert (
            style_cli(["predict", "--model", str(model_dir), "--in", str(data), "--out", str(out)])
            == 2
        )
        assert f"{data}{message}" in capsys.readouterr().err
        assert not out.exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def service(trained, repo_root):
    """`python -m tools.style serve` on a free port of 127.0.0.1, stopped by its pid afterwards."""
    out, _ = trained
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.style",
            "serve",
            "--model",
            str(out),
            "--port",
            str(port),
            "--max-batch",
            str(MAX_BATCH),
            "--max-body-bytes",
            str(MAX_BODY_BYTES),
        ],
        cwd=repo_root,
        env=_subprocess_env(repo_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"service exited:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "service did not become healthy in 120 s"
            try:
                if _call(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _post_chunked(port: int, path: str, body: bytes) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        connection.request(
            "POST",
            path,
            body=iter(pieces),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _post(port: int, path: str, payload) -> tuple[int, dict]:
    return _call(
        port,
        "POST",
        path,
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        {"Content-Type": "application/json"},
    )


@pytest.mark.slow
def test_service_health_single_and_batch_agree_with_the_classifier(service, trained):
    from plugins.style.classifier import StyleClassifier

    status, health = _call(service, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["max_batch"] == MAX_BATCH
    assert [entry["label"] for entry in health["labels"]] == DEFAULT_LABELS.names

    items = [
        {
            "question": "耳机保修多久？",
            "answer": "非常抱歉给您带来不便，麻烦您提供一下订单号，我们马上为您登记售后工单。",
        },
        {
            "question": "充电时发烫正常吗？",
            "answer": "为了您的安全，请立即断电，请勿自行拆卸，存在触电风险。",
        },
        {"input": format_input("贵吗？", "现在下单立减20元，库存只剩不到5台，赶紧拍下吧！")},
    ]
    status, single = _post(service, "/predict", items[0])
    assert status == 200 and set(single) == {"label", "label_english", "probabilities"}
    status, batch = _post(service, "/predict_batch", {"items": items})
    assert status == 200 and len(batch["predictions"]) == 3
    assert batch["predictions"][0]["probabilities"] == pytest.approx(
        single["probabilities"], abs=1e-5
    )

    expected = StyleClassifier(trained[0]).predict([exchange_text(item) for item in items])
    for got, want in zip(batch["predictions"], expected, strict=True):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    assert [p["label"] for p in batch["predictions"]] == ["售后", "无伤害", "售前"]
    assert _post(service, "/predict_batch", {"items": []}) == (200, {"predictions": []})
    status, chunked = _post_chunked(
        service, "/predict", json.dumps(items[0], ensure_ascii=False).encode("utf-8")
    )
    assert status == 200 and chunked["probabilities"] == pytest.approx(
        single["probabilities"], abs=1e-5
    )


@pytest.mark.slow
def test_service_merges_concurrent_requests_without_mixing_answers(service):
    answers = ["第一步，打开App；第二步，长按电源键。", "实话实说，这款的续航确实一般。"] * 6
    expected = {
        answer: _post(service, "/predict", {"answer": answer})[1] for answer in set(answers)
    }
    results = [None] * len(answers)

    def ask(i):
        results[i] = _post(service, "/predict", {"answer": answers[i]})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for answer, (status, prediction) in zip(answers, results, strict=True):
        assert status == 200
        assert prediction["probabilities"] == pytest.approx(
            expected[answer]["probabilities"], abs=1e-5
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, body, headers, status",
    [
        ("POST", "/predict", b"{not json", None, 400),
        ("POST", "/predict", b"\xff\xfe", None, 400),
        ("POST", "/predict", b"[1, 2]", None, 400),
        ("POST", "/predict", json.dumps({"question": "贵吗？"}).encode(), None, 400),
        ("POST", "/predict", json.dumps({"answer": 5}).encode(), None, 400),
        ("POST", "/predict_batch", json.dumps({"items": "x"}).encode(), None, 400),
        (
            "POST",
            "/predict_batch",
            json.dumps({"items": [{"answer": "好"}] * (MAX_BATCH + 1)}).encode(),
            None,
            400,
        ),
        (
            "POST",
            "/predict_batch",
            json.dumps({"items": [{"answer": "好"}, {"answer": ""}]}).encode(),
            None,
            400,
        ),
        ("POST", "/predict_batch", b"[" * 20000 + b"]" * 20000, None, 400),
        ("POST", "/predict", json.dumps({"answer": "好" * MAX_BODY_BYTES}).encode(), None, 413),
        ("POST", "/predict", None, None, 411),
        ("POST", "/predict", b'{"answer": ', {"Transfer-Encoding": "chunked"}, 400),
        (
            "POST",
            "/predict",
            json.dumps({"answer": "好" * MAX_BODY_BYTES}).encode(),
            {"Transfer-Encoding": "chunked"},
            413,
        ),
        ("GET", "/predict", None, None, 405),
        ("DELETE", "/health", None, None, 405),
        ("BREW", "/predict", None, None, 405),
        ("GET", "/nothing", None, None, 404),
    ],
    ids=[
        "broken-json",
        "not-utf8",
        "not-object",
        "no-answer",
        "answer-not-string",
        "items-not-list",
        "batch-over-limit",
        "empty-item",
        "deep-nesting",
        "oversized",
        "no-length",
        "chunked-broken-json",
        "chunked-oversized",
        "wrong-method",
        "delete",
        "made-up-method",
        "unknown-path",
    ],
)
def test_service_answers_bad_requests_with_4xx_and_a_reason(
    service, method, path, body, headers, status
):
    if body is not None and headers is None:
        headers = {"Content-Type": "application/json"}
    if method == "POST" and body is None:
        connection = http.client.HTTPConnection("127.0.0.1", service, timeout=60)
        connection.putrequest("POST", path)  # no Content-Length header at all
        connection.endheaders()
        response = connection.getresponse()
        got, payload = response.status, json.loads(response.read())
        connection.close()
    elif headers and "Transfer-Encoding" in headers:
        got, payload = _post_chunked(service, path, body)
    else:
        got, payload = _call(service, method, path, body, headers)
    assert got == status, payload
    assert payload["error"]
    assert _call(service, "GET", "/health")[0] == 200, "the service survives it"


@pytest.mark.slow
def test_style_reward_through_the_service_scores_concurrent_calls(service):
    from rewards.style import compute_score

    url = f"http://127.0.0.1:{service}"
    responses = {
        "有帮助": "第一步，打开App；第二步，长按电源键进入配对模式。",
        "售后": "非常抱歉，请提供订单号，我们为您登记售后工单。",
    }
    results = {}

    def score(target, response):
        results[target] = compute_score(
            "style", response, target, {"question": "怎么连接手机？"}, service_url=url
        )

    threads = [threading.Thread(target=score, args=item) for item in responses.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for target, response in responses.items():
        _, prediction = _post(
            service, "/predict", {"question": "怎么连接手机？", "answer": response}
        )
        assert results[target]["score"] == pytest.approx(
            prediction["probabilities"][target], abs=1e-5
        )
        english = DEFAULT_LABELS.english_names[DEFAULT_LABELS.id_of(target)]
        parts = {key: value for key, value in results[target].items() if key.startswith("p_")}
        assert set(parts) == {f"p_{name}" for name in DEFAULT_LABELS.english_names}
        assert max(parts, key=parts.get) == f"p_{english}", (
            "each response scores highest on its own style"
        )
        assert parts[f"p_{english}"] == results[target]["score"]
