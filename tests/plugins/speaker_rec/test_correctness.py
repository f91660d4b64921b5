"""The strict and candidate-aware rules, case by case, the published code's rule beside them,
and the label helpers they rely on."""

import json
from pathlib import Path

import pytest

from plugins.speaker_rec import correctness
from plugins.speaker_rec.labels import (
    LabelKind,
    is_new_role,
    is_open_set,
    is_other,
    new_role_label,
)
from plugins.speaker_rec.series import Line, load_series
from repo_paths import REPO_ROOT

KNOWN = {"林晚", "林朗", "旁白"}
NO_NARRATOR = {"林晚", "林朗"}


def line(speaker, kind):
    return Line(0, 1, 0, 0.0, 1.0, 10.0, 11.0, "台词", speaker, speaker, kind)


# (truth, kind, answer, known, strict)
STRICT = [
    # a seeded character: only its own name
    ("林晚", LabelKind.NAMED, "林晚", KNOWN, True),
    ("林晚", LabelKind.NAMED, " 林晚 ", KNOWN, True),
    ("林晚", LabelKind.NAMED, "林朗", KNOWN, False),
    ("林晚", LabelKind.NAMED, "其他", KNOWN, False),
    ("林晚", LabelKind.NAMED, "新角色-1", KNOWN, False),
    # a named character outside the inventory (no seeds): declining to name is right, so is its name
    ("茶客", LabelKind.NAMED, "其他", KNOWN, True),
    ("茶客", LabelKind.NAMED, "新角色-3", KNOWN, True),
    ("茶客", LabelKind.NAMED, "茶客", KNOWN, True),
    ("茶客", LabelKind.NAMED, "林晚", KNOWN, False),
    # unnamed roles and several speakers: only "other" or a new role
    ("护士-1", LabelKind.UNNAMED, "其他", KNOWN, True),
    ("护士-1", LabelKind.UNNAMED, "New Character 2", KNOWN, True),
    ("护士-1", LabelKind.UNNAMED, "护士-1", KNOWN, False),
    ("护士-1", LabelKind.UNNAMED, "林晚", KNOWN, False),
    ("林晚|林朗", LabelKind.MULTI, "other", KNOWN, True),
    ("林晚|林朗", LabelKind.MULTI, "林晚", KNOWN, False),
    ("林晚|林朗", LabelKind.MULTI, "林晚|林朗", KNOWN, False),
    # 其他 / 未知 truths: open-set, any spelling of "other" is right
    ("未知", LabelKind.OTHER, "其他", KNOWN, True),
    ("其他", LabelKind.OTHER, "未知", KNOWN, True),
    ("其他", LabelKind.OTHER, "林晚", KNOWN, False),
    # narration: a name when the narrator has seeds, open-set otherwise
    ("旁白", LabelKind.NARRATION, "旁白", KNOWN, True),
    ("旁白", LabelKind.NARRATION, "其他", KNOWN, False),
    ("旁白", LabelKind.NARRATION, "其他", NO_NARRATOR, True),
    ("旁白", LabelKind.NARRATION, "旁白", NO_NARRATOR, True),
    ("旁白", LabelKind.NARRATION, "林晚", NO_NARRATOR, False),
    # without an inventory every named truth must be named
    ("茶客", LabelKind.NAMED, "其他", None, False),
    ("茶客", LabelKind.NAMED, "茶客", None, True),
    ("旁白", LabelKind.NARRATION, "其他", None, True),
]


@pytest.mark.parametrize("truth, kind, answer, known, expected", STRICT)
def test_strict(truth, kind, answer, known, expected):
    assert correctness.strict(answer, truth, kind, known) is expected


def test_candidate_aware_accepts_other_only_when_the_truth_is_not_offered():
    judge = correctness.candidate_aware
    assert judge("其他", "林晚", LabelKind.NAMED, KNOWN, ["林朗", "其他"])
    assert not judge("其他", "林晚", LabelKind.NAMED, KNOWN, ["林晚", "林朗", "其他"])
    assert not judge("新角色-1", "林晚", LabelKind.NAMED, KNOWN, ["林朗", "其他"])
    assert not judge("林朗", "林晚", LabelKind.NAMED, KNOWN, ["林朗", "其他"])
    assert judge("林晚", "林晚", LabelKind.NAMED, KNOWN, ["林晚", "其他"])
    # open-set truths: the same as strict
    assert judge("其他", "护士-1", LabelKind.UNNAMED, KNOWN, ["林晚", "其他"])
    assert not judge("林晚", "护士-1", LabelKind.UNNAMED, KNOWN, ["林晚", "其他"])


