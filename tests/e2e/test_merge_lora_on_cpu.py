"""End-to-end: `llamafactory-cli export` merges a LoRA adapter trained by `llamafactory-cli train`
into a model directory that transformers loads (what `make merge-lora ADAPTER=...` runs).

The adapter comes from two real LoRA steps on the tiny model; the merged weights are checked
against peft's own merge of the same adapter, so the test proves the merge, not just a file.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llamafactory_run import run_sft

TEMPLATE = "qwen3_nothink"


@pytest.mark.slow
def test_export_merges_a_trained_lora_adapter_into_a_loadable_model(
    repo_root, tiny_model, tmp_path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = tmp_path / "lora"
    run = run_sft(
        tiny_model,
        repo_root / "data",
        "smoke_alpaca",
        adapter,
        template=TEMPLATE,
        max_steps=2,
        overrides=["finetuning_type=lora", "lora_target=all"],
    )
    run.assert_trained(steps=2)
    assert (adapter / "adapter_model.safetensors").is_file()

    export_dir = tmp_path / "merged"
    cli = Path(sys.executable).parent / "llamafactory-cli"
    proc = subprocess.run(
        [
            str(cli),
            "export",
            "--model_name_or_path",
            str(tiny_model),
            "--adapter_name_or_path",
            str(adapter),
            "--template",
            TEMPLATE,
            "--finetuning_type",
            "lora",
            "--export_dir",
            str(export_dir),
        ],
        cwd=repo_root,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        f"llamafactory-cli export failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )

    merged = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    expected = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), adapter
    ).merge_and_unload()
    merged_state, expected_state, base_state = (
        merged.state_dict(),
        expected.state_dict(),
        base.state_dict(),
    )
    assert merged_state.keys() == expected_state.keys()
    for name, tensor in merged_state.items():
        torch.testing.assert_close(tensor, expected_state[name], rtol=1e-3, atol=1e-4, msg=name)
    # The adapter moved the weights it targets: the merge is not a copy of the base model.
    changed = [name for name in base_state if not torch.equal(base_state[name], merged_state[name])]
    assert any("q_proj" in name for name in changed) and any(
        "down_proj" in name for name in changed
    )
    assert not any("norm" in name for name in changed)

    # The merged directory is self-contained: its tokenizer renders the training template's chat.
    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好"}], add_generation_prompt=True
    )
    if not isinstance(ids, list):  # transformers 5 may return a BatchEncoding
        ids = ids["input_ids"]
    assert "<|im_start|>user\n你好<|im_end|>" in tokenizer.decode(ids)
    with torch.no_grad():
        logits = merged(torch.tensor([ids])).logits
    assert torch.isfinite(logits).all()
