"""The persona system prompt of a RoleBench role, from one place.

Everything that puts a role-play character in front of a model takes its system prompt from
`persona_prompt`: the RoleBench converter (training data), the regression bank runner
(`tools.roleplay.regress --role`), and the chat / web chat configs written here for `make chat` and
`make webchat`. Training and chatting then see the same words.

    python -m tools.roleplay.persona --role 孙悟空 \\
        --profiles ../shared/data/rolebench-zh/profiles-zh_desc.json
    python -m tools.roleplay.persona --role 孙悟空 --profiles FILE \\
        --write-chat-config runs/chat/孙悟空.yaml \\
        --model MODEL --template qwen3_nothink [--adapter ADAPTER]

The first form prints the prompt; the second writes a LLaMA-Factory inference YAML
(`llamafactory-cli chat|webchat|api FILE`) whose `default_system` is the prompt.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from tools.common.fileio import atomic_write_text
from tools.roleplay.persona_prompt import (
    PERSONA_TEMPLATES,
    ProfilesError,
    load_profiles,
    persona_prompt,
    role_description,
)

logger = logging.getLogger(__name__)


def chat_config_yaml(
    system_prompt: str, model: str, template: str, adapter: str | None, role: str
) -> str:
    """A LLaMA-Factory inference YAML (chat, webchat, api) that serves `model` with the persona."""

    def entry(key: str, value) -> str:
        return yaml.safe_dump({key: value}, allow_unicode=True, width=float("inf"), sort_keys=False)

    lines = [
        f"# Chat with the RoleBench persona {role}: written by `python -m "
        "tools.roleplay.persona`, run by",
        "# `make chat ROLE=...` / `make webchat ROLE=...` (llamafactory-cli "
        "chat|webchat|api THIS_FILE).",
        "# default_system is the RoleGPT-style persona prompt (DESIGN.md §11) with the "
        "role's profile;",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.persona",
        description="Print the persona system prompt of a RoleBench role, or write a LLaMA-Factory "
        "chat/webchat/api YAML that uses it as default_system.",
    )
    parser.add_argument(
        "--role", required=True, help="role name, a key of the profiles file (an identifier)"
    )
    parser.add_argument(
        "--profiles", required=True, help="RoleBench profiles JSON {role: description}"
    )
    parser.add_argument(
        "--language",
        default="zh",
        choices=sorted(PERSONA_TEMPLATES),
        help="prompt language (default: %(default)s)",
    )
    parser.add_argument(
        "--write-chat-config", metavar="OUT.yaml", help="write a LLaMA-Factory inference YAML here"
    )
    parser.add_argument(
        "--model",
        help="model_name_or_path for the chat config (base model when --adapter is given)",
    )
    parser.add_argument(
        "--template", help="LLaMA-Factory chat template, as in training (e.g. qwen3_nothink)"
    )
    parser.add_argument(
        "--adapter", help="LoRA adapter directory (adapter_name_or_path; finetuning_type lora)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.write_chat_config and not (args.model and args.template):
        parser.error("--write-chat-config needs --model and --template")
    if not args.write_chat_config and (args.model or args.template or args.adapter):
        parser.error("--model, --template and --adapter only go with --write-chat-config")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Print the role's persona prompt or write a chat config; 2 on bad profiles."""
    try:
        profiles = load_profiles(args.profiles)
        prompt = persona_prompt(
            args.role, role_description(profiles, args.role, args.profiles), args.language
        )
    except ProfilesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if args.write_chat_config:
        atomic_write_text(
            args.write_chat_config,
            chat_config_yaml(prompt, args.model, args.template, args.adapter, args.role),
        )
        logger.info("wrote %s", args.write_chat_config)
    else:
        print(prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
