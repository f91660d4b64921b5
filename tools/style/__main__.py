"""Command line of the style classifier: `python -m tools.style <command> --help`.

Commands: samples (write the shipped sample set), convert (question/answer pairs → contract
records), validate (report on a contract file), train (HF Trainer from a recipe), predict (JSONL →
JSONL with probabilities), serve (HTTP service). Exit status 2 on bad input, with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from plugins.style.labels import DEFAULT_LABELS, LabelSet
from tools.common.fileio import atomic_write_json

logger = logging.getLogger(__name__)


def _labels_of(recipe: Path | None) -> LabelSet:
    """The label set a recipe declares (its `labels:` key), or the default five."""
    from tools.style.train import read_recipe

    if recipe is None:
        return DEFAULT_LABELS
    return LabelSet.from_spec(read_recipe(recipe).get("labels"))


def _finish_report(report, out: Path | None) -> None:
    print(report.summary_line())
    print(json.dumps({"class_counts": report.extra["class_counts"]}, ensure_ascii=False))
    for reason, examples in sorted(report.examples.items()):
        print(f"  {reason}: {', '.join(examples)}")
    if out is not None:
        atomic_write_json(out, report.as_dict())


def cmd_samples(args) -> int:
    from tools.style.data import write_records
    from tools.style.samples import generate_samples

    records = generate_samples(args.per_class, args.seed)
    write_records(args.out, records)
    print(f"{args.out}: {len(records)} records ({args.per_class} per class, seed {args.seed})")
    return 0


def cmd_convert(args) -> int:
    from tools.style.data import convert_pairs, write_records

    records, report = convert_pairs(
        args.input,
        _labels_of(args.recipe),
        question_key=args.question_key,
        answer_key=args.answer_key,
        label_key=args.label_key,
        fixed_label=args.label,
    )
    _finish_report(report, args.report)
    if not records:
        print(
            f"error: {args.input}: no record could be converted; nothing written", file=sys.stderr
        )
        return 2
    write_records(args.out, records)
    print(f"wrote {args.out}")
    return 0


def cmd_validate(args) -> int:
    from tools.style.data import check_records

    _, report = check_records(args.input, _labels_of(args.recipe))
    _finish_report(report, args.report)
    return 1 if report.dropped or not report.records_out else 0


def cmd_train(args) -> int:
    from tools.style.train import load_recipe, train

    style, training = load_recipe(args.recipe, args.overrides)
    report = train(style, training)
    baseline = report["majority_baseline"]
    print(
        f"{training.output_dir}: eval accuracy {report['accuracy']:.3f}, macro F1 "
        f"{report['macro_f1']:.3f} "
        f"(majority baseline: accuracy {baseline['accuracy']:.3f}, macro F1 "
        f"{baseline['macro_f1']:.3f})"
    )
    if report["note"]:
        print(f"note: {report['note']}")
    return 0


def cmd_predict(args) -> int:
    from tools.style.predict import predict_file

    summary = predict_file(args.model, args.input, args.out, batch_size=args.batch_size)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def cmd_serve(args) -> int:
    from tools.style.server import serve

    serve(args.model, args.host, args.port, args.max_batch, args.max_body_bytes, args.batch_size)
    return 0


def _command(commands, name: str, summary: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=summary, description=summary)


def build_parser() -> argparse.ArgumentParser:
    from tools.style.server import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="python -m tools.style",
        description="Style classifier (售前/售后/诚实/有帮助/无伤害 by default): data, training, "
        "prediction, service.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(commands, "samples", "write the shipped balanced sample set (seeded)")
    p.add_argument(
        "--out", type=Path, default=Path("data/style/samples.jsonl"), help="(default: %(default)s)"
    )
    p.add_argument(
        "--per-class", type=int, default=60, help="records per style (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.set_defaults(handler=cmd_samples)

    recipe_help = (
        "take the label set from this recipe's `labels:` (default: the five default styles)"
    )
    p = _command(
        commands,
        "convert",
        "question/answer JSONL → contract records {input, label, label_english, metadata}",
    )
    p.add_argument(
        "--in",
        dest="input",
        metavar="FILE",
        type=Path,
        required=True,
        help="JSONL of question/answer pairs",
    )
    p.add_argument(
        "--out", metavar="FILE", type=Path, required=True, help="contract JSONL to write"
    )
    p.add_argument(
        "--label", help="label every record with this style instead of reading --label-key"
    )
    p.add_argument("--question-key", default="question", help="(default: %(default)s)")
    p.add_argument("--answer-key", default="answer", help="(default: %(default)s)")
    p.add_argument("--label-key", default="label", help="(default: %(default)s)")
    p.add_argument("--recipe", metavar="YAML", type=Path, help=recipe_help)
    p.add_argument(
        "--report", metavar="FILE", type=Path, help="also write the counts report as JSON here"
    )
    p.set_defaults(handler=cmd_convert)

    p = _command(
        commands,
        "validate",
        "report unknown labels, duplicates, bad lines and class counts; exit 1 on problems",
    )
    p.add_argument(
        "--in", dest="input", metavar="FILE", type=Path, required=True, help="contract JSONL"
    )
    p.add_argument("--recipe", metavar="YAML", type=Path, help=recipe_help)
    p.add_argument("--report", metavar="FILE", type=Path, help="also write the report as JSON here")
    p.set_defaults(handler=cmd_validate)

    p = _command(commands, "train", "train with the HF Trainer from a YAML recipe")
    p.add_argument("--recipe", type=Path, required=True, help="recipes/style/<name>.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override recipe keys, e.g. num_train_epochs=1",
    )
    p.set_defaults(handler=cmd_train)

    p = _command(
        commands, "predict", "predict a JSONL file ({input} or {question, answer} per line)"
    )
    p.add_argument("--model", metavar="DIR", required=True, help="directory written by `train`")
    p.add_argument(
        "--in", dest="input", metavar="FILE", type=Path, required=True, help="JSONL to score"
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        required=True,
        help="JSONL to write: each record plus `prediction`",
    )
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.set_defaults(handler=cmd_predict)

    p = _command(commands, "serve", "HTTP service: GET /health, POST /predict, POST /predict_batch")
    p.add_argument("--model", metavar="DIR", required=True, help="directory written by `train`")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="(default: %(default)s; 0.0.0.0 exposes it to the network)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="(default: %(default)s; 0 picks a free one)"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help="items per /predict_batch request (default: %(default)s)",
    )
    p.add_argument(
        "--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="(default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass (default: %(default)s)"
    )
    p.set_defaults(handler=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; 2 with the reason on bad input."""
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as e:
        # StyleDataError is a ValueError; its message already names the file, line and reason.
        logger.debug("failed", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
