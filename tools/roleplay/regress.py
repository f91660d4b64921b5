"""Run a persona regression bank against a model and record which cases pass.

    python -m tools.roleplay.regress --cases data/regression/孙悟空.jsonl \\
        --endpoint http://127.0.0.1:8000/v1 \\
        --role 孙悟空 --profiles ../shared/data/rolebench-zh/profiles-zh_desc.json \\
        --out runs/regress/wukong-lora/results.jsonl \\
        [--compare runs/regress/wukong-base/results.jsonl]

Two ways to reach the model:
- `--endpoint URL [--model NAME]`: an OpenAI-compatible server (`llamafactory-cli api` on CPU,
  vLLM on GPUs) through the `openai` client; the key comes from OPENAI_API_KEY (a dummy for local
  servers); NAME defaults to the first model the server lists.
- `--model BASE [--adapter LORA] [--template T]`: loaded here by LLaMA-Factory's own ChatModel,
  so the prompt is rendered by the same template code as in training.

Greedy by default (temperature 0, one sample per case); `--samples K --temperature T --seed N`
draws K samples per case with a per-sample seed derived from N, the case id and the sample number
(honoured in local mode and by vLLM; LLaMA-Factory's HF API server ignores request seeds). The
messages sent are the case's own; the checks never add hints to them. Cases without a `system`
get the role's persona prompt (tools.roleplay.persona) when `--role` is given.

Output: `results.jsonl`, one record per case and sample, append-only; a rerun skips what is done
(a line torn by a kill is dropped and redone; records of another configuration are refused), and
`results.summary.json` next to it with overall and per-tag pass rates. `--compare OLD.jsonl`
lists regressions and fixes per case and per tag. `--train FILE ...` warns when a case prompt
is in a training set (alpaca or ShareGPT, JSON or JSONL; tools/roleplay/leak_check.py says how
prompts are
matched); `--check-leak --cases BANK --train FILE ...` runs that check alone.

Exit status: 0 when every case ran (and nothing regressed against --compare); 1 when generation
failed or --compare found regressions; 2 on bad input (nothing is written then).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from tools.common.fileio import AppendOnlyJsonl, OutputError, atomic_write_json, read_jsonl
from tools.common.text_input import NotTextError, read_text
from tools.roleplay.bank import BankError, Case, load_bank, run_checks
from tools.roleplay.leak_check import DEFAULT_THRESHOLD, LeakIndex
from tools.roleplay.persona_prompt import (
    PERSONA_TEMPLATES,
    ProfilesError,
    load_profiles,
    persona_prompt,
    role_description,
)

logger = logging.getLogger(__name__)

DUMMY_API_KEY = "EMPTY"  # local servers (llamafactory-cli api without API_KEY, vLLM) accept any key
USER_ROLES = {"user", "human"}


class InputError(ValueError):
    """Bad input found before anything is written: a file, a line and a reason."""


class GenerationError(RuntimeError):
    """The model could not be reached or failed after its retries."""


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How responses are drawn; part of the configuration hash."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    samples: int = 1
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def as_config(self) -> dict:
        # Seed and top_p do not change greedy output, so they do not change a greedy config.
        return {
            "temperature": self.temperature,
            "top_p": None if self.greedy else self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "samples": self.samples,
            "seed": None if self.greedy else self.seed,
        }


def sample_seed(seed: int, case_id: str, sample: int) -> int:
    """A 31-bit seed for one sample, the same whatever order or run the sample is drawn in."""
    digest = hashlib.sha256(f"{seed}\0{case_id}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# ---- model access -----------------------------------------------------------


class EndpointGenerator:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, base_url: str, model: str | None, timeout: float, max_retries: int):
        from openai import OpenAI, OpenAIError

        self.endpoint = base_url
        self._client = OpenAI(
            base_url=base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or DUMMY_API_KEY,
            timeout=timeout,
            max_retries=max_retries,  # the client backs off exponentially between tries
        )
        self._errors = OpenAIError
        if model is None:
            try:
                listed = self._client.models.list().data
            except OpenAIError as e:
                raise GenerationError(f"{base_url}: cannot list models ({e})") from None
            if not listed:
                raise GenerationError(f"{base_url}: the server lists no model; pass --model")
            model = listed[0].id
        self.model_id = model
        self.adapter = None
        self.template = None

    def generate(self, messages: list[dict], settings: GenerationSettings, seed: int | None) -> str:
        extra = {} if seed is None else {"seed": seed}
        try:
            completion = self._client.chat.completions.create(
                model=self.model_id,
                messages=messages,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens,
                **extra,
            )
        except self._errors as e:
            raise GenerationError(f"{self.endpoint}: {e}") from None
        return completion.choices[0].message.content or ""


class LocalGenerator:
    """Base model (+ LoRA adapter) loaded by LLaMA-Factory's ChatModel, templates as in training."""

    def __init__(self, model: str, adapter: str | None, template: str | None):
        from llamafactory.chat import ChatModel

        args = {"model_name_or_path": model, "infer_backend": "huggingface"}
        if adapter:
            args.update(adapter_name_or_path=adapter, finetuning_type="lora")
        if template:
            args["template"] = template
        self._chat_model = ChatModel(args)
        self.endpoint = None
        self.model_id = model
        self.adapter = adapter
        self.template = template

    def generate(self, messages: list[dict], settings: GenerationSettings, seed: int | None) -> str:
        import transformers

        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        turns = messages[1:] if system is not None else messages
        if seed is not None:
            transformers.set_seed(seed)
        responses = self._chat_model.chat(
            [dict(turn) for turn in turns],
            system=system,
            do_sample=not settings.greedy,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_new_tokens=settings.max_new_tokens,
        )
        return responses[0].response_text


