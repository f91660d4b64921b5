"""Bad input for every role-play converter: the same matrix (empty, binary, UTF-16, GBK, UTF-8 BOM,
a broken line in the middle, a missing file) through each command's own entry point.

A refused file exits 2 with one `error:` line naming the file and the reason (byte offset and likely
encoding for undecodable bytes, file:line for a broken line) and writes nothing; a BOM is accepted.
"""

import json
from pathlib import Path

import pytest

from tools.common.text_input import NotTextError, decode
from tools.roleplay import character, dialogue, regress, regress_bank, rolebench

BINARY = bytes(range(256)) * 8


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


ROLEBENCH = [
    {"role": "孙悟空", "question": f"你喜欢第{i}个桃子吗？", "generated": ["喜欢！"]}
    for i in range(3)
]
VOICE = [
    {"source_title": "序章", "speaker": "芙宁娜", "text": f"这是第{i}句台词，好好听着。"}
    for i in range(3)
]
BANK = [
    {
        "id": f"c{i}",
        "tags": ["t"],
        "messages": [{"role": "user", "content": f"第{i}个问题是什么呢"}],
        "checks": {"max_chars": 9},
    }
    for i in range(3)
]
TRAIN = [{"instruction": f"别的问题{i}号", "output": "x"} for i in range(3)]
SCRIPT = "林晚：你来了？\n陈舟：来了，路上有点堵。\n林晚：坐吧，喝口茶。\n陈舟：好，谢谢你。\n"


class Converter:
    """How to run one converter on one input file; `skip_flag` lets it drop broken lines."""

    def __init__(self, name, good_text, suffix, argv, skip_flag=None, writes_output=True):
        self.name, self.good_text, self.suffix, self.argv = name, good_text, suffix, argv
        self.skip_flag, self.writes_output = skip_flag, writes_output

    def run(self, tmp_path: Path, path: Path, *extra: str) -> int:
        return self.argv(tmp_path, path, *extra)


def _rolebench(tmp_path, path, *extra):
    return rolebench.main(
        [
            "--inputs",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
            "--name",
            "rb",
            "--max-tokens",
            "0",
            "--max-source-tokens",
            "0",
            *extra,
        ]
    )


def _character(tmp_path, path, *extra):
    return character.main(
        ["--voice-lines", str(path), "--out-dir", str(tmp_path / "out"), "--name", "fu", *extra]
    )


def _dialogue(tmp_path, path, *extra):
    return dialogue.main(
        [
            "--inputs",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
            "--name",
            "dl",
            "--assistant",
            "陈舟",
            "--user",
            "林晚",
            *extra,
        ]
    )


def _bank(tmp_path, path, *extra):
    return regress_bank.main([str(path), *extra])


def _leak(tmp_path, path, *extra):
    bank = tmp_path / "bank.jsonl"
    bank.write_text(_jsonl(BANK), encoding="utf-8")
    return regress.main(["--check-leak", "--cases", str(bank), "--train", str(path), *extra])


def _profiles(tmp_path, path, *extra):
    records = tmp_path / "records.jsonl"
    records.write_text(_jsonl(ROLEBENCH), encoding="utf-8")
    return rolebench.main(
        [
            "--inputs",
            str(records),
            "--profiles",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
            "--name",
            "rb",
            "--max-tokens",
            "0",
            "--max-source-tokens",
            "0",
            *extra,
        ]
    )


CONVERTERS = [
    Converter("rolebench", _jsonl(ROLEBENCH), ".jsonl", _rolebench, "--skip-broken"),
    Converter("character", _jsonl(VOICE), ".jsonl", _character, "--skip-broken"),
    Converter("dialogue", SCRIPT, ".txt", _dialogue),
    Converter("regress_bank", _jsonl(BANK), ".jsonl", _bank, writes_output=False),
    Converter("regress_leak", _jsonl(TRAIN), ".jsonl", _leak, writes_output=False),
    Converter(
        "profiles",
        json.dumps({"孙悟空": "齐天大圣，性子急"}, ensure_ascii=False, indent=1),
        ".json",
        _profiles,
    ),
]
IDS = [c.name for c in CONVERTERS]


def _input(tmp_path: Path, converter: Converter, data: bytes) -> Path:
    path = tmp_path / f"input{converter.suffix}"
    path.write_bytes(data)
    return path


