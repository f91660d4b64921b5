"""Check the CUDA environments on a machine without GPUs: `make check-gpu-envs` (developer tool).

    python -m tools.dev.check_envs --stack cuda-rl --venv .venv-cuda-rl \\
        --stack cuda-sft --venv .venv-cuda-sft

cuda-rl: `import vllm, verl, ray`; the reward, tool-server, verl tool adapter, recipe-composition
and
ToolAgentLoop tests; `make rl DRY_RUN=1` on the demo series with that environment as RL_ENV.
cuda-sft: `import deepspeed, bitsandbytes`; every recipe through LLaMA-Factory's argument parser
(tests/recipes/test_recipes.py); the GPU recipes' data loaded and rendered with their templates, and
the ZeRO-3
recipe parsed up to where a GPU is required (tests/recipes/test_gpu_recipes.py).
Each check runs in the environment given, with its own interpreter; the environment is only read
(bytecode writing off). Prints one line per check and a summary line "checks: N/M passed".
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.common.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TAIL = 1500
# As make demo splits its small series, so that every RL part gets lines.
DEMO_SPLIT_ARGS = "SPLIT_ARGS=--block-lines 25 --gap-lines 2"


def checks_for(stack: str, venv: Path, runs: Path) -> list[tuple[str, list[str]]]:
    """(name, command) for each check of a stack; commands run from the repository root."""
    py = str((venv / "bin" / "python").absolute())
    pytest = [
        py,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-x",
    ]  # with the project's -q: a closing "N passed" line
    if stack == "cuda-rl":
        env_vars = [
            "DEVICE=cuda",
            f"RL_ENV={venv.absolute()}",
            f"VENV={venv.absolute()}",
            f"RUNS={runs}",
        ]
        return [
            (
                "import vllm, verl, ray",
                [
                    py,
                    "-c",
                    "import vllm, verl, ray; print('vllm', vllm.__version__, "
                    "'verl', verl.__version__, 'ray', ray.__version__)",
                ],
            ),
            ("reward tests", pytest + ["tests/rewards/test_speaker_rec_reward.py"]),
            (
                "tool server + adapter tests",
                pytest
                + [
                    "tests/plugins/speaker_rec/test_server_on_cpu.py",
                    "tests/plugins/speaker_rec/test_verl_tool_on_cpu.py",
                ],
            ),
            ("recipe composition tests", pytest + ["tests/recipes/test_rl_recipe.py"]),
            ("ToolAgentLoop test", pytest + ["tests/e2e/test_rl_agent_loop_on_cpu.py"]),
            (
                "make rl DRY_RUN=1",
                [
                    "make",
                    "tiny-model",
                    "rl",
                    "DRY_RUN=1",
                    *env_vars,
                    DEMO_SPLIT_ARGS,
                    "RL_MODEL=.cache/models/tiny-qwen3",
                    f"TOOL_PORT={free_port()}",
                    "RL_DATA=" + str(runs / "rl"),
                ],
            ),
        ]
    if stack == "cuda-sft":
        return [
            (
                "import deepspeed, bitsandbytes",
                [
                    py,
                    "-c",
                    "import deepspeed, bitsandbytes, llamafactory, torch; "
                    "print('deepspeed', deepspeed.__version__, 'bitsandbytes', "
                    "bitsandbytes.__version__, 'llamafactory', llamafactory.__version__, "
                    "'torch', torch.__version__)",
                ],
            ),
            (
                "every recipe through LLaMA-Factory's parser",
                pytest + ["tests/recipes/test_recipes.py"],
            ),
            (
                "GPU recipes: data, template, ZeRO-3 up to the GPU",
                pytest + ["tests/recipes/test_gpu_recipes.py"],
            ),
        ]
    raise SystemExit(f"no checks for stack {stack}")


def run_check(name: str, command: list[str]) -> tuple[bool, str, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return (
        proc.returncode == 0,
        proc.stdout.strip(),
        proc.stderr.strip(),
        time.monotonic() - started,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev.check_envs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stack", action="append", required=True, choices=("cuda-rl", "cuda-sft"))
    parser.add_argument(
        "--venv", action="append", required=True, type=Path, help="one per --stack, in order"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.stack) != len(args.venv):
        parser.error("give one --venv per --stack")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run every check of the stacks' environments; 1 when one fails."""
    results = []
    with tempfile.TemporaryDirectory(prefix="dramakit-check-envs-") as runs:
        for stack, venv in zip(args.stack, args.venv, strict=True):
            for name, command in checks_for(stack, venv, Path(runs) / stack):
                ok, out, err, seconds = run_check(name, command)
                # The last line a check prints (versions, pytest's counts), not a library's warning.
                last = (out or err).splitlines()[-1] if (out or err) else ""
                output = f"{out}\n{err}".strip()
                print(
                    f"[{stack}] {'PASS' if ok else 'FAIL'} {name} ({seconds:.0f} s): {last[:200]}",
                    flush=True,
                )
                if not ok:
                    print(output[-TAIL:], flush=True)
                results.append(ok)
    print(f"checks: {sum(results)}/{len(results)} passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