# ---- training-set overlap ---------------------------------------------------


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _user_texts(record, where: str) -> list[str]:
    """The user-side texts of one alpaca or ShareGPT record, as LLaMA-Factory would show them."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: a training record must be a JSON object")
    if "instruction" in record:  # alpaca: the query is instruction + "\n" + input
        instruction, extra = record.get("instruction") or "", record.get("input") or ""
        texts = [instruction, f"{instruction}\n{extra}" if extra else instruction, extra]
        texts += [
            turn[0] for turn in record.get("history") or [] if isinstance(turn, list) and turn
        ]
        return [text for text in texts if isinstance(text, str) and text.strip()]
    for key in ("conversations", "messages"):
        if isinstance(record.get(key), list):
            texts = []
            for turn in record[key]:
                if isinstance(turn, dict):
                    role = turn.get("from", turn.get("role"))
                    content = turn.get("value", turn.get("content"))
                    if role in USER_ROLES and isinstance(content, str) and content.strip():
                        texts.append(content)
            return texts
    raise InputError(
        f"{where}: neither alpaca ('instruction') nor ShareGPT ('conversations'/'messages')"
    )


def training_texts(path: Path | str) -> list[tuple[str, str]]:
    """(where, user text) for every user-side text of a training set, 'file:line' or 'file[i]'."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such training file")
    try:
        if path.suffix == ".jsonl":
            located = []
            for record in read_jsonl(path):
                if record.error:
                    raise InputError(f"{path}:{record.line_no}: {record.error}")
                located.append((f"{path}:{record.line_no}", record.value))
        else:
            data = json.loads(read_text(path))
            if not isinstance(data, list):
                raise InputError(f"{path}: expected a JSON list of records")
            located = [(f"{path}[{i}]", value) for i, value in enumerate(data)]
    except NotTextError as e:
        raise InputError(str(e)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: broken JSON ({e.msg})") from None
    if not located:
        raise InputError(f"{path}: no training records (empty file)")
    return [(where, text) for where, value in located for text in _user_texts(value, where)]


def training_prompts(path: Path | str) -> dict[str, str]:
    """Map every white-space-normalized user text of a training set to where it first occurs."""
    prompts = {}
    for where, text in training_texts(path):
        prompts.setdefault(_normalized(text), where)
    return prompts


def find_training_overlap(
    cases: list[Case], train_files: list[str], threshold: float = DEFAULT_THRESHOLD
) -> list[dict]:
    """Case prompts (user turns) found in a training set (tools/roleplay/leak_check.py: exact after
    normalising, inside a longer text, or a near duplicate): one entry per hit."""
    hits = []
    for train_file in train_files:
        index = LeakIndex(training_texts(train_file), threshold)
        for case in cases:
            for turn_index, message in enumerate(case.messages):
                leak = index.find(message["content"]) if message["role"] == "user" else None
                if leak:
                    hits.append(
                        {
                            "id": case.id,
                            "turn": turn_index,
                            "train_file": str(train_file),
                            "where": leak.where,
                            "match": leak.kind,
                            "similarity": leak.similarity,
                        }
                    )
    return hits


def check_leaks(
    cases: list[Case], train_files: list[str], threshold: float
) -> tuple[str, list[dict]]:
    """The leak check alone: its summary line ('checked N prompts against M samples: K found') and
    hits."""
    prompts = sum(1 for case in cases for message in case.messages if message["role"] == "user")
    samples = sum(len({where for where, _ in training_texts(f)}) for f in train_files)
    hits = find_training_overlap(cases, train_files, threshold)
    return f"checked {prompts} prompts against {samples} samples: {len(hits)} found", hits


# ---- results, resume, summary, compare --------------------------------------


def prompt_messages(case: Case, default_system: str | None) -> list[dict]:
    """The messages sent for a case: its system (or the role's persona), then its own turns."""
    system = case.system or default_system
    head = [{"role": "system", "content": system}] if system else []
    return head + [dict(message) for message in case.messages]


def config_hash(config: dict) -> str:
    return hashlib.sha256(
        json.dumps(config, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:16]


def result_key(expected_hash: str):
    """The resume key of a regress result, (case id, sample); a record of another config is
    refused."""

    def key(record: dict) -> tuple[str, int]:
        if record["config_hash"] != expected_hash:
            raise ValueError(
                f"made with another configuration (hash {record['config_hash']} != "
                f"{expected_hash}: "
                "cases file, persona, generation settings or model changed); write to a new --out"
            )
        return record["id"], record["sample"]

    return key


def run_pending(
    cases: list[Case],
    done: dict,
    generator,
    settings: GenerationSettings,
    default_system: str | None,
    output: AppendOnlyJsonl,
    digest: str,
) -> str | None:
    """Generate and check every (case, sample) not in `done`, appending each result to `output`
    (which adds it to `done`, its `records`). Returns the error that stopped the run, or None."""
    pending = [
        (case, sample)
        for case in cases
        for sample in range(settings.samples)
        if (case.id, sample) not in done
    ]
    total = len(cases) * settings.samples
    logger.info(
        "%d of %d samples already done; %d to run", total - len(pending), total, len(pending)
    )
    for case, sample in tqdm(pending, desc="regress", unit="sample"):
        messages = prompt_messages(case, default_system)
        seed = None if settings.greedy else sample_seed(settings.seed, case.id, sample)
        started = time.perf_counter()
        try:
            response = generator.generate(messages, settings, seed)
        except GenerationError as e:
            return str(e)
        result = run_checks(case.checks, response)
        record = {
            "id": case.id,
            "sample": sample,
            "tags": list(case.tags),
            "prompt": messages,
            "response": response,
            "passed": result.passed,
            "failures": [failure.as_dict() for failure in result.failures],
            "model": generator.model_id,
            "adapter": generator.adapter,
            "endpoint": generator.endpoint,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 3),
            "config_hash": digest,
        }
        output.append(record)
    return None


def _rate(passed: int, total: int) -> float | None:
    return round(passed / total, 4) if total else None


def case_rates(records) -> dict[str, dict]:
    """Per case id: tags, samples, passed samples and pass rate."""
    per_case = {}
    for record in records:
        entry = per_case.setdefault(
            record["id"], {"tags": record["tags"], "samples": 0, "passed": 0}
        )
        entry["samples"] += 1
        entry["passed"] += bool(record["passed"])
    for entry in per_case.values():
        entry["pass_rate"] = _rate(entry["passed"], entry["samples"])
    return per_case


def summarize(cases: list[Case], records: list[dict], settings: GenerationSettings) -> dict:
    """Overall, per-tag and per-check counts of the results of one run."""
    per_case = case_rates(records)
    by_tag = collections.defaultdict(lambda: {"cases": 0, "samples": 0, "passed": 0})
    for entry in per_case.values():
        for tag in entry["tags"]:
            by_tag[tag]["cases"] += 1
            by_tag[tag]["samples"] += entry["samples"]
            by_tag[tag]["passed"] += entry["passed"]
    for entry in by_tag.values():
        entry["pass_rate"] = _rate(entry["passed"], entry["samples"])
    failed_checks = collections.Counter(
        failure["check"] for record in records for failure in record["failures"]
    )
    passed = sum(bool(record["passed"]) for record in records)
    expected = len(cases) * settings.samples
    return {
        "cases": len(cases),
        "samples_per_case": settings.samples,
        "results": len(records),
        "complete": len(records) == expected,
        "passed": passed,
        "failed": len(records) - passed,
        "pass_rate": _rate(passed, len(records)),
        "cases_all_passed": sum(entry["passed"] == entry["samples"] for entry in per_case.values()),
        "by_tag": dict(sorted(by_tag.items())),
        "failures_by_check": dict(sorted(failed_checks.items())),
        "failed_cases": {
            case_id: entry["pass_rate"]
            for case_id, entry in per_case.items()
            if entry["passed"] < entry["samples"]
        },
    }


def read_results(path: Path | str) -> list[dict]:
    """All records of a results file (a previous run for --compare); InputError on a broken line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such results file")
    records = []
    for record in read_jsonl(path):
        if record.error:
            raise InputError(f"{path}:{record.line_no}: {record.error}")
        if not isinstance(record.value, dict) or not {"id", "tags", "passed"} <= set(record.value):
            raise InputError(
                f"{path}:{record.line_no}: not a regress result (needs id, tags, passed)"
            )
        records.append(record.value)
    return records


def compare(previous: list[dict], current: list[dict]) -> dict:
    """Regressions (pass rate went down) and fixes (went up) per case and per tag.

    With one greedy sample per case a regression is exactly 'passed before, fails now'."""
    before, now = case_rates(previous), case_rates(current)
    regressions, fixes, unchanged = [], [], 0
    for case_id in sorted(before.keys() & now.keys()):
        old, new = before[case_id]["pass_rate"], now[case_id]["pass_rate"]
        entry = {"id": case_id, "tags": now[case_id]["tags"], "before": old, "now": new}
        if new < old:
            regressions.append(entry)
        elif new > old:
            fixes.append(entry)
        else:
            unchanged += 1
    by_tag = {}
    for tag in sorted(
        {tag for entry in [*before.values(), *now.values()] for tag in entry["tags"]}
    ):
        sides = {}
        for name, rates in (("before", before), ("now", now)):
            members = [entry for entry in rates.values() if tag in entry["tags"]]
            sides[name] = _rate(
                sum(e["passed"] for e in members), sum(e["samples"] for e in members)
            )
        by_tag[tag] = {
            **sides,
            "regressions": sum(tag in entry["tags"] for entry in regressions),
            "fixes": sum(tag in entry["tags"] for entry in fixes),
        }
    return {
        "regressions": regressions,
        "fixes": fixes,
        "unchanged": unchanged,
        "only_before": sorted(before.keys() - now.keys()),
        "only_now": sorted(now.keys() - before.keys()),
        "by_tag": by_tag,
    }


def summary_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.summary.json")


def format_report(summary: dict) -> str:
    """The lines printed at the end of a run."""
    lines = [
        f"regress: {summary['cases']} cases x {summary['samples_per_case']} samples: "
        f"{summary['passed']}/{summary['results']} passed ({summary['pass_rate']})"
        + ("" if summary["complete"] else " [INCOMPLETE]"),
    ]
    lines += [
        f"  tag {tag}: {entry['passed']}/{entry['samples']} ({entry['pass_rate']})"
        for tag, entry in summary["by_tag"].items()
    ]
    if summary.get("note"):
        lines.append(f"  note: {summary['note']}")
    for hit in summary["training_overlap"]:
        lines.append(
            f"  WARNING case {hit['id']} turn {hit['turn']} is in training data "
            f"({hit.get('match', 'exact')}) at {hit['where']}"
        )
    comparison = summary.get("compare")
    if comparison:
        lines.append(
            f"compare with {comparison['previous']}: {len(comparison['regressions'])} regressions, "
            f"{len(comparison['fixes'])} fixes, {comparison['unchanged']} unchanged"
        )
        for kind in ("regressions", "fixes"):
            for entry in comparison[kind]:
                lines.append(
                    f"  {kind[:-1]}: {entry['id']} {entry['before']} -> {entry['now']} "
                    f"(tags: {', '.join(entry['tags'])})"
                )
        for tag, entry in comparison["by_tag"].items():
            lines.append(
                f"  tag {tag}: {entry['before']} -> {entry['now']} "
                f"({entry['regressions']} regressions, {entry['fixes']} fixes)"
            )
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.regress",
        description="Run a persona regression bank (JSONL cases with checks) against an "
        "OpenAI-compatible "
        "endpoint or a local base model + LoRA adapter; write per-sample results and a summary; "
        "compare with a previous run. Exit 0 done, 1 generation failed or regressions, 2 "
        "bad input.",
    )
    parser.add_argument(
        "--cases", required=True, help="bank file, e.g. data/regression/孙悟空.jsonl"
    )
    parser.add_argument(
        "--out",
        help="results JSONL, e.g. runs/regress/NAME/results.jsonl (resumable; "
        "locked while a run writes it)",
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="keep the first of each (case, sample) that --out holds twice, instead of refusing",
    )
    where = parser.add_argument_group("model (one of --endpoint or --model)")
    where.add_argument(
        "--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    where.add_argument(
        "--model",
        help="served model name (endpoint mode; default: the first listed) or base model "
        "path/id (local mode)",
    )
    where.add_argument("--adapter", help="LoRA adapter directory (local mode)")
    where.add_argument(
        "--template",
        help="LLaMA-Factory template as in training (local mode; default: the tokenizer's)",
    )
    where.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)"
    )
    where.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="retries per request with back-off (default: %(default)s)",
    )
    persona = parser.add_argument_group("persona (system prompt for cases without one)")
    persona.add_argument(
        "--role",
        help="RoleBench role whose persona prompt (tools.roleplay.persona) is the system prompt",
    )
    persona.add_argument("--profiles", help="RoleBench profiles JSON (with --role)")
    persona.add_argument(
        "--language",
        default="zh",
        choices=sorted(PERSONA_TEMPLATES),
        help="persona prompt language (default: %(default)s)",
    )
    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "--samples", type=int, default=1, help="samples per case (default: %(default)s, greedy)"
    )
    gen.add_argument(
        "--temperature", type=float, default=0.0, help="0 = greedy (default: %(default)s)"
    )
    gen.add_argument(
        "--top-p",
        type=float,
        default=1.0,
        help="nucleus sampling when temperature > 0 (default: %(default)s)",
    )
    gen.add_argument("--max-new-tokens", type=int, default=256, help="default: %(default)s")
    gen.add_argument(
        "--seed", type=int, default=0, help="seed of the per-sample seeds (default: %(default)s)"
    )
    parser.add_argument(
        "--train",
        nargs="+",
        default=[],
        metavar="FILE",
        help="training sets (alpaca or ShareGPT, JSON or JSONL) to search for case prompts: "
        "exact after normalising punctuation width, white space and a leading address, inside a "
        "longer prompt, or a near duplicate (--leak-threshold)",
    )
    parser.add_argument(
        "--check-leak",
        action="store_true",
        help="only check --cases against --train, print 'checked N prompts against M samples: "
        "K found' and exit 1 on a find (no model, no --out)",
    )
    parser.add_argument(
        "--leak-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="character-trigram Jaccard similarity from which a prompt is a near duplicate of a "
        "training prompt (default: %(default)s)",
    )
    parser.add_argument(
        "--compare", metavar="PREVIOUS", help="results JSONL of an earlier run to compare with"
    )
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error on options that do not go together."""
    if not 0 < args.leak_threshold <= 1:
        parser.error("--leak-threshold must be in (0, 1]")
    if args.check_leak:
        if not args.train:
            parser.error("--check-leak needs --train FILE ...")
        return
    if not args.out:
        parser.error("--out is required (except with --check-leak)")
    if not args.endpoint and not args.model:
        parser.error("give --endpoint URL or --model BASE (with --adapter for a LoRA)")
    if args.endpoint and (args.adapter or args.template):
        parser.error("--adapter and --template are for local mode; the server applies its own")
    if bool(args.role) != bool(args.profiles):
        parser.error("--role and --profiles go together")
    if args.samples < 1 or args.max_new_tokens < 1 or args.temperature < 0:
        parser.error("--samples and --max-new-tokens must be >= 1, --temperature >= 0")
    if args.samples > 1 and args.temperature == 0:
        parser.error("--samples > 1 needs --temperature > 0 (greedy samples are all the same)")


def _prepare(
    args: argparse.Namespace,
) -> tuple[list[Case], str | None, list[dict], list[dict] | None]:
    """Everything read and validated before a model is touched or a file written."""
    default_system = None
    if args.role:  # first: a role that is not in the profiles never reaches a path
        profiles = load_profiles(args.profiles)
        default_system = persona_prompt(
            args.role, role_description(profiles, args.role, args.profiles), args.language
        )
    cases = load_bank(args.cases)
    overlap = []
    if args.train:
        line, overlap = check_leaks(cases, args.train, args.leak_threshold)
        print(f"leak check: {line}")
    previous = read_results(args.compare) if args.compare else None
    return cases, default_system, overlap, previous


def _check_leak_only(args: argparse.Namespace) -> int:
    """`--check-leak`: exit 0 when no case prompt is in the training data, 1 on a find, 2 on bad
    input."""
    try:
        line, hits = check_leaks(load_bank(args.cases), args.train, args.leak_threshold)
    except BankError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except (InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(line)
    for hit in hits:
        print(
            f"  case {hit['id']} turn {hit['turn']}: {hit['match']} (similarity "
            f"{hit['similarity']}) at {hit['where']}"
        )
    return 1 if hits else 0


def _is_tiny_model(model: str) -> bool:
    """Whether `model` is our embedded tiny random model (its outputs mean nothing)."""
    from tools.common.tiny_model_files import is_tiny_model

    return is_tiny_model(model)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "httpx2"):  # the openai client's transports log every request at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the bank (or only its leak check); 1 on a regression, a leak or failed generation, 2 on
    bad input."""
    if args.check_leak:
        return _check_leak_only(args)
    settings = GenerationSettings(
        args.temperature, args.top_p, args.max_new_tokens, args.samples, args.seed
    )
    try:
        cases, default_system, overlap, previous = _prepare(args)
    except BankError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except (ProfilesError, InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for hit in overlap:
        logger.warning(
            "case %s (turn %d) is in training data (%s) at %s",
            hit["id"],
            hit["turn"],
            hit["match"],
            hit["where"],
        )

    try:
        if args.endpoint:
            generator = EndpointGenerator(args.endpoint, args.model, args.timeout, args.max_retries)
        else:
            generator = LocalGenerator(args.model, args.adapter, args.template)
    except GenerationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    cases_path = Path(args.cases)
    config = {
        "cases_sha256": hashlib.sha256(cases_path.read_bytes()).hexdigest(),
        "default_system": default_system,
        "generation": settings.as_config(),
        "model": generator.model_id,
        "adapter": generator.adapter,
        "template": generator.template,
    }
    digest = config_hash(config)
    out = Path(args.out)
    try:
        with AppendOnlyJsonl(
            out, result_key(digest), dedupe=args.dedupe, keep_records=True, durable=True
        ) as output:
            done = output.records
            failed = run_pending(cases, done, generator, settings, default_system, output, digest)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    records = [
        done[(case.id, sample)]
        for case in cases
        for sample in range(settings.samples)
        if (case.id, sample) in done
    ]
    summary = {
        "config_hash": digest,
        "config": {**config, "cases_file": str(cases_path), "endpoint": generator.endpoint},
        **summarize(cases, records, settings),
        "training_overlap": overlap,
    }
    if generator.endpoint is None and _is_tiny_model(args.model):
        summary["note"] = "tiny random model: these results prove the plumbing only"
    if previous is not None:
        summary["compare"] = {"previous": args.compare, **compare(previous, records)}
    atomic_write_json(summary_path(out), summary)
    print(format_report(summary))
    print(f"results: {out}\nsummary: {summary_path(out)}")
    if failed:
        print(f"error: generation failed, rerun to resume: {failed}", file=sys.stderr)
        return 1
    return 1 if previous is not None and summary["compare"]["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
