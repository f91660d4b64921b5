"""tools.roleplay.persona: the RoleBench persona prompt, the profiles loader, and the chat config
that
LLaMA-Factory's own parser and template accept."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.roleplay.persona import chat_config_yaml
from tools.roleplay.persona_prompt import (
    ProfilesError,
    load_profiles,
    persona_prompt,
    role_description,
)

PROFILES = Path("../shared/data/rolebench-zh/profiles-zh_desc.json")
ROLEBENCH_ROLES = {"皇帝", "孙悟空", "华妃", "张飞", "李白"}


@pytest.fixture
def profiles_file(tmp_path) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(
        json.dumps({"李白": "为人爽朗大方，乐于交友，爱好饮酒作诗"}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def test_the_chinese_prompt_is_the_rolegpt_text_word_for_word():
    assert persona_prompt("李白", " 为人爽朗大方，乐于交友，爱好饮酒作诗。\n") == (
        "你是李白，你的特征描述是：为人爽朗大方，乐于交友，爱好饮酒作诗。现在请你回答我的一些问题，以准确展现你的人格特征！"
        "你的说话风格要全面模仿被赋予的人格角色！请不要暴露你是人工智能模型或者语言模型，你要时刻记住你只被赋予的一个人格角色。"
        "说话不要啰嗦，也不要太过于正式或礼貌。"
    )


def test_the_english_prompt_names_role_and_description_and_bad_arguments_are_refused():
    prompt = persona_prompt("Li Bai", "loves wine and poetry.", language="en")
    assert prompt.startswith(
        "You are Li Bai, and your character is described as: loves wine and poetry. Now"
    )
    assert "language model" in prompt
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        persona_prompt("李白", "x", language="fr")
    with pytest.raises(ValueError, match="non-empty"):
        persona_prompt("李白", "  ")


def test_the_rolebench_profiles_load(repo_root):
    path = repo_root / PROFILES
    if not path.is_file():
        pytest.skip(f"RoleBench profiles not found at {path} (shared data absent)")
    profiles = load_profiles(path)
    assert set(profiles) == ROLEBENCH_ROLES
    assert "俺老孙" in persona_prompt("孙悟空", profiles["孙悟空"])


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{\n oops", "line 2: broken JSON"),
        ("[]", "expected a non-empty JSON object"),
        ('{"李白": ""}', "role '李白': description must be a non-empty string"),
        ('{"李白": 3}', "role '李白': description must be a non-empty string"),
    ],
)
def test_bad_profiles_are_refused_naming_file_and_reason(tmp_path, text, reason):
    path = tmp_path / "profiles.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfilesError) as caught:
        load_profiles(path)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value)


def test_an_unknown_role_lists_the_known_ones(profiles_file):
    with pytest.raises(ProfilesError, match="unknown role '孙悟空'; known roles: 李白"):
        role_description(load_profiles(profiles_file), "孙悟空", profiles_file)


def _run_cli(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    return subprocess.run(
        [sys.executable, "-m", "tools.roleplay.persona", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_the_prompt_refuses_an_unknown_role_and_needs_model_for_a_config(
    repo_root, profiles_file, tmp_path
):
    proc = _run_cli(repo_root, "--role", "李白", "--profiles", str(profiles_file))
    assert proc.returncode == 0 and proc.stdout.strip() == persona_prompt(
        "李白", "为人爽朗大方，乐于交友，爱好饮酒作诗"
    )
    proc = _run_cli(repo_root, "--role", "杜甫", "--profiles", str(profiles_file))
    assert proc.returncode == 2 and "unknown role '杜甫'; known roles: 李白" in proc.stderr
    out = tmp_path / "chat.yaml"
    proc = _run_cli(
        repo_root,
        "--role",
        "李白",
        "--profiles",
        str(profiles_file),
        "--write-chat-config",
        str(out),
    )
    assert proc.returncode == 2 and "needs --model and --template" in proc.stderr
    assert not out.exists()


def _parse_with_llamafactory(config: Path, monkeypatch):
    """Parse `config` exactly as `llamafactory-cli chat|webchat|api CONFIG` does (argv after the
    command)."""
    from llamafactory.hparams import get_infer_args

    monkeypatch.setattr(sys, "argv", ["llamafactory-cli", str(config)])
    return get_infer_args()


@pytest.mark.parametrize("with_adapter", [True, False])
def test_the_chat_config_parses_with_llamafactorys_infer_args(
    repo_root, profiles_file, tiny_model, tmp_path, monkeypatch, with_adapter
):
    out = tmp_path / "chat" / "李白.yaml"
    adapter = ["--adapter", str(tmp_path / "adapter")] if with_adapter else []
    proc = _run_cli(
        repo_root,
        "--role",
        "李白",
        "--profiles",
        str(profiles_file),
        "--write-chat-config",
        str(out),
        "--model",
        str(tiny_model),
        "--template",
        "qwen3_nothink",
        *adapter,
    )
    assert proc.returncode == 0, proc.stderr
    model_args, data_args, finetuning_args, _ = _parse_with_llamafactory(out, monkeypatch)
    assert model_args.model_name_or_path == str(tiny_model)
    assert model_args.adapter_name_or_path == (
        [str(tmp_path / "adapter")] if with_adapter else None
    )
    assert finetuning_args.finetuning_type == "lora"
    assert data_args.template == "qwen3_nothink"
    assert data_args.default_system == persona_prompt(
        "李白", "为人爽朗大方，乐于交友，爱好饮酒作诗"
    )


def test_default_system_reaches_the_prompt_llamafactory_renders(
    profiles_file, tiny_model, tmp_path, monkeypatch
):
    # chat, webchat and api all render through template.encode_oneturn with system=None unless the
    # user sends one, so the persona prompt must show up in the rendered prompt.
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    prompt = persona_prompt("李白", load_profiles(profiles_file)["李白"])
    config = tmp_path / "chat.yaml"
    config.write_text(
        chat_config_yaml(prompt, str(tiny_model), "qwen3_nothink", None, "李白"), encoding="utf-8"
    )
    _, data_args, _, _ = _parse_with_llamafactory(config, monkeypatch)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    original = TEMPLATES["qwen3_nothink"].default_system
    try:  # LLaMA-Factory sets default_system on its shared template object; undo it for other tests
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        ids, _ = template.encode_oneturn(
            tokenizer, [{"role": "user", "content": "你好"}, {"role": "assistant", "content": ""}]
        )
    finally:
        TEMPLATES["qwen3_nothink"].default_system = original
    rendered = tokenizer.decode(ids)
    assert rendered.startswith(
        f"<|im_start|>system\n{prompt}<|im_end|>\n<|im_start|>user\n你好<|im_end|>"
    )