def _refused(converter, tmp_path, path, capsys) -> str:
    code = converter.run(tmp_path, path)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_a_good_file_passes(converter, tmp_path, capsys):
    path = _input(tmp_path, converter, converter.good_text.encode("utf-8"))
    assert converter.run(tmp_path, path) == 0, capsys.readouterr().err


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_an_empty_file_is_refused(converter, tmp_path, capsys):
    _refused(converter, tmp_path, _input(tmp_path, converter, b""), capsys)


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_binary_is_refused_with_its_byte_offset(converter, tmp_path, capsys):
    err = _refused(converter, tmp_path, _input(tmp_path, converter, BINARY), capsys)
    # bytes 0..127 are valid UTF-8; the first invalid one is 0x80
    assert "invalid byte 0x80 at byte offset 128 (line 2" in err and "binary data" in err


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_utf16_is_refused_and_named(converter, tmp_path, capsys):
    err = _refused(
        converter,
        tmp_path,
        _input(tmp_path, converter, converter.good_text.encode("utf-16")),
        capsys,
    )
    assert "not UTF-8: byte offset 0 starts a UTF-16 LE (byte-order mark FF FE)" in err


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_gbk_is_refused_and_named(converter, tmp_path, capsys):
    data = converter.good_text.encode("gbk")
    first_bad = next(i for i, b in enumerate(data) if b >= 0x80)
    err = _refused(converter, tmp_path, _input(tmp_path, converter, data), capsys)
    assert f"at byte offset {first_bad} " in err and "looks like GBK/GB18030" in err


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_a_utf8_bom_is_accepted_and_costs_no_record(converter, tmp_path, capsys):
    path = _input(tmp_path, converter, b"\xef\xbb\xbf" + converter.good_text.encode("utf-8"))
    assert converter.run(tmp_path, path) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if converter.name == "rolebench" or converter.name == "character":
        assert "3 in, 3 out" in out
    elif converter.name == "regress_bank":
        assert "3 cases, valid" in out
    elif converter.name == "regress_leak":
        assert "checked 3 prompts against 3 samples: 0 found" in out
    elif converter.name == "dialogue":
        report = json.loads((tmp_path / "out" / "dl.input.report.json").read_text(encoding="utf-8"))
        assert report["records_in"] == 4 and report["records_out"] == 4


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_a_broken_line_in_the_middle_is_named_and_nothing_is_written(converter, tmp_path, capsys):
    lines = converter.good_text.splitlines(keepends=True)
    if converter.suffix == ".jsonl":
        broken = (lines[0] + '{"oops": \n' + "".join(lines[1:])).encode("utf-8")
        where = f"{tmp_path / ('input' + converter.suffix)}:2"
    else:  # text and one-object JSON: an undecodable byte in line 2
        broken = lines[0].encode("utf-8") + b"\xff" + "".join(lines[1:]).encode("utf-8")
        where = "(line 2, byte 1 of the line)"
    err = _refused(converter, tmp_path, _input(tmp_path, converter, broken), capsys)
    assert where in err
    if converter.skip_flag:
        path = _input(tmp_path, converter, broken)
        assert converter.run(tmp_path, path, converter.skip_flag) == 0
        assert "broken_json 1" in capsys.readouterr().out


@pytest.mark.parametrize("converter", CONVERTERS, ids=IDS)
def test_a_missing_file_is_named(converter, tmp_path, capsys):
    err = _refused(converter, tmp_path, tmp_path / f"absent{converter.suffix}", capsys)
    assert "absent" in err and ("not found" in err or "no such" in err)


def test_decode_accepts_a_bom_and_names_the_encodings():
    assert decode(b"\xef\xbb\xbf{}", "f") == "{}"
    with pytest.raises(NotTextError, match="UTF-16 BE"):
        decode("{}".encode("utf-16-be") * 20, "f")
    with pytest.raises(
        NotTextError, match=r"f: not UTF-8: invalid byte 0xc4 at byte offset 3 \(line 2"
    ):
        decode(b"ok\n" + "你好".encode("gbk"), "f")


def test_regress_bank_help_prints_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        regress_bank.main(["--help"])
    assert (
        exit_info.value.code == 0
        and "usage: python -m tools.roleplay.regress_bank" in capsys.readouterr().out
    )
