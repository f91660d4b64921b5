"""The two rules that say whether a speaker answer is right; prepare, traces, eval, report and
the reward all judge through this module.

A ground truth is *closed* when it names a character the system can name: one in `known`, the
character inventory (for prepare, the characters that have seed lines). Everything else is
*open-set*: an unnamed role (`X-n`), several speakers (`A|B`), `其他`/`未知`, narration unless
narration itself is in `known`, and a named character outside `known` — nothing could have
named it, so declining to name is right (the upstream release judged such lines the same way).

- strict: a closed truth is right only when the answer is its name; an open-set truth is right
  when the answer is "other" or a new-role label, or (named and narration truths) its name.
- candidate-aware: as strict, and when the truth is not among the candidates "other" is right.

Deleted and unlabelled lines have no truth and are never judged.

Beside them, `published` is the rule the upstream release's own code judges by, so that our
figures compare directly with its published ones (it is not one of our rules).
"""

from collections.abc import Collection

from plugins.speaker_rec.labels import LabelKind, is_open_set, is_other
from plugins.speaker_rec.series import Line

ALWAYS_OPEN = {LabelKind.UNNAMED, LabelKind.MULTI, LabelKind.OTHER}
NOT_JUDGED = {LabelKind.DELETED, LabelKind.UNLABELLED}


def is_judged(kind: LabelKind) -> bool:
    """Whether a line of this label kind has a truth to judge against."""
    return kind not in NOT_JUDGED


def is_open_truth(speaker: str, kind: LabelKind, known: Collection[str] | None) -> bool:
    """Whether the truth is open-set; `known=None` treats every named truth as closed."""
    if kind in ALWAYS_OPEN:
        return True
    if kind is LabelKind.NARRATION:
        return known is None or speaker not in known
    return known is not None and speaker not in known


def strict(
    answer: str | None, speaker: str, kind: LabelKind, known: Collection[str] | None
) -> bool:
    """The strict rule for one answer (None: no answer, always wrong)."""
    if answer is None or not is_judged(kind):
        return False
    answer = answer.strip()
    if is_open_truth(speaker, kind, known):
        return is_open_set(answer) or (kind not in ALWAYS_OPEN and answer == speaker)
    return answer == speaker


def candidate_aware(
    answer: str | None,
    speaker: str,
    kind: LabelKind,
    known: Collection[str] | None,
    candidates: Collection[str],
) -> bool:
    """The candidate-aware rule: strict, or "other" when the truth is not a candidate."""
    if strict(answer, speaker, kind, known):
        return True
    return answer is not None and is_judged(kind) and speaker not in candidates and is_other(answer)


def judge_answer(
    line: Line,
    answer: str | None,
    candidates: Collection[str],
    other: str | None = None,
    known: Collection[str] | None = None,
) -> dict[str, bool]:
    """Both rules for the answer to `line`: {"strict": ..., "candidate_aware": ...}.

    `other` is the series' "other" label, accepted besides the usual spellings; pass `known`
    (labels.json's `characters`) so that unseeded characters are judged as open-set."""
    if answer is not None and other is not None and answer.strip() == other:
        answer = "other"
    if not is_judged(line.kind):
        return {"strict": False, "candidate_aware": False}
    return {
        "strict": strict(answer, line.speaker, line.kind, known),
        "candidate_aware": candidate_aware(answer, line.speaker, line.kind, known, candidates),
    }


def published(answer: str | None, truth: str | None, known: Collection[str]) -> bool:
    """The published code's rule: right iff the answer equals the truth, or neither is a known
    character. `known` is `Series.published_known` (face_info's role_name_variants keys seen as a
    top-1 face name, plus truths containing 旁白), so "other", a new-role label and an unnamed
    role all count alike. None (no answer) and a missing truth are never right."""
    if answer is None or truth is None:
        return False
    answer = answer.strip()
    return answer == truth or (answer not in known and truth not in known)
