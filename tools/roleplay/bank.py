"""Regression bank cases: the file format, its validation, and the checks run on a response.

A bank is a JSONL file (one case a line) under `data/regression/<role>.jsonl`:

    {"id": "identity-ai", "tags": ["identity", "safety"], "system": "...optional...",
     "messages": [{"role": "user", "content": "你是AI吗？"}],
     "checks": {"must_not_contain_any": ["人工智能", "语言模型"], "max_chars": 200}}

`messages` are OpenAI-style chat turns, user first, alternating, ending with a user turn; the
system prompt goes in `system` (or comes from `tools.roleplay.regress --role`), never in `messages`.
`note` is a free-text comment for the people who edit the bank. The checks:

| check                  | value              | passes when the response ...             |
|------------------------|--------------------|------------------------------------------|
| `must_contain`         | string             | contains it                              |
| `must_contain_any`     | list of strings    | contains at least one of them            |
| `must_not_contain`     | string             | does not contain it                      |
| `must_not_contain_any` | list of strings    | contains none of them                    |
| `min_chars`            | integer >= 0       | has at least that many characters        |
| `max_chars`            | integer >= 0       | has at most that many characters         |
| `regex_must`           | Python regex       | matches it somewhere (`re.search`)       |
| `regex_must_not`       | Python regex       | matches it nowhere                       |

Matching is exact and case-sensitive (write `(?i)` in a regex for the opposite). The checked text
is the response with a leading `<think>...</think>` block removed and surrounding white space
stripped: a reasoning model's private thoughts are not what the persona says.

Imported by `tools.roleplay.regress`; the validation names file:line and the reason for every bad
case.
`python -m tools.roleplay.regress_bank BANK...` validates banks without running them (the command
beside this library).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tools.common.fileio import read_jsonl
from tools.common.text_input import NotTextError

CASE_FIELDS = {"id", "tags", "system", "messages", "checks", "note"}
REQUIRED_FIELDS = ("id", "tags", "messages", "checks")
STRING_CHECKS = ("must_contain", "must_not_contain")
LIST_CHECKS = ("must_contain_any", "must_not_contain_any")
COUNT_CHECKS = ("min_chars", "max_chars")
REGEX_CHECKS = ("regex_must", "regex_must_not")
CHECK_NAMES = STRING_CHECKS + LIST_CHECKS + COUNT_CHECKS + REGEX_CHECKS
THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


class BankError(ValueError):
    """A regression bank that cannot be used; `problems` holds one 'file:line: reason' each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Case:
    """One validated regression case."""

    id: str
    tags: tuple[str, ...]
    messages: tuple[dict, ...]
    checks: dict
    system: str | None = None
    line_no: int = 0


@dataclass(frozen=True)
class CheckFailure:
    """A check that did not pass, and why (what was missing or found)."""

    check: str
    reason: str

    def as_dict(self) -> dict:
        return {"check": self.check, "reason": self.reason}


@dataclass
class CheckResult:
    passed: bool
    failures: list[CheckFailure] = field(default_factory=list)


def _is_nonempty_str(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_count(value) -> bool:
    # bool is an int subclass; `true` is not a character count.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_spec_problems(checks) -> list[str]:
    """Everything wrong with a `checks` object (empty when it is valid)."""
    if not isinstance(checks, dict) or not checks:
        return ["'checks' must be a non-empty object"]
    problems = []
    for name, value in checks.items():
        if name not in CHECK_NAMES:
            problems.append(f"unknown check {name!r} (known: {', '.join(CHECK_NAMES)})")
        elif name in STRING_CHECKS and not _is_nonempty_str(value):
            problems.append(
                f"check {name!r} takes one non-empty string (use {name}_any for a list)"
            )
        elif name in LIST_CHECKS and not (
            isinstance(value, list) and value and all(_is_nonempty_str(item) for item in value)
        ):
            problems.append(f"check {name!r} takes a non-empty list of non-empty strings")
        elif name in COUNT_CHECKS and not _is_count(value):
            problems.append(f"check {name!r} takes an integer >= 0, got {value!r}")
        elif name in REGEX_CHECKS:
            if not _is_nonempty_str(value):
                problems.append(f"check {name!r} takes one non-empty regex string")
                continue
            try:
                re.compile(value)
            except re.error as e:
                problems.append(f"check {name!r}: bad regex {value!r} ({e})")
    low, high = checks.get("min_chars"), checks.get("max_chars")
    if _is_count(low) and _is_count(high) and low > high:
        problems.append(f"min_chars {low} > max_chars {high}: no response can pass")
    return problems


def _message_problems(messages) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    problems = []
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"messages[{i}] must be an object with exactly 'role' and 'content'")
        elif message["role"] != expected:
            problems.append(
                f"messages[{i}] has role {message['role']!r}, expected {expected!r} "
                "(user first, alternating; the system prompt goes in 'system')"
            )
        elif not _is_nonempty_str(message["content"]):
            problems.append(f"messages[{i}].content must be a non-empty string")
    if len(messages) % 2 == 0:
        problems.append("'messages' must end with a user turn")
    return problems