def test_lines_without_truth_are_never_right():
    for kind in (LabelKind.DELETED, LabelKind.UNLABELLED):
        assert not correctness.is_judged(kind)
        assert correctness.judge_answer(line("林晚", kind), "林晚", ["林晚"]) == {
            "strict": False,
            "candidate_aware": False,
        }
    assert not correctness.strict(None, "林晚", LabelKind.NAMED, KNOWN)


def test_judge_answer_applies_both_rules_and_the_inventory():
    verdict = correctness.judge_answer(
        line("林晚", LabelKind.NAMED), "其他", ["林朗", "其他"], "其他", KNOWN
    )
    assert verdict == {"strict": False, "candidate_aware": True}
    unseeded = line("茶客", LabelKind.NAMED)
    assert correctness.judge_answer(unseeded, "其他", ["林晚", "其他"], known=KNOWN)["strict"]
    assert not correctness.judge_answer(unseeded, "其他", ["林晚", "其他"])["strict"]
    # a custom "other" label counts as other
    assert correctness.judge_answer(line("护士-1", LabelKind.UNNAMED), "none", ["none"], "none")[
        "strict"
    ]


def test_label_helpers():
    assert new_role_label("zh", 3) == "新角色-3" and new_role_label("en", 3) == "New Character 3"
    assert is_new_role("新角色-12") and is_new_role("new character 2") and not is_new_role("护士-1")
    assert is_other("其他") and is_other(" Unknown ") and not is_other("旁白")
    assert is_open_set("新角色-1") and is_open_set("other") and not is_open_set("林晚")


# --- the published code's rule: equal, or neither is a known character ---------------------

PUBLISHED_KNOWN = {"林晚", "林朗", "旁白"}
# (answer, truth, right)
PUBLISHED = [
    ("林晚", "林晚", True),
    (" 林晚 ", "林晚", True),
    ("林朗", "林晚", False),
    ("其他", "林晚", False),
    ("新角色-1", "林晚", False),
    # neither known: any unknown answer is right, whatever its spelling
    ("其他", "护士-1", True),
    ("新角色-2", "护士-1", True),
    ("护士-1", "护士-1", True),
    ("茶客", "护士-1", True),
    ("其他", "林晚|林朗", True),
    ("其他", "茶客", True),
    # a known answer to an unknown truth is wrong
    ("林晚", "护士-1", False),
    ("林晚", "林晚|林朗", False),
    ("旁白", "其他", False),
    # narration counts as known
    ("旁白", "旁白", True),
    ("其他", "旁白", False),
    (None, "护士-1", False),
    ("其他", None, False),
]


@pytest.mark.parametrize("answer, truth, expected", PUBLISHED)
def test_published_rule(answer, truth, expected):
    assert correctness.published(answer, truth, PUBLISHED_KNOWN) is expected


def test_published_rule_differs_from_strict_where_the_inventories_differ():
    # strict: a character outside the seeded inventory is open-set, so "other" is right; the
    # published rule knows every face-recognised character, so naming it is required
    assert correctness.strict("其他", "林朗", LabelKind.NAMED, {"林晚"})
    assert not correctness.published("其他", "林朗", PUBLISHED_KNOWN)
    # strict never accepts a wrong name for an unnamed role; neither does published if it is known
    assert not correctness.strict("林晚", "护士-1", LabelKind.UNNAMED, KNOWN)
    assert correctness.published("茶客", "护士-1", PUBLISHED_KNOWN)


def test_labels_carry_what_the_published_rule_needs(demo_labels: Path):
    """labels.json lists the published known set and each line's overlap flag."""
    series = load_series("chun_jiang", REPO_ROOT / "data" / "demo")
    data = json.loads(demo_labels.read_text(encoding="utf-8"))
    assert data["published_known"] == sorted(series.published_known)
    assert "旁白" in data["published_known"]
    assert all(
        record["overlap"] is series.lines[record["index"]].overlap for record in data["lines"]
    )
    judged = [r for r in data["lines"] if r["truth"] is not None and r["source"] != "seed"]
    right = sum(
        correctness.published(r["label"], r["truth"], data["published_known"]) for r in judged
    )
    assert 0 < right < len(judged)
