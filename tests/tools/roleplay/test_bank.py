"""The regression-bank format: every check pinned by hand-built responses, and bank validation."""

import json
from pathlib import Path

import pytest

from tools.roleplay.bank import CHECK_NAMES, BankError, load_bank, run_checks, visible_text

SHIPPED_BANK = Path("data/regression/孙悟空.jsonl")
ROLEBENCH = Path("../shared/data/rolebench-zh")


def _failures(checks: dict, response: str) -> list[tuple[str, str]]:
    result = run_checks(checks, response)
    assert result.passed == (not result.failures)
    return [(failure.check, failure.reason) for failure in result.failures]


@pytest.mark.parametrize(
    "checks, passing, failing, reason",
    [
        ({"must_contain": "俺老孙"}, "俺老孙来也！", "我来也！", "missing '俺老孙'"),
        (
            {"must_contain_any": ["金箍棒", "定海神针"]},
            "吃俺一棒定海神针",
            "吃俺一拳",
            "contains none of ['金箍棒', '定海神针']",
        ),
        ({"must_not_contain": "人工智能"}, "俺是齐天大圣", "我是人工智能", "contains '人工智能'"),
        (
            {"must_not_contain_any": ["语言模型", "AI", "助手"]},
            "俺老孙",
            "我是AI助手",
            "contains ['AI', '助手']",
        ),
        ({"min_chars": 5}, "一二三四五", "一二三四", "4 characters < 5"),
        ({"max_chars": 5}, "一二三四五", "一二三四五六", "6 characters > 5"),
        (
            {"regex_must": r"一万三千五百斤|13500"},
            "重一万三千五百斤",
            "重得很",
            "no match for /一万三千五百斤|13500/",
        ),
        (
            {"regex_must_not": r"\d+\s*克"},
            "少许就够",
            "放 30 克",
            "matched '30 克' for /\\d+\\s*克/",
        ),
    ],
)
def test_each_check_passes_and_fails_on_hand_built_responses(checks, passing, failing, reason):
    assert _failures(checks, passing) == []
    assert _failures(checks, failing) == [(next(iter(checks)), reason)]


def test_all_check_names_are_covered_by_the_table_above():
    assert set(CHECK_NAMES) == {
        "must_contain",
        "must_contain_any",
        "must_not_contain",
        "must_not_contain_any",
        "min_chars",
        "max_chars",
        "regex_must",
        "regex_must_not",
    }


def test_every_failing_check_is_reported_not_only_the_first():
    checks = {"must_contain": "俺老孙", "max_chars": 3, "must_not_contain": "AI"}
    assert _failures(checks, "我是AI助手") == [
        ("must_contain", "missing '俺老孙'"),
        ("max_chars", "6 characters > 3"),
        ("must_not_contain", "contains 'AI'"),
    ]


def test_matching_is_case_sensitive_unless_the_regex_says_otherwise():
    assert _failures({"must_not_contain": "AI"}, "said ai") == []
    assert _failures({"regex_must_not": "(?i)qwen"}, "I am QWEN") == [
        ("regex_must_not", "matched 'QWEN' for /(?i)qwen/")
    ]


def test_a_leading_think_block_and_outer_white_space_are_not_judged():
    response = "<think>\n我其实是语言模型\n</think>\n\n  俺老孙来也  \n"
    assert visible_text(response) == "俺老孙来也"
    assert _failures({"must_not_contain": "语言模型", "max_chars": 5}, response) == []
    # Only a leading block is thoughts; a later one is part of what the persona says.
    assert _failures({"must_not_contain": "模型"}, "好<think>模型</think>") == [
        ("must_not_contain", "contains '模型'")
    ]


