"""What a ground-truth speaker label means.

DramaSR-LRM labels are free strings with conventions: a character name; `X-n` for an
unnamed role; `A|B` or `A/B` for several speakers; `旁白` narration; `其他`/`未知` for
other or unknown; `!删除!<label>!` for a deleted line. The series loader, the correctness
rules and the reward all read labels through this module, so the conventions live in one place.
"""

import enum
import re

DELETED = re.compile(r"^!(?:删除|deleted)!(.*)!$", re.IGNORECASE)
UNNAMED = re.compile(r"^.+-\d+$")
MULTI_SEPARATORS = re.compile(r"[|/]")
NARRATION_LABEL = "旁白"
OTHER_LABEL = "其他"
NARRATION = {NARRATION_LABEL, "narration", "narrator"}
OTHER = {OTHER_LABEL, "未知", "other", "unknown"}
# Voices that prepare finds recurring but cannot name; the English form is the upstream one.
NEW_ROLE_FORMAT = {"zh": "新角色-{n}", "en": "New Character {n}"}
NEW_ROLE = re.compile(r"^(?:新角色-|new character )\d+$", re.IGNORECASE)


class LabelKind(enum.StrEnum):
    """Kind of a ground-truth label; `str` so it serialises as its value."""

    NAMED = "named"
    UNNAMED = "unnamed"
    MULTI = "multi"
    NARRATION = "narration"
    OTHER = "other"
    DELETED = "deleted"
    UNLABELLED = "unlabelled"


def other_label(language: str) -> str:
    """The answer that means "none of the named candidates" in a series' language."""
    return OTHER_LABEL if language == "zh" else "other"


def new_role_label(language: str, number: int) -> str:
    """Name of the `number`-th unnamed recurring voice (1-based) in a series' language."""
    return NEW_ROLE_FORMAT["zh" if language == "zh" else "en"].format(n=number)


def is_new_role(answer: str) -> bool:
    """Whether an answer is a new-role label (any language)."""
    return bool(NEW_ROLE.match(answer.strip()))


def is_other(answer: str) -> bool:
    """Whether an answer means "none of the named characters" (其他/未知/other/unknown)."""
    return answer.strip().lower() in OTHER


def is_open_set(answer: str) -> bool:
    """Whether an answer declines to name a known character: "other" or a new role."""
    return is_other(answer) or is_new_role(answer)


def strip_deleted(label: str) -> tuple[str, bool]:
    """Return (label without the deletion marker, whether it was deleted)."""
    match = DELETED.match(label)
    return (match.group(1), True) if match else (label, False)


def classify(label: str | None) -> LabelKind:
    """Kind of a raw label as it appears in subtitle data."""
    if label is None or not label.strip():
        return LabelKind.UNLABELLED
    if DELETED.match(label):
        return LabelKind.DELETED
    if MULTI_SEPARATORS.search(label):
        return LabelKind.MULTI
    lowered = label.strip().lower()
    if lowered in NARRATION:
        return LabelKind.NARRATION
    if lowered in OTHER:
        return LabelKind.OTHER
    if UNNAMED.match(label):
        return LabelKind.UNNAMED
    return LabelKind.NAMED


def canonical(label: str, name_mapping: dict[str, str | None]) -> str:
    """Map each speaker in `label` through `name_mapping` (relation.json's
    character_name_mapping); names mapped to null stay as they are, since null marks
    a label that is not a character (narration, other) rather than a rename."""
    parts = MULTI_SEPARATORS.split(label)
    if len(parts) == 1:
        return name_mapping.get(label) or label
    separator = MULTI_SEPARATORS.search(label).group(0)
    return separator.join(name_mapping.get(part) or part for part in parts)
