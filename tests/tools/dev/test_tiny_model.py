"""Tests for tools/dev/tiny_model.py: the model loads, is deterministic, and speaks Qwen3's chat
format."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tools.common.tiny_model_files import STAMP_NAME, read_stamp
from tools.dev import tiny_model
from tools.dev.tiny_model import TinyModelSettings, build_tiny_model

# Smaller than the default so the builds in these tests stay cheap; the embedding dominates anyway.
SMALL = TinyModelSettings(hidden_size=32, intermediate_size=64)


def test_loads_with_auto_classes_and_forward_gives_finite_logits(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    num_parameters = sum(p.numel() for p in model.parameters())
    assert 5_000_000 <= num_parameters <= 20_000_000
    assert num_parameters == read_stamp(tiny_model)["num_parameters"]

    batch = tokenizer(["你好，今天天气怎么样？ Hello there!"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_vocab_covers_tokenizer_and_generation_stops_at_im_end_or_endoftext(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert len(tokenizer) <= model.config.vocab_size == 151936
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tokenizer.eos_token_id == im_end
    assert tokenizer.pad_token_id == endoftext
    assert model.generation_config.eos_token_id == [im_end, endoftext]
    assert model.generation_config.pad_token_id == endoftext


def test_same_seed_gives_identical_weights_and_other_seed_differs(tmp_path):
    first = build_tiny_model(tmp_path / "a", seed=7, settings=SMALL)
    second = build_tiny_model(tmp_path / "b", seed=7, settings=SMALL)
    other = build_tiny_model(tmp_path / "c", seed=8, settings=SMALL)
    weights = [(path / "model.safetensors").read_bytes() for path in (first, second, other)]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]


def test_rebuild_skipped_when_stamp_matches_and_forced_or_changed_settings_rebuild(tmp_path):
    out = build_tiny_model(tmp_path / "m", seed=0, settings=SMALL)
    weights = out / "model.safetensors"
    built_at = weights.stat().st_mtime_ns

    build_tiny_model(out, seed=0, settings=SMALL)
    assert weights.stat().st_mtime_ns == built_at

    build_tiny_model(out, seed=0, settings=SMALL, force=True)
    assert weights.stat().st_mtime_ns != built_at

    build_tiny_model(out, seed=1, settings=SMALL)
    assert read_stamp(out)["seed"] == 1
    # Nothing of the temporary build directories is left beside the model.
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_refuses_to_replace_a_directory_it_did_not_build(tmp_path):
    foreign = tmp_path / "someone-elses-model"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    with pytest.raises(FileExistsError):
        build_tiny_model(foreign, settings=SMALL)
    assert not (foreign / STAMP_NAME).exists()


def test_the_command_refuses_with_a_message_not_a_traceback(tmp_path, capsys):
    foreign = tmp_path / "someone-elses-model"
    foreign.mkdir()
    assert tiny_model.main(["--out", str(foreign)]) == 2
    assert capsys.readouterr().err == (
        f"error: {foreign} exists and was not written by tools.dev.tiny_model; pass --force to "
        "replace it\n"
    )
    assert tiny_model.main(["--out", str(tmp_path / "m"), "--vocab-size", "10"]) == 2
    assert "vocab_size 10 < tokenizer size" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [foreign]


def test_chat_template_renders_qwen3_conversation_with_think_and_tool_calls(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "system", "content": "你是小竹。"},
        {"role": "user", "content": "谁在说话？"},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\n你是小竹。<|im_end|>\n<|im_start|>user\n谁在说话？<|im_end|>\n"
        "<|im_start|>assistant\n"
    )

    no_think = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert no_think.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")

    tool_call = {"name": "audio_sim", "arguments": {}}
    turns = messages + [
        {
            "role": "assistant",
            "content": "<think>\n先听声音。\n</think>\n\n",
            "tool_calls": [tool_call],
        },
        {"role": "tool", "content": "甲 0.91"},
    ]
    rendered = tokenizer.apply_chat_template(turns, tokenize=False)
    assert '<tool_call>\n{"name": "audio_sim", "arguments": {}}\n</tool_call><|im_end|>' in rendered
    assert "<think>\n先听声音。\n</think>" in rendered
    assert rendered.endswith(
        "<|im_start|>user\n<tool_response>\n甲 0.91\n</tool_response><|im_end|>\n"
    )


# qwen3 trains the (empty) reasoning block as part of the answer; qwen3_nothink has none.
@pytest.mark.parametrize(
    ("template_name", "answer_prefix"),
    [("qwen3", "<think>\n\n</think>\n\n"), ("qwen3_nothink", "")],
    ids=["qwen3", "qwen3_nothink"],
)
def test_llamafactory_template_encodes_one_turn(tiny_model, template_name, answer_prefix):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template_name))
    messages = [
        {"role": "user", "content": "雨天出门要带什么？"},
        {"role": "assistant", "content": "Take an umbrella."},
    ]
    prompt_ids, response_ids = template.encode_oneturn(tokenizer, messages, system="Be brief.")

    assert tokenizer.decode(prompt_ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n雨天出门要带什么？<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.decode(response_ids) == answer_prefix + "Take an umbrella.<|im_end|>\n"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in response_ids
