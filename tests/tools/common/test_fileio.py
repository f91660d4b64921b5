"""Shared file helpers: atomic writes leave no partial file; JSONL errors are named, not raised."""

import json
import os

import pytest

from tools.common.fileio import (
    Report,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_objects,
    read_jsonl,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"名字": "林晚"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"名字": "林晚"}
    assert "林晚" in target.read_text(encoding="utf-8"), "non-ASCII stays readable"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):  # fails inside the write, after the temp file exists
        atomic_write_bytes(target, Boom())
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_read_jsonl_names_broken_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n[1, 2]\n', encoding="utf-8")
    records = list(read_jsonl(path))
    assert [(r.line_no, r.value) for r in records if r.error is None] == [
        (1, {"a": 1}),
        (4, [1, 2]),
    ]
    broken = [r for r in records if r.error]
    assert len(broken) == 1 and broken[0].line_no == 3 and "broken JSON" in broken[0].error


def test_report_accounts_for_every_record():
    report = Report("x.jsonl")
    for i in range(10):
        report.seen()
        if i % 3 == 0:
            report.drop("too short", f"x.jsonl:{i + 1}")
        else:
            report.keep()
    data = report.as_dict()
    assert data["records_in"] == data["records_out"] + sum(data["dropped"].values()) == 10
    assert data["dropped"] == {"too short": 4}
    assert data["dropped_examples"]["too short"][:2] == ["x.jsonl:1", "x.jsonl:4"]
    assert report.summary_line() == "x.jsonl: 10 in, 6 out; dropped: too short 4"


def test_json_objects_counts_and_drops_what_is_not_an_object(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n[1]\n{"a": \n{"b": 2}\n', encoding="utf-8")
    report = Report(str(path))
    kept = list(json_objects(path, report))
    assert kept == [(1, f"{path}:1", {"a": 1}), (4, f"{path}:4", {"b": 2})]
    assert report.records_in == 4 and report.dropped == {"not a JSON object": 1, "broken JSON": 1}
    assert report.examples["not a JSON object"] == [f"{path}:2"]


def test_append_only_output_is_locked_resumed_and_deduplicated(tmp_path):
    from tools.common.fileio import (
        AppendOnlyJsonl,
        OutputBusy,
        OutputError,
        duplicate_keys,
        lock_path,
    )

    out = tmp_path / "r.jsonl"
    key = lambda record: record["id"]  # noqa: E731
    with AppendOnlyJsonl(out, key) as output:
        output.append({"id": 1})
        output.append({"id": 2})
        with (
            pytest.raises(OutputBusy, match=f"being written by process {os.getpid()}"),
            AppendOnlyJsonl(out, key),
        ):
            pass
    assert lock_path(out).read_text().strip() == str(os.getpid())
    out.write_bytes(
        out.read_bytes() + b'{"id": 1, "again": true}\n{"id": 3'
    )  # a duplicate, a torn line
    assert duplicate_keys(out, key) == (1, f"{out}:3")
    with (
        pytest.raises(OutputError, match=r"1 duplicated records \(first at .*:3\)"),
        AppendOnlyJsonl(out, key),
    ):
        pass
    with AppendOnlyJsonl(out, key, dedupe=True, keep_records=True) as output:
        assert output.keys == {1, 2} and output.records[1] == {"id": 1}
        output.append({"id": 3})
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 3]
    out.write_text('{"id": 1}\n[1]\n')
    with (
        pytest.raises(OutputError, match=r"r.jsonl:2: not a record \(not a JSON object\)"),
        AppendOnlyJsonl(out, key),
    ):
        pass
    out.write_text('{"id": 1}\n{"no": 1}\n')
    with (
        pytest.raises(OutputError, match=r"r.jsonl:2: not a record of this output"),
        AppendOnlyJsonl(out, key),
    ):
        pass
