"""Developer tools: `python -m tools.dev <command> --help`.

Environment install, the tiny model, demo and synthetic series, the scripted teacher stand-in,
benchmarks. See tools/dev/README.md.
"""

import sys

from tools.common.commands import Command, dispatch

COMMANDS = {
    "install-env": Command(
        "tools.dev.install_env", "create or update the virtual environment from the pins"
    ),
    "tiny-model": Command(
        "tools.dev.tiny_model", "build the tiny random Qwen3 with the real tokenizer (offline)"
    ),
    "demo-series": Command("tools.dev.demo_series", "build the demo series from its YAML script"),
    "synthetic-series": Command(
        "tools.dev.synthetic_series", "a large synthetic series from a real one"
    ),
    "scripted-openai": Command(
        "tools.dev.scripted_openai", "a scripted OpenAI-compatible chat server (stand-in)"
    ),
    "bench": Command("tools.dev.bench", "every benchmark, as ratios measured in one run"),
    "bench-eval": Command("tools.dev.bench_eval", "multi-port eval scaling"),
    "bench-tool-server": Command(
        "tools.dev.bench_tool_server", "tool server throughput, latency and memory"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m tools.dev", "Developer tools (not user commands).", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
