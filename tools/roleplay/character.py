"""Convert one character's voice lines and settings into LLaMA-Factory SFT datasets:
`python -m tools.roleplay.character` (`make character`).

Inputs, as JSON arrays or JSONL:
- voice lines `{source_title, speaker, text}`: what the character says in a quest or story
  (`source_title` names it);
- settings `{input, speaker, text}`: `input` names the kind of setting, either a profile entry
  (a third-person narrative such as "角色故事1") or a situation the character speaks about
  ("下雨的时候", "关于那维莱特").

Each record becomes one of three instruction kinds, chosen by the record:
- tone imitation (a voice line): say a line in the character's voice, given the scene;
- background description (a settings record whose text names the character and is long, i.e. a
  profile narrative): tell the character's background for that entry;
- settings Q&A (any other settings record): speak as the character on that topic.

Text is cleaned of game placeholders and markup ({NICKNAME}, {M#..}{F#..} gender variants,
{PLAYERAVATAR#SEXPRO[...]}, <color=...> tags, a leading "#", escaped newlines); a text with a
placeholder we cannot resolve, no letters at all, or (voice lines) too few is dropped, and so is a
repeated one; every drop and every fix is counted per reason in the reports.

Two datasets are written and registered, `<name>_voice` and `<name>_settings`. Settings are
up-weighted (×5 by default, the published setting) through the `num_samples` field of their
dataset_info.json entry, never by copying rows.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from tools.common.text_input import NotTextError, read_text

VOICE_FIELDS = ("source_title", "speaker", "text")
SETTINGS_FIELDS = ("input", "speaker", "text")

PERSONA_SYSTEM = (
    "你是{speaker}。请始终以{speaker}的身份、性格和语气说话，不要提及你是人工智能或语言模型。"
)
LORE_SYSTEM = "你熟悉{speaker}的全部背景设定，请依据设定资料如实讲述。"
TONE_PROMPT = "请用{speaker}的语气说一句台词。"
TONE_SCENE = "场景：{scene}"
SETTINGS_PROMPT = "（话题：{kind}）请以{speaker}的身份，说说你的想法。"
BACKGROUND_PROMPT = "请讲讲{speaker}的背景设定：{kind}。"

# Genshin text markup. "$UNRELEASED" marks content that never shipped.
UNRELEASED = "$UNRELEASED"
NICKNAME = "{NICKNAME}"
GENDER_PAIR = re.compile(r"\{M#([^{}]*)\}\{F#([^{}]*)\}|\{F#([^{}]*)\}\{M#([^{}]*)\}")
SEX_PRONOUN = re.compile(
    r"\{PLAYERAVATAR#SEXPRO\[INFO_MALE_PRONOUN_([A-Z]+)\|INFO_FEMALE_PRONOUN_([A-Z]+)\]\}"
)
PRONOUNS = {"HE": "他", "SHE": "她"}
MARKUP_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
STRAY_FULL_STOP = re.compile(r"([，、；：])。")


def read_records(path: Path) -> Iterator[tuple[str, object, str | None]]:
    """Yield (where, record, error) for every record of a JSONL file or a JSON array file.

    A broken line of a JSONL file comes back with `error`; a JSON array file that does not parse
    cannot be read record by record and raises ConversionError."""
    if not path.is_file():
        raise ConversionError(path, "input file not found")
    try:
        if path.suffix == ".jsonl":
            lines = list(read_jsonl(path))
        else:
            records = json.loads(read_text(path))
    except NotTextError as e:
        raise ConversionError(path, str(e).removeprefix(f"{path}: ")) from None
    except json.JSONDecodeError as e:
        raise ConversionError(
            path, f"broken JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    if path.suffix == ".jsonl":
        for line in lines:
            yield f"{path.name}:{line.line_no}", line.value, line.error
        return
    if not isinstance(records, list):
        raise ConversionError(path, "expected a JSON array of records (or a .jsonl file)")
    for index, record in enumerate(records, 1):
        yield f"{path.name}#{index}", record, None


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for its *.json and *.jsonl files in name order."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
            if not found:
                raise ConversionError(path, "folder holds no .json or .jsonl files")
            files.extend(found)
        else:
            files.append(path)
    return files


@dataclass
class TextCleaner:
    """Resolves game placeholders and strips markup; counts what it fixed in `fixes`."""

    traveler_name: str = "旅行者"
    traveler_gender: str = "male"
    fixes: collections.Counter = field(default_factory=collections.Counter)

    def _gender_pair(self, match: re.Match) -> str:
        if match.group(1) is not None:
            male, female = match.group(1), match.group(2)
        else:
            male, female = match.group(4), match.group(3)
        return male if self.traveler_gender == "male" else female

    def _pronoun(self, match: re.Match) -> str:
        code = match.group(1) if self.traveler_gender == "male" else match.group(2)
        # An unknown pronoun code stays in place and is caught as an unresolved placeholder.
        return PRONOUNS.get(code, match.group(0))

    def clean(self, text: str) -> tuple[str, str | None]:
        """Return (cleaned text, None), or (text, drop reason) when the text cannot be used."""
        if UNRELEASED in text:
            return text, "unreleased"
        steps = (
            ("leading_hash", lambda t: t[1:] if t.startswith("#") else t),
            ("nickname", lambda t: t.replace(NICKNAME, self.traveler_name)),
            ("gender_variant", lambda t: GENDER_PAIR.sub(self._gender_pair, t)),
            ("gender_pronoun", lambda t: SEX_PRONOUN.sub(self._pronoun, t)),
            ("markup_tag", lambda t: MARKUP_TAG.sub("", t)),
            ("escaped_newline", lambda t: t.replace("\\n", "\n")),
            # Line breaks flattened to "。" leave "，。" behind in some exports.
            ("stray_full_stop", lambda t: STRAY_FULL_STOP.sub(r"\1", t)),
        )
        for name, step in steps:
            fixed = step(text)
            if fixed != text:
                self.fixes[name] += 1
                text = fixed
        if PLACEHOLDER.search(text):
            return text, "unresolved_placeholder"
        text = text.replace("\xa0", " ").strip()
        if not text:
            return text, "empty_text"
        if not any(ch.isalnum() for ch in text):
            return text, "no_content"
        return text, None


def content_chars(text: str) -> int:
    """Letters and digits in `text` (CJK characters count; punctuation and spaces do not)."""
    return sum(ch.isalnum() for ch in text)


def is_background(speaker: str, text: str, min_chars: int) -> bool:
    """A profile narrative names the character in the third person and runs long; a voice prompt
    is short first-person speech. On Furina's settings the 9 profile entries are 313-829 characters
    and all name her; the voice prompts are at most 213 characters."""
    return speaker in text and len(text) >= min_chars


@dataclass
class Conversion:
    """Options of one run (the parsed command line, minus input and output paths)."""

    speakers: set[str] | None
    min_chars: int
    background_min_chars: int
    fmt: str
    cleaner: TextCleaner
    skip_broken: bool = False


def _validate(record, fields: tuple[str, ...], speakers: set[str] | None) -> str | None:
    if not isinstance(record, dict):
        return "not_an_object"
    if any(key not in record for key in fields):
        return "missing_field"
    if not all(isinstance(record[key], str) for key in fields):
        return "wrong_type"
    # The text is checked after cleaning; a scene title may be empty.
    if any(not record[key].strip() for key in fields if key in ("speaker", "input")):
        return "empty_field"
    if speakers is not None and record["speaker"].strip() not in speakers:
        return "speaker_not_selected"
    return None


def _examples(
    files: list[Path],
    fields: tuple[str, ...],
    conv: Conversion,
    report: Report,
    seen_speakers: set[str],
) -> Iterator[tuple[str, dict]]:
    """Yield (where, cleaned record) for every usable record of `files`; count the rest in
    `report`."""
    for path in files:
        for where, record, error in tqdm(
            list(read_records(path)), desc=path.name, unit=" records", disable=None
        ):
            report.seen()
            if isinstance(record, dict) and isinstance(record.get("speaker"), str):
                seen_speakers.add(record["speaker"].strip())
            if error and not conv.skip_broken:
                raise ConversionError(
                    f"{path}:{where.rsplit(':', 1)[1]}",
                    f"{error} (--skip-broken drops such lines and counts them)",
                )
            reason = "broken_json" if error else _validate(record, fields, conv.speakers)
            if reason is None:
                text, reason = conv.cleaner.clean(record["text"])
            if reason:
                report.drop(reason, where)
                continue
            cleaned = {key: record[key].replace("\xa0", " ").strip() for key in fields}
            cleaned["text"] = text
            yield where, cleaned


def convert_voice(
    files: list[Path], conv: Conversion, seen_speakers: set[str]
) -> tuple[list[dict], Report]:
    """Voice lines → tone-imitation examples, cleaned, without too-short lines and repeats."""
    report = Report(source=", ".join(map(str, files)))
    records, seen = [], set()
    for where, rec in _examples(files, VOICE_FIELDS, conv, report, seen_speakers):
        if content_chars(rec["text"]) < conv.min_chars:
            report.drop("too_short", where)
            continue
        key = (rec["speaker"], rec["text"])
        if key in seen:
            report.drop("duplicate", where)
            continue
        seen.add(key)
        prompt = TONE_PROMPT.format(speaker=rec["speaker"])
        if rec["source_title"]:
            prompt += TONE_SCENE.format(scene=rec["source_title"])
        records.append(
            make_record(
                conv.fmt, prompt, rec["text"], PERSONA_SYSTEM.format(speaker=rec["speaker"])
            )
        )
    report.keep(len(records))
    report.extra["kinds"] = {"tone": len(records)}
    return records, report


def convert_settings(
    files: list[Path], conv: Conversion, seen_speakers: set[str]
) -> tuple[list[dict], Report]:
    """Settings → background-description and settings-Q&A examples, cleaned, without repeats."""
    report = Report(source=", ".join(map(str, files)))
    records, seen = [], set()
    kinds = collections.Counter()
    for where, rec in _examples(files, SETTINGS_FIELDS, conv, report, seen_speakers):
        key = (rec["speaker"], rec["input"], rec["text"])
        if key in seen:
            report.drop("duplicate", where)
            continue
        seen.add(key)
        speaker, kind = rec["speaker"], rec["input"]
        if is_background(speaker, rec["text"], conv.background_min_chars):
            kinds["background"] += 1
            system, prompt = (
                LORE_SYSTEM.format(speaker=speaker),
                BACKGROUND_PROMPT.format(speaker=speaker, kind=kind),
            )
        else:
            kinds["settings_qa"] += 1
            system, prompt = (
                PERSONA_SYSTEM.format(speaker=speaker),
                SETTINGS_PROMPT.format(speaker=speaker, kind=kind),
            )
        records.append(make_record(conv.fmt, prompt, rec["text"], system))
    report.keep(len(records))
    report.extra["kinds"] = dict(sorted(kinds.items()))
    return records, report


def convert(args: argparse.Namespace) -> list[DatasetOutput]:
    """Run the conversion described by the parsed command line; return what was published."""
    conv = Conversion(
        speakers=set(args.speaker) if args.speaker else None,
        min_chars=args.min_chars,
        background_min_chars=args.background_min_chars,
        fmt=args.format,
        cleaner=TextCleaner(args.traveler_name, args.traveler_gender),
        skip_broken=args.skip_broken,
    )
    seen_speakers: set[str] = set()
    outputs = []
    parts = (
        ("voice", args.voice_lines, convert_voice),
        ("settings", args.settings, convert_settings),
    )
    for part, paths, convert_part in parts:
        if not paths:
            continue
        conv.cleaner.fixes = collections.Counter()
        records, report = convert_part(expand_inputs(paths), conv, seen_speakers)
        report.extra["cleaned"] = dict(sorted(conv.cleaner.fixes.items()))
        report.extra.update(
            {
                "speakers": sorted(conv.speakers) if conv.speakers else "all",
                "min_chars": args.min_chars if part == "voice" else None,
                "format": args.format,
            }
        )
        outputs.append(DatasetOutput(f"{args.name}_{part}", records, report))
    if conv.speakers and conv.speakers - seen_speakers:
        raise ConversionError(
            ", ".join(map(str, args.voice_lines + args.settings)),
            f"no record has speaker {sorted(conv.speakers - seen_speakers)}; "
            f"speakers present: {sorted(seen_speakers)}",
        )
    for output in outputs:
        if not output.records:
            raise ConversionError(
                output.report.source, f"no record left ({output.report.summary_line()})"
            )
    settings = next((o for o in outputs if o.name.endswith("_settings")), None)
    if settings is not None:
        rows = len(settings.records)
        settings.num_samples = rows * args.settings_weight if args.settings_weight > 1 else None
        settings.report.extra["weighting"] = {
            "factor": args.settings_weight,
            "rows": rows,
            "num_samples": settings.num_samples,
            "how": "dataset_info.json num_samples = factor x rows: LLaMA-Factory takes every "
            "row once and draws the remaining (factor - 1) x rows with replacement; the file holds "
            "each row once",
        }
    publish(args.out_dir, outputs, args.format)
    return outputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.roleplay.character",
        description="Convert a character's voice lines ({source_title, speaker, text}) and "
        "settings ({input, speaker, text}) into two LLaMA-Factory SFT datasets, NAME_voice (tone "
        "imitation) and "
        "NAME_settings (background description and settings Q&A, up-weighted through num_samples), "
        "registered in OUT_DIR/dataset_info.json with a report each.",
    )
    parser.add_argument(
        "--voice-lines",
        type=Path,
        nargs="+",
        default=[],
        help="voice-line files (JSON array or JSONL) or folders of them",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        nargs="+",
        default=[],
        help="settings files (JSON array or JSONL) or folders of them",
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="output folder (dataset_dir for LLaMA-Factory)"
    )
    parser.add_argument(
        "--name",
        required=True,
        type=dataset_name_arg,
        help="dataset name prefix, an identifier (e.g. furina)",
    )
    parser.add_argument("--speaker", nargs="+", help="keep only records of these speakers")
    parser.add_argument(
        "--min-chars",
        type=int,
        default=4,
        help="drop voice lines with fewer letters or digits than this (default: %(default)s)",
    )
    parser.add_argument(
        "--settings-weight",
        type=int,
        default=5,
        help="weight of the settings dataset through num_samples (default: %(default)s, "
        "the published x5; 1 turns it off)",
    )
    parser.add_argument(
        "--background-min-chars",
        type=int,
        default=200,
        help="a settings text that names the speaker and is at least this long is a background "
        "description (default: %(default)s)",
    )
    parser.add_argument(
        "--traveler-name", default="旅行者", help="replaces {NICKNAME} (default: %(default)s)"
    )
    parser.add_argument(
        "--traveler-gender",
        choices=("male", "female"),
        default="male",
        help="which {M#..}{F#..} variant to keep (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-broken",
        action="store_true",
        help="drop and count broken JSONL lines instead of stopping with file:line (default: stop)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="alpaca", help="output format (default: %(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 0 with a summary line per dataset, or 2 with `file:
    reason`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.voice_lines and not args.settings:
        parser.error("give --voice-lines, --settings or both")
    if args.settings_weight < 1:
        parser.error("--settings-weight must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Convert and write the datasets, print a summary line each; 2 with `file: reason`."""
    try:
        outputs = convert(args)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for output in outputs:
        print(f"{output.name}: {output.report.summary_line()}")
        if output.num_samples:
            print(
                f"{output.name}: weighted x{args.settings_weight} as num_samples "
                f"{output.num_samples} "
                "in dataset_info.json (rows are not copied)"
            )
    print(f"registered {[o.name for o in outputs]} in {args.out_dir / 'dataset_info.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