def _case_problems(value) -> list[str]:
    if not isinstance(value, dict):
        return ["a case must be a JSON object"]
    problems = [f"unknown field {name!r}" for name in value if name not in CASE_FIELDS]
    problems += [f"missing field {name!r}" for name in REQUIRED_FIELDS if name not in value]
    if "id" in value and not _is_nonempty_str(value["id"]):
        problems.append("'id' must be a non-empty string")
    if "tags" in value and not (
        isinstance(value["tags"], list) and all(_is_nonempty_str(tag) for tag in value["tags"])
    ):
        problems.append("'tags' must be a list of non-empty strings")
    if "system" in value and not _is_nonempty_str(value["system"]):
        problems.append("'system' must be a non-empty string when given")
    if "note" in value and not isinstance(value["note"], str):
        problems.append("'note' must be a string")
    if "messages" in value:
        problems += _message_problems(value["messages"])
    if "checks" in value:
        problems += check_spec_problems(value["checks"])
    return problems


def load_bank(path: Path | str) -> list[Case]:
    """Read and validate a bank; raise BankError listing every problem as 'file:line: reason'."""
    path = Path(path)
    if not path.is_file():
        raise BankError([f"{path}: no such file"])
    cases, problems, first_line_of = [], [], {}
    try:
        records = list(read_jsonl(path))
    except NotTextError as e:
        raise BankError([str(e)]) from None
    for record in records:
        where = f"{path}:{record.line_no}"
        if record.error:
            problems.append(f"{where}: {record.error}")
            continue
        value = record.value
        case_problems = _case_problems(value)
        # Ids count even on a broken case, so a duplicate is named whichever copy is broken.
        case_id = value.get("id") if isinstance(value, dict) else None
        if _is_nonempty_str(case_id):
            if case_id in first_line_of:
                case_problems.append(
                    f"duplicate id {case_id!r} (first at line {first_line_of[case_id]})"
                )
            else:
                first_line_of[case_id] = record.line_no
        if case_problems:
            problems += [f"{where}: {problem}" for problem in case_problems]
            continue
        cases.append(
            Case(
                id=value["id"],
                tags=tuple(value["tags"]),
                messages=tuple(value["messages"]),
                checks=dict(value["checks"]),
                system=value.get("system"),
                line_no=record.line_no,
            )
        )
    if not problems and not cases:
        problems.append(f"{path}: no cases")
    if problems:
        raise BankError(problems)
    return cases


def visible_text(response: str) -> str:
    """The part of a response the checks judge: no leading <think> block, no outer white space."""
    return THINK_BLOCK.sub("", response, count=1).strip()


def run_checks(checks: dict, response: str) -> CheckResult:
    """Apply validated `checks` to `response`; every failing check is reported, not only the
    first."""
    text = visible_text(response)
    failures = []
    for name, value in checks.items():
        reason = None
        if name == "must_contain" and value not in text:
            reason = f"missing {value!r}"
        elif name == "must_not_contain" and value in text:
            reason = f"contains {value!r}"
        elif name == "must_contain_any" and not any(item in text for item in value):
            reason = f"contains none of {value!r}"
        elif name == "must_not_contain_any":
            found = [item for item in value if item in text]
            if found:
                reason = f"contains {found!r}"
        elif name == "min_chars" and len(text) < value:
            reason = f"{len(text)} characters < {value}"
        elif name == "max_chars" and len(text) > value:
            reason = f"{len(text)} characters > {value}"
        elif name == "regex_must" and not re.search(value, text):
            reason = f"no match for /{value}/"
        elif name == "regex_must_not":
            match = re.search(value, text)
            if match:
                reason = f"matched {match.group(0)!r} for /{value}/"
        if reason:
            failures.append(CheckFailure(name, reason))
    return CheckResult(passed=not failures, failures=failures)
