"""Convert RoleBench into a LLaMA-Factory SFT dataset: `python -m tools.roleplay.rolebench` (`make
rolebench`).

RoleBench (RoleLLM, Apache-2.0) ships JSONL files, role-specific and general, in Chinese
(`rolebench-zh/...`) and English (`rolebench-eng/...`), plus a profile file mapping each role to a
description (`profiles-zh/desc.json`, `profiles-eng/desc.json`). Both languages use the same record
fields: `role`, `question`, `generated` (a list of reference answers) and, in role-specific files,
`type` (a string in train files, a list in test files; not used here). A bare string `generated`
is accepted as one reference.

Each output example has the RoleGPT-style persona prompt as `system` (tools.roleplay.persona: the
published
Chinese prompt, our English counterpart; chat and the regression runner use the same words), the
question as the user turn and one reference as the answer. A leading
address to the role ("孙悟空，你…", "Sherlock, what…") is cut from the question: the persona prompt
already says who is speaking. Samples whose text is longer than the token limits are skipped and
counted (the published setting skipped them; LLaMA-Factory would silently truncate).
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tools.common.fileio import Report, read_jsonl
from tools.common.llamafactory_dataset import (
    FORMATS,
    ConversionError,
    DatasetOutput,
    dataset_name_arg,
    make_record,
    publish,
)
from tools.common.text_input import NotTextError
from tools.roleplay.persona_prompt import (
    PERSONA_TEMPLATES,
    ProfilesError,
    load_profiles,
    persona_prompt,
)

logger = logging.getLogger(__name__)

# Honorifics a question may use after the role's name ("华妃娘娘，") or instead of it ("皇上，").
TITLES_ZH = (
    "皇帝陛下",
    "皇上",
    "陛下",
    "娘娘",
    "殿下",
    "先生",
    "大人",
    "将军",
    "大圣",
    "师父",
    "老师",
)
TITLES_EN = (
    "Mr.",
    "Mrs.",
    "Ms.",
    "Miss",
    "Dr.",
    "Doctor",
    "Professor",
    "Captain",
    "Sir",
    "Madam",
    "Lady",
    "Lord",
    "Master",
)
GREETINGS_EN = ("Hey", "Hi", "Hello", "Dear", "Oh")
# An address ends in one of these marks; without one, a leading name is part of the sentence
# ("李白菜怎么做", "Sherlockian fans ...") and is left alone.
ADDRESS_END = r"\s*[，,：:!！、]\s*"
CJK = re.compile(r"[\u3400-\u9fff]")


def address_pattern(role: str, lang: str) -> re.Pattern:
    """A pattern for a leading address to `role`, ending in a mark from ADDRESS_END.

    Chinese: the name with optional honorifics, the surname (first character) with honorifics,
    or honorifics alone. English: an optional greeting, then the name or any part of a multi-word
    name with an optional title before it, or a title alone."""
    if lang == "zh":
        name, surname = re.escape(role), re.escape(role[0])
        titles = "(?:" + "|".join(map(re.escape, TITLES_ZH)) + ")"
        # The full name, the surname with a title ("张将军"), or titles alone ("陛下", "陛下殿下").
        body = rf"(?:{name}{titles}{{0,2}}|{surname}{titles}{{1,2}}|{titles}{{1,2}})"
        return re.compile(rf"^{body}{ADDRESS_END}")
    parts = [role, *(part for part in role.split() if len(part) > 1)] if " " in role else [role]
    names = "|".join(map(re.escape, sorted(set(parts), key=len, reverse=True)))
    titles = "|".join(map(re.escape, TITLES_EN))
    greetings = "|".join(GREETINGS_EN)
    body = rf"(?:(?:{greetings})\s+)?(?:(?:(?:{titles})\s+)?(?:{names})|(?:{titles}))"
    return re.compile(rf"^{body}{ADDRESS_END}", re.IGNORECASE)


def strip_address(question: str, pattern: re.Pattern) -> str:
    """`question` without surrounding whitespace and without a leading address that `pattern`
    matches; a question that is nothing but the address is returned whole. English questions get
    their new first letter capitalised."""
    question = question.strip()
    match = pattern.match(question)
    if match is None or match.end() == len(question):
        return question
    rest = question[match.end() :]
    if rest[0].isascii() and rest[0].islower():
        rest = rest[0].upper() + rest[1:]
    return rest


@dataclass
class Sample:
    """One candidate training example before the length check."""

    where: str
    system: str
    question: str
    answer: str


def _references(generated) -> list[str] | None:
    """Distinct non-empty references in order, or None when `generated` has the wrong type."""
    if isinstance(generated, str):
        generated = [generated]
    if not isinstance(generated, list) or not all(isinstance(g, str) for g in generated):
        return None
    return list(dict.fromkeys(g.strip() for g in generated if g.strip()))


def read_lines(inputs: list[Path], skip_broken: bool, report: Report) -> list[tuple[str, object]]:
    """(file:line, parsed JSONL line) of every input. A broken JSON line stops the conversion
    (ConversionError naming file:line) unless `skip_broken`, which drops and counts it."""
    lines = []
    for path in inputs:
        if not path.is_file():
            raise ConversionError(path, "input file not found")
        try:
            for line in tqdm(read_jsonl(path), desc=path.name, unit=" lines", disable=None):
                where = f"{path.name}:{line.line_no}"
                if line.error and not skip_broken:
                    raise ConversionError(
                        f"{path}:{line.line_no}",
                        f"{line.error} (--skip-broken drops such lines and counts them)",
                    )
                lines.append((where, line))
        except NotTextError as e:
            raise ConversionError(path, str(e).removeprefix(f"{path}: ")) from None
    return lines


def data_language(lines: list[tuple[str, object]]) -> str | None:
    """'zh' when most questions hold CJK characters, 'en' when most do not, None without
    questions."""
    questions = [
        line.value["question"]
        for _, line in lines
        if isinstance(line.value, dict) and isinstance(line.value.get("question"), str)
    ]
    if not questions:
        return None
    cjk = sum(1 for q in questions if CJK.search(q))
    return "zh" if cjk * 2 > len(questions) else "en"


def collect_samples(
    lines: list[tuple[str, object]],
    profiles: dict[str, str | None],
    lang: str,
    roles: set[str] | None,
    k: int,
    seed: int,
    report: Report,
) -> list[Sample]:
    """Turn the read lines into candidate samples; count each dropped line in `report`. A role
    whose description is None gets the persona built from its name alone.

    Up to `k` distinct references are chosen per question, seeded by (seed, role, question), so a
    question's choice does not depend on which other records or roles are selected."""
    patterns = {role: address_pattern(role, lang) for role in profiles}
    samples: list[Sample] = []
    stats = {"input_lines": 0, "addresses_stripped": 0, "questions_with_fewer_than_k_references": 0}
    for where, line in lines:
        stats["input_lines"] += 1
        reason = _problem(line, profiles, roles)
        if reason:
            report.seen()
            report.drop(reason, where)
            continue
        record = line.value
        role = record["role"]
        question = strip_address(record["question"], patterns[role])
        if question != record["question"].strip():
            stats["addresses_stripped"] += 1
        references = _references(record["generated"])
        chosen = random.Random(f"{seed}\x1f{role}\x1f{record['question']}").sample(
            references, min(k, len(references))
        )
        if len(chosen) < k:
            stats["questions_with_fewer_than_k_references"] += 1
        system = persona_prompt(role, profiles[role], lang)
        samples.extend(Sample(where, system, question, answer) for answer in chosen)
        report.seen(len(chosen))
    report.extra.update(stats)
    return samples


