"""Command line of speaker recognition: `python -m tools.sr <command> --help`.

The pipeline, in order: series-info, prepare, traces, split, export, then training (make sft /
make rl), serve, eval, report. See tools/sr/README.md.
"""

import sys

from tools.common.commands import Command, dispatch

COMMANDS = {
    "series-info": Command("tools.sr.series_info", "validate a series and print what it holds"),
    "prepare": Command(
        "tools.sr.prepare",
        "label propagation: pseudo-labels, candidate lists, accuracy -> labels.json",
    ),
    "traces": Command(
        "tools.sr.traces", "teacher trajectories with tools (OpenAI API or oracle) -> traces.jsonl"
    ),
    "split": Command(
        "tools.sr.split", "seeded sft / rl_train / rl_val / eval manifest by episode blocks"
    ),
    "export": Command(
        "tools.sr.export", "traces -> LLaMA-Factory SFT data (sft); labels -> verl parquet (rl)"
    ),
    "rl": Command("tools.sr.rl", "GRPO on stock verl as a Ray job, with the tool server"),
    "tool-server": Command(
        "plugins.speaker_rec.server", "serve the SR tools over HTTP (verl-tool wire format)"
    ),
    "serve": Command(
        "tools.sr.serve", "start / stop / status of OpenAI-compatible model servers, one per port"
    ),
    "eval": Command(
        "tools.sr.evaluate", "evaluate served models over many ports -> results.jsonl (resumable)"
    ),
    "report": Command("tools.sr.report", "results + labels -> report.json, report.md and plots"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m tools.sr", "Drama speaker recognition.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
