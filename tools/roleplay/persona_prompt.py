"""The persona system prompt of a RoleBench role and the profiles it comes from, in one
place: used by the persona command, rolebench and regress.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tools.common.text_input import NotTextError, read_text

logger = logging.getLogger(__name__)


# RoleGPT-style prompt used by RoleBench (DESIGN.md §11), kept word for word: models trained
# on RoleBench data saw exactly this text. The English one is our translation of it.
PERSONA_TEMPLATES = {
    "zh": (
        "你是{role}，你的特征描述是：{description}。现在请你回答我的一些问题，以准确展现你的人格特征！"
        "你的说话风格要全面模仿被赋予的人格角色！请不要暴露你是人工智能模型或者语言模型，"
        "你要时刻记住你只被赋予的一个人格角色。说话不要啰嗦，也不要太过于正式或礼貌。"
    ),
    "en": (
        "You are {role}, and your character is described as: {description}. Now answer "
        "my questions in a way that "
        "shows your personality accurately! Imitate the speaking style of the character "
        "you have been given "
        "in every respect! Never reveal that you are an AI or a language model, and "
        "always remember that you "
        "have been given this one character only. Do not ramble, and do not be too "
        "formal or too polite."
    ),
}


# Without a profile description (RoleBench English ships none) the persona is built from the role
# name alone: the same prompt minus the description clause. Converters say so in their reports.
NAME_ONLY_TEMPLATES = {
    "zh": PERSONA_TEMPLATES["zh"].replace("，你的特征描述是：{description}", ""),
    "en": PERSONA_TEMPLATES["en"].replace(
        ", and your character is described as: {description}", ""
    ),
}


class ProfilesError(ValueError):
    """A profiles file that cannot be used; the message names the file and the reason."""


def persona_prompt(role: str, description: str | None, language: str = "zh") -> str:
    """Return the system prompt that makes a model play `role` described by `description`
    (a trailing full stop of the description is dropped: the prompt adds its own); with
    `description` None, the prompt built from the role name alone."""
    if language not in PERSONA_TEMPLATES:
        raise ValueError(
            f"unknown language {language!r}; known: {', '.join(sorted(PERSONA_TEMPLATES))}"
        )
    if not role.strip():
        raise ValueError("role must be non-empty")
    if description is None:
        return NAME_ONLY_TEMPLATES[language].format(role=role.strip())
    if not description.strip():
        raise ValueError(
            "description must be non-empty (pass None for a persona from the name alone)"
        )
    # The template ends the description with its own full stop; a second one would double it.
    description = description.strip().rstrip("。.")
    return PERSONA_TEMPLATES[language].format(role=role.strip(), description=description)


def load_profiles(path: Path | str) -> dict[str, str]:
    """Read a RoleBench profiles file (`{role: description}`, e.g. profiles-zh_desc.json).

    Raises ProfilesError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except NotTextError as e:
        raise ProfilesError(str(e)) from None
    except json.JSONDecodeError as e:
        raise ProfilesError(f"{path}: line {e.lineno}: broken JSON ({e.msg})") from None
    if not isinstance(data, dict) or not data:
        raise ProfilesError(f"{path}: expected a non-empty JSON object {{role: description}}")
    for role, description in data.items():
        if not isinstance(description, str) or not description.strip():
            raise ProfilesError(f"{path}: role {role!r}: description must be a non-empty string")
    return data


def role_description(profiles: dict[str, str], role: str, source: Path | str = "profiles") -> str:
    """The description of `role`; ProfilesError listing the known roles when it is absent."""
    if role not in profiles:
        raise ProfilesError(f"{source}: unknown role {role!r}; known roles: {', '.join(profiles)}")
    return profiles[role]
