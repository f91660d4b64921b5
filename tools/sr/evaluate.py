"""Speaker-recognition evaluation over served ports: `make eval PORTS=1-8 SERIES=...`.

Runs the SR environment on every judged line of a series (or a `--lines` / `--sample` subset,
optionally within one part of a split manifest) against the OpenAI-compatible servers that
tools.sr.serve started on BASE_PORT+i (or any `--urls`). Prompts are the training prompts:
SpeakerEnv.prompt, with the toolset as OpenAI `tools=` in hermes. Both protocols go through
the chat API, so the server's chat template renders the turns; `tools.sr.serve` starts
`llamafactory-cli api` with the SFT template (qwen3_nothink), which keeps earlier `<think>`
blocks verbatim, exactly as SFT trained on them (tests/e2e/test_eval_on_cpu.py checks this
with LLaMA-Factory's own template). The stock Qwen3 chat template that vLLM applies drops the
reasoning of assistant turns before the last user message, and in tags every observation is a
user message: for DramaSR-LRM tags checkpoints on vLLM, serve with a chat template that keeps
them (`vllm serve --chat-template`).

Output: `results.jsonl`, one record per line (tools.sr.traces' record plus `port`, `attempts` =
requests retried, `latency_s` = seconds of each request), append-only and resumable like
traces (one run at a time: a second one on the same output exits 2 naming the first's pid;
duplicated records are refused, or kept once with --dedupe); `eval_config.json` next to it holds
the run's configuration (endpoint credentials redacted), and a rerun whose configuration differs
refuses to append (unless --force). No hint retry: eval measures.
Exit status: 0 done, 1 some lines failed (rerun to retry them), 2 bad input, 3 every port died.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import random
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from plugins.redaction import redact, redact_logs
from plugins.speaker_rec.correctness import is_judged
from plugins.speaker_rec.env import SpeakerEnv
from plugins.speaker_rec.series import SeriesError
from tools.common.fileio import OutputError, atomic_write_json
from tools.common.series_args import (
    add_rollout_args,
    add_series_args,
    load_series_and_labels,
    rollout_env,
)
from tools.sr.eval_pool import AllPortsDead, RetryPolicy, run_pool
from tools.sr.port_ranges import parse_ranges
from tools.sr.rollout import open_output
from tools.sr.split_manifest import PARTS, part_contains, read_split

logger = logging.getLogger(__name__)

FORMAT = "dramakit-eval/1"
CONFIG_NAME = "eval_config.json"


def judged_lines(series, labels) -> list[int]:
    """Lines with a ground truth to judge against that are not seeds (their label is given), in
    order: the lines prepare's and the report's accuracy count."""
    return [
        i for i in sorted(labels.lines) if is_judged(series.lines[i].kind) and i not in labels.seeds
    ]


def choose_lines(valid: list[int], args: argparse.Namespace) -> list[int]:
    """The lines to evaluate: the split part (if any), then --lines or a seeded --sample."""
    if args.split:
        manifest = read_split(args.split)
        valid = [i for i in valid if part_contains(manifest, args.part, i)]
        if not valid:
            raise ValueError(f"{args.split}: part {args.part} holds no judged line")
    if args.lines:
        wanted = parse_ranges(args.lines, "--lines")
        unknown = sorted(set(wanted) - set(valid))
        if unknown:
            raise ValueError(
                f"--lines: {len(unknown)} lines are not judged lines of the selection "
                f"(first: {unknown[0]})"
            )
        return wanted
    if args.sample is not None:
        if not 0 < args.sample <= len(valid):
            raise ValueError(
                f"--sample: must be within 1..{len(valid)} (judged lines in the selection)"
            )
        return sorted(random.Random(args.seed).sample(valid, args.sample))
    return valid


def endpoint_urls(args: argparse.Namespace) -> list[str]:
    if args.urls:
        return [u.rstrip("/") for u in args.urls]
    return [
        f"http://{args.host}:{args.base_port + i}/v1" for i in parse_ranges(args.ports, "--ports")
    ]


def served_model(urls: list[str]) -> str:
    """The first model name that a reachable endpoint lists at /v1/models."""
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=10) as reply:
                return json.load(reply)["data"][0]["id"]
        except (OSError, ValueError, KeyError, IndexError):
            continue
    raise RuntimeError(f"no endpoint answered /v1/models: {redact(', '.join(urls))}")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_config(args: argparse.Namespace, env: SpeakerEnv, model: str, lines: list[int]) -> dict:
    """What decides the results: a rerun with a different one must not append to them."""
    return {
        "series": args.series,
        "labels_sha256": sha256_of(args.labels),
        "protocol": env.protocol,
        "language": env.language,
        "api": "chat",
        "model": model,
        "max_turns": args.max_turns,
        "sampling": sampling_settings(args),
        "selection": {
            "split": str(args.split) if args.split else None,
            "part": args.part if args.split else None,
            "lines": args.lines,
            "sample": args.sample,
            "seed": args.seed,
            "count": len(lines),
        },
    }


def sampling_settings(args: argparse.Namespace) -> dict:
    """Sent with every request. `seed` makes vLLM's sampling reproducible; LLaMA-Factory's
    server ignores the field."""
    return {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }


def check_config(
    path: Path, run: dict, results: Path, has_results: bool, force: bool
) -> list[dict]:
    """Earlier configurations to keep in the new eval_config.json; raises ValueError when the
    results (`has_results`: the file holds records) were made with another configuration and
    `force` is not set. Without results there is nothing to protect."""
    if not has_results:
        return []
    if not path.exists():
        if not force:
            raise ValueError(
                f"{results}: results without {path.name}; refusing to append (use --force)"
            )
        return []
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
        previous = written["run"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"{path}: not an eval configuration; refusing to append (use --force)"
        ) from None
    if previous != run:
        changed = sorted(k for k in set(previous) | set(run) if previous.get(k) != run.get(k))
        if not force:
            raise ValueError(
                f"{path}: {results} was made with another configuration (differs in "
                f"{', '.join(changed)}); refusing to append (use another --out, or --force)"
            )
        logger.warning(
            "--force: appending to results made with another configuration (differs in %s)",
            ", ".join(changed),
        )
        return [*written.get("previous", []), previous]
    return written.get("previous", [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sr.evaluate",
        description="Evaluate a served model on speaker recognition: every judged line of a series "
        "(or a subset) through the SR environment, spread over the ports of tools.sr.serve "
        "with bounded concurrency "
        "per port, retries with back-off, and failover off ports that die. Writes "
        "results.jsonl (resumable) "
        "and eval_config.json next to it. The API key, if the servers need one, comes "
        "from OPENAI_API_KEY.",
    )
    add_series_args(parser, labels=True)
    parser.add_argument(
        "--out", required=True, type=Path, help="results.jsonl (appended to, resumable)"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--ports", help="port offsets of tools.sr.serve, e.g. 1-8 (port = --base-port + offset)"
    )
    where.add_argument(
        "--urls",
        nargs="+",
        help="OpenAI-compatible base URLs instead, e.g. http://127.0.0.1:8001/v1",
    )
    parser.add_argument("--base-port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument(
        "--host", default="127.0.0.1", help="host of the --ports servers (default: %(default)s)"
    )
    parser.add_argument(
        "--model", help="served model name (default: the first name the servers list)"
    )
    add_rollout_args(parser)
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--lines", help="only these line indices, e.g. 3,10,20-40")
    subset.add_argument(
        "--sample", type=int, help="a seeded random sample of this many judged lines"
    )
    parser.add_argument(
        "--split", type=Path, help="split manifest (tools.sr.split): only lines of --part"
    )
    parser.add_argument(
        "--part", choices=PARTS, default="eval", help="part of --split (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds --sample and is sent as the sampling seed"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="trajectories at a time per port (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per request (default: %(default)s)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries per request, exponential back-off (default: %(default)s)",
    )
    parser.add_argument(
        "--backoff", type=float, default=1.0, help="first back-off in seconds, doubled per retry"
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=3,
        help="failures in a row after which a port is dropped (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="append even when eval_config.json differs"
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="when --out already holds several records of one line, keep the first of each "
        "(default: refuse, naming the count)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    redact_logs()
    for name in ("concurrency", "max_failures"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Evaluate the served models on the chosen lines, appending to --out; 2 on bad input.
    `argv` (default: the process's) is recorded, redacted, in the run's config."""
    try:
        urls = endpoint_urls(args)
        series, labels = load_series_and_labels(args)
        env = rollout_env(args, series, labels)
        lines = choose_lines(judged_lines(series, labels), args)
        model = args.model or served_model(urls)
        config_path = args.out.parent / CONFIG_NAME
        run = run_config(args, env, model, lines)
    except (SeriesError, ValueError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 3
    try:
        with open_output(args.out, args.dedupe) as output:
            previous = check_config(config_path, run, args.out, bool(output.keys), args.force)
            # Credentials in an endpoint URL (http://user:key@host/v1) are never written down.
            atomic_write_json(
                config_path,
                {
                    "format": FORMAT,
                    "run": run,
                    "previous": previous,
                    "endpoints": [redact(url) for url in urls],
                    "concurrency": args.concurrency,
                    "timeout_s": args.timeout,
                    "retries": args.retries,
                    "backoff_s": args.backoff,
                    "max_failures": args.max_failures,
                    "data_dir": args.data_dir,
                    "labels": str(args.labels),
                    "results": str(args.out),
                    "lines": lines,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "argv": [redact(arg) for arg in (sys.argv[1:] if argv is None else argv)],
                },
            )
            todo = [i for i in lines if i not in output.keys]
            logger.info(
                "%d lines, %d already done, %d to run on %d ports (model %s)",
                len(lines),
                len(lines) - len(todo),
                len(todo),
                len(urls),
                model,
            )
            policy = RetryPolicy(
                retries=args.retries, backoff_s=args.backoff, max_failures=args.max_failures
            )
            try:
                failed, pool = asyncio.run(
                    run_pool(
                        env,
                        urls,
                        model,
                        todo,
                        output,
                        sampling=sampling_settings(args),
                        concurrency=args.concurrency,
                        timeout=args.timeout,
                        policy=policy,
                    )
                )
            except AllPortsDead as e:
                print(
                    f"error: {e}; {len(output.keys & set(lines))} of {len(lines)} lines are in "
                    f"{args.out}; rerun when servers are back",
                    file=sys.stderr,
                )
                return 3
    except (OutputError, ValueError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    served = Counter({endpoint.port: endpoint.trajectories for endpoint in pool.endpoints})
    dropped = [endpoint.port for endpoint in pool.endpoints if endpoint.dead]
    logger.info(
        "this run: trajectories per port %s%s",
        dict(served),
        f"; dropped ports {dropped}" if dropped else "",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
