"""The persona system prompt of a RoleBench role, from one place.

Everything that puts a role-play character in front of a model takes its system prompt from
`persona_prompt`: the RoleBench converter (training data), the regression bank runner
(`tools.regress --role`), and the chat / web chat configs written here for `make chat` and
`make webchat`. Training and chatting then see the same words.

    python -m tools.persona --role 孙悟空 --profiles ../shared/data/rolebench-zh/profiles-zh_desc.json
    python -m tools.persona --role 孙悟空 --profiles FILE --write-chat-config runs/chat/孙悟空.yaml \\
        --model MODEL --template qwen3_nothink [--adapter ADAPTER]

The first form prints the prompt; the second writes a LLaMA-Factory inference YAML
(`llamafactory-cli chat|webchat|api FILE`) whose `default_system` is the prompt.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from tools.fileio import atomic_write_text
from tools.text_input import NotTextError, read_text

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
        "You are {role}, and your character is described as: {description}. Now answer my questions in a way that "
        "shows your personality accurately! Imitate the speaking style of the character you have been given "
        "in every respect! Never reveal that you are an AI or a language model, and always remember that you "
        "have been given this one character only. Do not ramble, and do not be too formal or too polite."
    ),
}


# Without a profile description (RoleBench English ships none) the persona is built from the role
# name alone: the same prompt minus the description clause. Converters say so in their reports.
NAME_ONLY_TEMPLATES = {
    "zh": PERSONA_TEMPLATES["zh"].replace("，你的特征描述是：{description}", ""),
    "en": PERSONA_TEMPLATES["en"].replace(", and your character is described as: {description}", ""),
}


class ProfilesError(ValueError):
    """A profiles file that cannot be used; the message names the file and the reason."""


def persona_prompt(role: str, description: str | None, language: str = "zh") -> str:
    """Return the system prompt that makes a model play `role` described by `description`
    (a trailing full stop of the description is dropped: the prompt adds its own); with
    `description` None, the prompt built from the role name alone."""
    if language not in PERSONA_TEMPLATES:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(sorted(PERSONA_TEMPLATES))}")
    if not role.strip():
        raise ValueError("role must be non-empty")
    if description is None:
        return NAME_ONLY_TEMPLATES[language].format(role=role.strip())
    if not description.strip():
        raise ValueError("description must be non-empty (pass None for a persona from the name alone)")
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


def chat_config_yaml(system_prompt: str, model: str, template: str, adapter: str | None, role: str) -> str:
    """A LLaMA-Factory inference YAML (chat, webchat, api) that serves `model` with the persona."""

    def entry(key: str, value) -> str:
        return yaml.safe_dump({key: value}, allow_unicode=True, width=float("inf"), sort_keys=False)

    lines = [
        f"# Chat with the RoleBench persona {role}: written by `python -m tools.persona`, run by",
        "# `make chat ROLE=...` / `make webchat ROLE=...` (llamafactory-cli chat|webchat|api THIS_FILE).",
        "# default_system is the RoleGPT-style persona prompt (DESIGN.md §11) with the role's profile;",
        "# a request or UI that sends its own system message replaces it.",
        "",
        "### model",
        entry("model_name_or_path", model).rstrip(),
    ]
    if adapter:
        lines += [
            "",
            "### method",
            entry("adapter_name_or_path", adapter).rstrip(),
            entry("finetuning_type", "lora").rstrip(),
        ]
    lines += [
        "",
        "### chat",
        entry("template", template).rstrip(),
        entry("default_system", system_prompt).rstrip(),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.persona",
        description="Print the persona system prompt of a RoleBench role, or write a LLaMA-Factory "
        "chat/webchat/api YAML that uses it as default_system.",
    )
    parser.add_argument("--role", required=True, help="role name, a key of the profiles file (an identifier)")
    parser.add_argument("--profiles", required=True, help="RoleBench profiles JSON {role: description}")
    parser.add_argument(
        "--language", default="zh", choices=sorted(PERSONA_TEMPLATES), help="prompt language (default: %(default)s)"
    )
    parser.add_argument("--write-chat-config", metavar="OUT.yaml", help="write a LLaMA-Factory inference YAML here")
    parser.add_argument("--model", help="model_name_or_path for the chat config (base model when --adapter is given)")
    parser.add_argument("--template", help="LLaMA-Factory chat template, as in training (e.g. qwen3_nothink)")
    parser.add_argument("--adapter", help="LoRA adapter directory (adapter_name_or_path; finetuning_type lora)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.write_chat_config and not (args.model and args.template):
        parser.error("--write-chat-config needs --model and --template")
    if not args.write_chat_config and (args.model or args.template or args.adapter):
        parser.error("--model, --template and --adapter only go with --write-chat-config")
    try:
        profiles = load_profiles(args.profiles)
        prompt = persona_prompt(args.role, role_description(profiles, args.role, args.profiles), args.language)
    except ProfilesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.write_chat_config:
        atomic_write_text(
            args.write_chat_config, chat_config_yaml(prompt, args.model, args.template, args.adapter, args.role)
        )
        logger.info("wrote %s", args.write_chat_config)
    else:
        print(prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
