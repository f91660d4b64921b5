"""tools.roleplay.rolebench: persona prompt, address stripping, bad records, token limits, seeded
choice,
dataset_info merging; on hand-written fixtures and on RoleBench-zh from ../shared/data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT
from tools.roleplay.rolebench import address_pattern, main, strip_address

ASSETS = REPO_ROOT / "tests" / "assets" / "rolebench"
ROLEBENCH_ZH = REPO_ROOT.parent / "shared" / "data" / "rolebench-zh"
needs_rolebench = pytest.mark.skipif(
    not ROLEBENCH_ZH.is_dir(), reason=f"{ROLEBENCH_ZH} is absent (real data)"
)

PUBLISHED_PROMPT_LI_BAI = (
    "你是李白，你的特征描述是：为人爽朗大方，爱好饮酒作诗。现在请你回答我的一些问题，以准确展现你的人格特征！"
    "你的说话风格要全面模仿被赋予的人格角色！请不要暴露你是人工智能模型或者语言模型，你要时刻记住你只被赋予的"
    "一个人格角色。说话不要啰嗦，也不要太过于正式或礼貌。"
)


def run(tmp_path, *args, name="rb"):
    """Run the command; return (exit code, report dict or None, records or None)."""
    out = tmp_path / "out"
    code = main(["--out-dir", str(out), "--name", name, *map(str, args)])
    report_path, data_path = out / f"{name}.report.json", out / f"{name}.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    records = json.loads(data_path.read_text(encoding="utf-8")) if data_path.exists() else None
    return code, report, records


@pytest.mark.parametrize(
    "role, question, expected",
    [
        ("孙悟空", "孙悟空，你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "孙悟空,你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "孙悟空：你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "孙悟空: 你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "孙悟空！你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "孙悟空!你会七十二变吗？", "你会七十二变吗？"),
        ("孙悟空", "  孙悟空，你会七十二变吗？ ", "你会七十二变吗？"),
        ("孙悟空", "孙大圣，你会七十二变吗？", "你会七十二变吗？"),
        ("华妃", "华妃娘娘，您为何生气？", "您为何生气？"),
        ("皇帝", "皇上，您怎么看？", "您怎么看？"),
        ("皇帝", "皇帝陛下，您怎么看？", "您怎么看？"),
        ("张飞", "张将军，你怕不怕？", "你怕不怕？"),
        # the name in the middle, a name that is the start of a longer word, no address mark
        ("孙悟空", "你觉得孙悟空，厉害吗？", "你觉得孙悟空，厉害吗？"),
        ("李白", "李白菜怎么做才好吃？", "李白菜怎么做才好吃？"),
        ("李白", "李白菜，怎么做？", "李白菜，怎么做？"),
        ("李白", "李白写过哪些诗？", "李白写过哪些诗？"),
        ("孙悟空", "孙悟空！", "孙悟空！"),  # nothing but the address: kept whole
        ("孙悟空", "先生们，请坐。", "先生们，请坐。"),
    ],
)
def test_strip_address_zh(role, question, expected):
    assert strip_address(question, address_pattern(role, "zh")) == expected


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Sherlock, what do you make of this?", "What do you make of this?"),
        ("Sherlock Holmes: tell me about Moriarty.", "Tell me about Moriarty."),
        ("Holmes! Why the violin?", "Why the violin?"),
        ("Mr. Holmes, why the violin?", "Why the violin?"),
        ("Hey Sherlock, got a minute?", "Got a minute?"),
        ("sherlock, are you there?", "Are you there?"),
        (
            "Sherlockian fans, unite! Would you join them?",
            "Sherlockian fans, unite! Would you join them?",
        ),
        ("What would Sherlock, of all people, say?", "What would Sherlock, of all people, say?"),
        ("Sherlock!", "Sherlock!"),
    ],
)
def test_strip_address_en(question, expected):
    assert strip_address(question, address_pattern("Sherlock Holmes", "en")) == expected


def test_bad_records_are_counted_and_named_and_good_ones_converted(tmp_path):
    code, report, records = run(
        tmp_path,
        "--inputs",
        ASSETS / "records_zh.jsonl",
        "--profiles",
        ASSETS / "profiles_zh.json",
        "--skip-broken",
    )
    assert code == 0
    assert report["records_in"] == 11 and report["records_out"] == 3 and len(records) == 3
    assert report["dropped"] == {
        "broken_json": 1,
        "not_an_object": 1,
        "missing_field": 1,
        "wrong_type": 2,
        "empty_question": 1,
        "empty_answer": 1,
        "unknown_role": 1,
    }
    assert report["dropped_examples"]["wrong_type"] == ["records_zh.jsonl:5", "records_zh.jsonl:6"]
    assert report["dropped_examples"]["empty_answer"] == ["records_zh.jsonl:9"]  # line 8 is blank
    assert report["addresses_stripped"] == 2
    assert [r["instruction"] for r in records] == [
        "你最喜欢什么兵器？",
        "您怎么看月亮？",
        "你觉得李白，这个名字好听吗？",
    ]
    assert records[0]["output"] in ("俺老孙当然最爱金箍棒！", "金箍棒呗，还用问？")
    assert records[1]["system"] == PUBLISHED_PROMPT_LI_BAI
    assert records[1]["output"] == "月亮是我的老朋友。"  # a bare string counts as one reference
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["rb"]["file_name"] == "rb.json" and info["rb"]["columns"]["system"] == "system"


def test_english_records_get_the_english_persona_and_over_long_samples_are_skipped(tmp_path):
    from tools.roleplay.persona_prompt import persona_prompt
    from tools.roleplay.rolebench import load_tokenizer

    code, report, records = run(
        tmp_path,
        "--inputs",
        ASSETS / "records_en.jsonl",
        "--profiles",
        ASSETS / "profiles_en.json",
        "--lang",
        "en",
        "--max-tokens",
        180,
        "--max-source-tokens",
        0,
        "--format",
        "sharegpt",
    )
    assert code == 0
    # The limit falls between the short samples and the long one, measured with the same tokenizer.
    tokenizer = load_tokenizer(None)
    profile = json.loads((ASSETS / "profiles_en.json").read_text())["Sherlock Holmes"]
    system_tokens = len(tokenizer(persona_prompt("Sherlock Holmes", profile, "en"))["input_ids"])
    long_answer = json.loads((ASSETS / "records_en.jsonl").read_text().splitlines()[3])[
        "generated"
    ][0]
    assert system_tokens + 40 < 180 < system_tokens + len(tokenizer(long_answer)["input_ids"])
    assert report["dropped"] == {"too_long": 1}
    assert report["dropped_examples"]["too_long"] == ["records_en.jsonl:4"]
    assert [r["conversations"][0]["value"] for r in records] == [
        "What do you make of this footprint?",
        "Why do you play the violin at night?",
        "Sherlockian clubs meet every month. Would you visit one?",
    ]
    assert records[0]["system"].startswith(
        "You are Sherlock Holmes, and your character is described as: A consulting"
    )
    assert [turn["from"] for turn in records[0]["conversations"]] == ["human", "gpt"]


def test_source_limit_counts_system_plus_question_and_an_empty_result_writes_nothing(tmp_path):
    from tools.roleplay.persona_prompt import persona_prompt
    from tools.roleplay.rolebench import load_tokenizer

    tokenizer = load_tokenizer(None)
    profile = json.loads((ASSETS / "profiles_en.json").read_text())["Sherlock Holmes"]
    system_tokens = len(tokenizer(persona_prompt("Sherlock Holmes", profile, "en"))["input_ids"])
    questions = [
        "What do you make of this footprint?",
        "Why do you play the violin at night?",
        "Sherlockian clubs meet every month. Would you visit one?",
        "Describe your morning routine in detail.",
    ]
    sources = [system_tokens + len(tokenizer(q)["input_ids"]) for q in questions]
    limit = sorted(sources)[1]
    common = (
        "--inputs",
        ASSETS / "records_en.jsonl",
        "--profiles",
        ASSETS / "profiles_en.json",
        "--lang",
        "en",
        "--max-tokens",
        0,
    )
    code, report, records = run(tmp_path, *common, "--max-source-tokens", limit)
    assert code == 0
    assert report["dropped"] == {"too_long_source": sum(source > limit for source in sources)}
    assert len(records) == sum(source <= limit for source in sources)

    code, report, _ = run(tmp_path / "none", *common, "--max-source-tokens", 10)
    assert code == 2 and report is None and not (tmp_path / "none").exists()


def test_unknown_role_in_roles_exits_2_and_writes_nothing(tmp_path, capsys):
    code, report, _ = run(
        tmp_path,
        "--inputs",
        ASSETS / "records_zh.jsonl",
        "--profiles",
        ASSETS / "profiles_zh.json",
        "--roles",
        "猪八戒",
    )
    assert code == 2 and not (tmp_path / "out").exists()
    assert "profiles_zh.json: unknown roles ['猪八戒']" in capsys.readouterr().err


def test_broken_profiles_and_missing_inputs_exit_2_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "profiles.json"
    broken.write_text('{"李白": "诗人",\n', encoding="utf-8")
    assert run(tmp_path, "--inputs", ASSETS / "records_zh.jsonl", "--profiles", broken)[0] == 2
    assert "profiles.json: line 2: broken JSON" in capsys.readouterr().err
    assert (
        run(
            tmp_path, "--inputs", tmp_path / "nope.jsonl", "--profiles", ASSETS / "profiles_zh.json"
        )[0]
        == 2
    )
    assert "nope.jsonl: input file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_dataset_name_must_be_an_identifier(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run(
            tmp_path,
            "--inputs",
            ASSETS / "records_zh.jsonl",
            "--profiles",
            ASSETS / "profiles_zh.json",
            name="../escape",
        )
    assert exit_info.value.code == 2


def test_existing_dataset_info_entries_are_kept_and_a_broken_one_stops_the_run(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    other = {"other": {"file_name": "other.json"}}
    (out / "dataset_info.json").write_text(json.dumps(other), encoding="utf-8")
    args = (
        "--inputs",
        ASSETS / "records_zh.jsonl",
        "--profiles",
        ASSETS / "profiles_zh.json",
        "--max-tokens",
        0,
        "--skip-broken",
    )
    assert run(tmp_path, *args)[0] == 0
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"other", "rb"} and info["other"] == other["other"]

    (out / "dataset_info.json").write_text("{broken", encoding="utf-8")
    code, _, _ = run(tmp_path, *args, name="rb2")
    assert code == 2 and "dataset_info.json: broken JSON" in capsys.readouterr().err
    assert not (out / "rb2.json").exists() and (out / "dataset_info.json").read_text() == "{broken"


@needs_rolebench
def test_role_specific_zh_with_roles_filter_strips_every_direct_address(tmp_path):
    source = ROLEBENCH_ZH / "rolebench-zh_role_specific_train.jsonl"
    raw = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    wukong = [r for r in raw if r["role"] == "孙悟空"]
    code, report, records = run(
        tmp_path,
        "--inputs",
        source,
        "--profiles",
        ROLEBENCH_ZH / "profiles-zh_desc.json",
        "--roles",
        "孙悟空",
    )
    assert code == 0
    assert report["records_out"] == len(records) == len(wukong)
    assert report["dropped"] == {"role_not_selected": len(raw) - len(wukong)}
    addressed = [
        r for r in wukong if r["question"].strip().startswith(("孙悟空，", "孙悟空,", "孙悟空："))
    ]
    assert report["addresses_stripped"] >= len(addressed) > 300
    assert not any(r["instruction"].startswith("孙悟空") for r in records)
    assert all(r["system"].startswith("你是孙悟空，你的特征描述是：生性聪明") for r in records)
    assert [r["output"] for r in records] == [
        r["generated"][0] for r in wukong
    ]  # one reference each


@needs_rolebench
def test_k_references_are_distinct_seeded_and_independent_of_the_role_filter(tmp_path):
    source = ROLEBENCH_ZH / "rolebench-zh_general_test.jsonl"
    common = (
        "--inputs",
        source,
        "--profiles",
        ROLEBENCH_ZH / "profiles-zh_desc.json",
        "--k",
        3,
        "--max-tokens",
        0,
    )
    _, report, libai = run(tmp_path / "a", *common, "--roles", "李白")
    _, _, again = run(tmp_path / "b", *common, "--roles", "李白")
    _, _, other_seed = run(tmp_path / "c", *common, "--roles", "李白", "--seed", 1)
    _, _, all_roles = run(tmp_path / "d", *common)
    assert libai == again and libai != other_seed
    assert [r for r in all_roles if r["system"].startswith("你是李白，")] == libai

    raw = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    expected = sum(min(3, len(set(r["generated"]))) for r in raw if r["role"] == "李白")
    assert report["records_out"] == len(libai) == expected
    by_question = {}
    for r in libai:
        by_question.setdefault(r["instruction"], []).append(r["output"])
    assert all(len(answers) == len(set(answers)) for answers in by_question.values())


def test_help_names_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.roleplay.rolebench", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0 and proc.stdout.startswith(
        "usage: python -m tools.roleplay.rolebench"
    )


ROLEBENCH_ENG = Path("../shared/data/rolebench-eng/role_specific_test.jsonl")


@pytest.mark.skipif(
    not ROLEBENCH_ENG.is_file(), reason="../shared/data/rolebench-eng is absent (needs ../shared)"
)
def test_rolebench_english_converts_without_profiles_in_english_with_name_only_personas(
    tmp_path, capsys
):
    code, report, records = run(
        tmp_path,
        "--inputs",
        ROLEBENCH_ENG,
        "--max-tokens",
        0,
        "--max-source-tokens",
        0,
        "--roles",
        "Jack Sparrow",
        "Tom Ripley",
    )
    out = capsys.readouterr().out
    assert code == 0
    assert report["lang"] == "en" and report["lang_choice"] == "from the data"
    assert report["persona"] == {
        "Jack Sparrow": "name only (no description)",
        "Tom Ripley": "name only (no description)",
    }
    assert "persona built from the role name alone" in out
    assert len(report["known_roles"]) == 10
    assert records and all(
        r["system"].startswith(("You are Jack Sparrow. Now answer", "You are Tom Ripley. Now"))
        for r in records
    )
    assert not any(r["instruction"].startswith("Jack Sparrow,") for r in records)
    assert report["records_in"] == report["records_out"] + sum(report["dropped"].values())


def test_language_follows_the_data_and_a_disagreement_is_warned(tmp_path, caplog):
    code, report, records = run(
        tmp_path,
        "--inputs",
        ASSETS / "records_en.jsonl",
        "--profiles",
        ASSETS / "profiles_en.json",
        "--max-tokens",
        0,
        "--max-source-tokens",
        0,
    )
    assert (
        code == 0
        and report["lang"] == "en"
        and records[0]["system"].startswith("You are Sherlock Holmes")
    )
    code, report, _ = run(
        tmp_path / "zh",
        "--inputs",
        ASSETS / "records_en.jsonl",
        "--profiles",
        ASSETS / "profiles_en.json",
        "--lang",
        "zh",
        "--max-tokens",
        0,
        "--max-source-tokens",
        0,
    )
    assert (
        code == 0
        and report["lang"] == "zh"
        and "warning: the data look en" in report["lang_choice"]
    )
    assert "the data look en but the persona language is zh" in caplog.text


def test_unknown_roles_without_profiles_list_the_roles_of_the_data(tmp_path, capsys):
    code, _, _ = run(
        tmp_path, "--inputs", ASSETS / "records_en.jsonl", "--roles", "Watson", "--skip-broken"
    )
    assert (
        code == 2
        and "unknown roles ['Watson']; known roles: ['Sherlock Holmes']" in capsys.readouterr().err
    )