def _problem(line, profiles: dict[str, str | None], roles: set[str] | None) -> str | None:
    """The drop reason for one JSONL line, or None when it yields samples."""
    if line.error:
        return "broken_json"
    record = line.value
    if not isinstance(record, dict):
        return "not_an_object"
    if any(key not in record for key in ("role", "question", "generated")):
        return "missing_field"
    if not isinstance(record["role"], str) or not isinstance(record["question"], str):
        return "wrong_type"
    references = _references(record["generated"])
    if references is None:
        return "wrong_type"
    if record["role"] not in profiles:
        return "unknown_role"
    if roles is not None and record["role"] not in roles:
        return "role_not_selected"
    if not record["question"].strip():
        return "empty_question"
    if not references:
        return "empty_answer"
    return None


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: Path | None):
    """The tokenizer that counts lengths: `path`, or the Qwen3 tokenizer the tiny model uses
    (loaded once per process)."""
    from transformers import AutoTokenizer

    if path is None:
        from tools.common.tiny_model_files import locate_tokenizer_files

        path = locate_tokenizer_files()
    logger.info("counting tokens with the tokenizer in %s", path)
    return AutoTokenizer.from_pretrained(path)


def drop_long_samples(
    samples: list[Sample], tokenizer, max_tokens: int, max_source_tokens: int, report: Report
) -> list[Sample]:
    """Keep the samples within both limits, counting the others in `report`.

    Counts the tokens of the text itself (system + question as the source, plus the answer for the
    total); the chat template adds a few markup tokens per turn on top (about 5 for Qwen)."""

    def lengths(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    systems = sorted({sample.system for sample in samples})
    system_len = dict(zip(systems, lengths(systems), strict=True))
    question_len = lengths([s.question for s in samples])
    answer_len = lengths([s.answer for s in samples])
    kept = []
    for sample, q_len, a_len in zip(samples, question_len, answer_len, strict=True):
        source = system_len[sample.system] + q_len
        if max_source_tokens and source > max_source_tokens:
            report.drop("too_long_source", sample.where)
        elif max_tokens and source + a_len > max_tokens:
            report.drop("too_long", sample.where)
        else:
            kept.append(sample)
    return kept


def convert(args: argparse.Namespace) -> Report:
    """Run the conversion described by the parsed command line; return its report."""
    profiles = load_profiles(args.profiles) if args.profiles else None
    if (
        profiles is not None
        and args.roles
        and (unknown := [r for r in args.roles if r not in profiles])
    ):
        raise ConversionError(
            args.profiles, f"unknown roles {unknown}; known roles: {sorted(profiles)}"
        )
    report = Report(source=", ".join(str(path) for path in args.inputs))
    lines = read_lines(args.inputs, args.skip_broken, report)
    data_roles = sorted(
        {
            line.value["role"]
            for _, line in lines
            if isinstance(line.value, dict) and isinstance(line.value.get("role"), str)
        }
    )
    lang, lang_note = choose_language(args.lang, data_language(lines), profiles)
    if profiles is None:
        # No descriptions (RoleBench English ships none): every role of the data, persona from the
        # name.
        profiles = {role: None for role in data_roles}
        logger.warning(
            "no --profiles: the persona of each of %d roles is built from its name alone",
            len(profiles),
        )
    known = sorted(profiles)
    roles = None
    if args.roles:
        unknown = [role for role in args.roles if role not in profiles]
        if unknown:
            raise ConversionError(
                args.profiles or report.source, f"unknown roles {unknown}; known roles: {known}"
            )
        roles = set(args.roles)
    report.extra.update(
        {
            "unit": "sample = question x chosen reference",
            "lang": lang,
            "lang_choice": lang_note,
            "k": args.k,
            "seed": args.seed,
            "roles": sorted(roles or profiles),
            "known_roles": known,
            "persona": {
                role: "name only (no description)"
                if profiles[role] is None
                else "profile description"
                for role in sorted(roles or profiles)
            },
            "max_tokens": args.max_tokens,
            "max_source_tokens": args.max_source_tokens,
            "format": args.format,
        }
    )
    if missing := sorted(set(data_roles) - set(profiles)):
        report.extra["roles_without_profile"] = missing
        logger.warning(
            "roles in the data without a profile (dropped as unknown_role): %s; known roles: %s",
            missing,
            known,
        )
    samples = collect_samples(lines, profiles, lang, roles, args.k, args.seed, report)
    if samples and (args.max_tokens or args.max_source_tokens):
        samples = drop_long_samples(
            samples, load_tokenizer(args.tokenizer), args.max_tokens, args.max_source_tokens, report
        )
    if not samples:
        raise ConversionError(
            report.source, f"no sample left ({report.summary_line()}); known roles: {known}"
        )
    report.keep(len(samples))
    records = [make_record(args.format, s.question, s.answer, s.system) for s in samples]
    publish(args.out_dir, [DatasetOutput(args.name, records, report)], args.format)
    return report


def choose_language(
    requested: str, from_data: str | None, profiles: dict[str, str] | None
) -> tuple[str, str]:
    """The language of the persona prompt and address forms, and how it was chosen. `auto` follows
    the data (or, without data, the profiles); a disagreement between what was asked, the data and
    the profiles is logged as a warning and kept in the report."""
    from_profiles = None
    if profiles:
        descriptions = [d for d in profiles.values() if d]
        from_profiles = (
            "zh" if sum(1 for d in descriptions if CJK.search(d)) * 2 > len(descriptions) else "en"
        )
    if requested != "auto":
        lang, note = requested, "--lang"
    elif from_data:
        lang, note = from_data, "from the data"
    elif from_profiles:
        lang, note = from_profiles, "from the profiles"
    else:
        lang, note = "zh", "default (no data, no profiles)"
    for what, found in (("data", from_data), ("profiles", from_profiles)):
        if found and found != lang:
            logger.warning(
                "the %s look %s but the persona language is %s (%s)", what, found, lang, note
            )
            note += f"; warning: the {what} look {found}"
    return lang, note


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.rolebench",
        description="Convert RoleBench JSONL (role-specific and general, zh or en) and its profile "
        "descriptions into a LLaMA-Factory SFT dataset with the RoleGPT persona prompt as system. "
        "Writes OUT_DIR/NAME.json, OUT_DIR/NAME.report.json and registers NAME in "
        "OUT_DIR/dataset_info.json (merged with what is there).",
    )
    parser.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="RoleBench JSONL files"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        help="profile descriptions, a JSON object role -> description (profiles-zh/desc.json); "
        "without it every role of the data gets a persona built from its name alone",
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="output folder (dataset_dir for LLaMA-Factory)"
    )
    parser.add_argument(
        "--name",
        required=True,
        type=dataset_name_arg,
        help="dataset name, an identifier (e.g. rolebench_zh)",
    )
    parser.add_argument(
        "--lang",
        choices=["auto", *sorted(PERSONA_TEMPLATES)],
        default="auto",
        help="language of the persona prompt and address forms; auto follows the data, a "
        "disagreement with the data or profiles is warned about (default: %(default)s)",
    )
    parser.add_argument(
        "--roles", nargs="+", help="keep only these roles (names from the profile file)"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=1,
        help="references per question, chosen at random without repetition (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the reference choice (default: %(default)s)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=512,
        help="skip samples whose system + question + answer exceed this many tokens; "
        "0 turns it off (default: %(default)s, the published max length)",
    )
    parser.add_argument(
        "--max-source-tokens",
        type=int,
        default=256,
        help="skip samples whose system + question exceed this many tokens; 0 turns it off "
        "(default: %(default)s, the published source length)",
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        help="tokenizer folder that counts tokens (default: the tiny model's Qwen3 tokenizer)",
    )
    parser.add_argument(
        "--skip-broken",
        action="store_true",
        help="drop and count broken JSON lines instead of stopping with file:line (default: stop)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="alpaca", help="output format (default: %(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 0 with the summary line, or 2 with `file: reason` on
    stderr."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Convert and write the dataset, print its summary; 2 with `file: reason` on bad input."""
    try:
        report = convert(args)
    except (ConversionError, ProfilesError, NotTextError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary_line())
    print(f"language {report.extra['lang']} ({report.extra['lang_choice']})")
    if name_only := [
        r for r, how in report.extra["persona"].items() if how.startswith("name only")
    ]:
        print(
            "persona built from the role name alone (no description) for "
            f"{len(name_only)} roles: {name_only}"
        )
    print(
        f"wrote {args.out_dir / (args.name + '.json')} (registered as {args.name!r} in "
        f"{args.out_dir / 'dataset_info.json'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