def _write_bank(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "bank.jsonl"
    path.write_text(
        "\n".join(
            line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
            for line in lines
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def _case(case_id="c1", **fields):
    return {
        "id": case_id,
        "tags": ["persona"],
        "messages": [{"role": "user", "content": "你是谁？"}],
        "checks": {"must_contain": "俺"},
        **fields,
    }


def test_a_valid_bank_loads_with_its_fields(tmp_path):
    path = _write_bank(tmp_path, [_case(system="你是孙悟空"), "", _case("c2", note="why")])
    cases = load_bank(path)
    assert [(case.id, case.line_no, case.system) for case in cases] == [
        ("c1", 1, "你是孙悟空"),
        ("c2", 3, None),
    ]
    assert cases[0].messages == ({"role": "user", "content": "你是谁？"},)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{broken", "broken JSON"),
        ("[1, 2]", "a case must be a JSON object"),
        (_case(extra=1), "unknown field 'extra'"),
        ({k: v for k, v in _case().items() if k != "checks"}, "missing field 'checks'"),
        (_case(id=""), "'id' must be a non-empty string"),
        (_case(tags="persona"), "'tags' must be a list of non-empty strings"),
        (_case(system=""), "'system' must be a non-empty string when given"),
        (_case(checks={"must_contian": "俺"}), "unknown check 'must_contian'"),
        (_case(checks={}), "'checks' must be a non-empty object"),
        (_case(checks={"must_contain": ["俺"]}), "check 'must_contain' takes one non-empty string"),
        (
            _case(checks={"must_not_contain_any": "AI"}),
            "check 'must_not_contain_any' takes a non-empty list",
        ),
        (_case(checks={"must_contain_any": []}), "check 'must_contain_any' takes a non-empty list"),
        (_case(checks={"min_chars": -1}), "check 'min_chars' takes an integer >= 0, got -1"),
        (_case(checks={"max_chars": True}), "check 'max_chars' takes an integer >= 0, got True"),
        (_case(checks={"max_chars": "10"}), "check 'max_chars' takes an integer >= 0, got '10'"),
        (_case(checks={"min_chars": 9, "max_chars": 3}), "min_chars 9 > max_chars 3"),
        (_case(checks={"regex_must": "(俺"}), "check 'regex_must': bad regex '(俺'"),
        (
            _case(checks={"regex_must_not": 3}),
            "check 'regex_must_not' takes one non-empty regex string",
        ),
        (_case(messages=[]), "'messages' must be a non-empty list"),
        (
            _case(messages=[{"role": "system", "content": "x"}]),
            "messages[0] has role 'system', expected 'user'",
        ),
        (
            _case(
                messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
            ),
            "'messages' must end with a user turn",
        ),
        (
            _case(messages=[{"role": "user", "content": "x", "name": "n"}]),
            "messages[0] must be an object with exactly 'role' and 'content'",
        ),
        (
            _case(messages=[{"role": "user", "content": " "}]),
            "messages[0].content must be a non-empty string",
        ),
    ],
)
def test_a_bad_case_is_refused_naming_file_line_and_reason(tmp_path, line, reason):
    path = _write_bank(tmp_path, [_case("ok"), line])
    with pytest.raises(BankError) as caught:
        load_bank(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    problem = caught.value.problems[0]
    assert problem.startswith(f"{path}:2: "), problem
    assert reason in problem


def test_duplicate_ids_are_named_with_both_lines_and_all_problems_are_listed(tmp_path):
    path = _write_bank(tmp_path, [_case("a"), _case("b"), _case("a", checks={"nope": 1})])
    with pytest.raises(BankError) as caught:
        load_bank(path)
    assert caught.value.problems == [
        f"{path}:3: unknown check 'nope' (known: {', '.join(CHECK_NAMES)})",
        f"{path}:3: duplicate id 'a' (first at line 1)",
    ]


def test_an_empty_or_missing_bank_is_refused(tmp_path):
    empty = _write_bank(tmp_path, [""])
    with pytest.raises(BankError, match="no cases"):
        load_bank(empty)
    with pytest.raises(BankError, match="no such file"):
        load_bank(tmp_path / "absent.jsonl")


def test_the_shipped_bank_is_valid_and_tags_what_it_promises(repo_root):
    cases = load_bank(repo_root / SHIPPED_BANK)
    assert len(cases) >= 12
    tags = {tag for case in cases for tag in case.tags}
    assert {"persona", "style", "safety", "identity"} <= tags
    # The persona must never call itself an AI model: the identity cases forbid it.
    identity = [case for case in cases if "identity" in case.tags]
    assert all(
        "must_not_contain_any" in case.checks or "regex_must_not" in case.checks
        for case in identity
    )


def test_the_shipped_bank_prompts_are_not_in_rolebench(repo_root):
    # The original project's regression prompts were in its training data; ours must not be.
    folder = repo_root / ROLEBENCH
    if not folder.is_dir():
        pytest.skip(f"RoleBench not found at {folder} (shared data absent)")
    questions = set()
    for path in folder.glob("rolebench-zh_*.jsonl"):
        with open(path, encoding="utf-8") as f:
            questions.update(json.loads(line)["question"].strip() for line in f if line.strip())
    assert len(questions) > 1000
    prompts = [
        m["content"]
        for case in load_bank(repo_root / SHIPPED_BANK)
        for m in case.messages
        if m["role"] == "user"
    ]
    assert [prompt for prompt in prompts if prompt.strip() in questions] == []
