"""File helpers every command shares: atomic writes, JSONL reading that names bad lines,
and the in/out/dropped-per-reason report that converters print and save.

Not a command itself; imported by the other modules in tools/.
"""

import collections
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tools.text_input import read_text

# How many offending records a report names per reason (the counts stay exact).
EXAMPLES_PER_REASON = 5


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and a rename,
    so a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are shared on a cluster
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """`atomic_write_bytes` of `text` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj, indent: int | None = 1) -> None:
    """`atomic_write_text` of `obj` as UTF-8 JSON (non-ASCII kept readable)."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


@dataclass
class JsonlRecord:
    """One line of a JSONL file: the parsed value, or the reason it could not be parsed."""

    line_no: int
    value: object = None
    error: str | None = None


def read_jsonl(path: Path | str) -> Iterator[JsonlRecord]:
    """Yield every non-blank line of a JSONL file, parsed; broken lines come back with
    `error` set instead of raising, so a converter can count and name them. A file that is missing
    or not UTF-8 raises tools.text_input.NotTextError (a UTF-8 byte-order mark is accepted)."""
    with io.StringIO(read_text(path), newline=None) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield JsonlRecord(line_no, json.loads(line))
            except json.JSONDecodeError as e:
                yield JsonlRecord(line_no, error=f"broken JSON at column {e.colno}: {e.msg.removesuffix(' at')}")


def json_objects(path: Path | str, report: "Report") -> Iterator[tuple[int, str, dict]]:
    """Yield (line number, 'file:line', object) for every JSON object line of a JSONL file; count
    each line as seen, and drop broken lines and non-objects into `report` with their location."""
    for record in read_jsonl(path):
        report.seen()
        where = f"{path}:{record.line_no}"
        if record.error:
            report.drop("broken JSON", f"{where}: {record.error}")
        elif not isinstance(record.value, dict):
            report.drop("not a JSON object", where)
        else:
            yield record.line_no, where, record.value


@dataclass
class Report:
    """Counts of a conversion: records in, out, and dropped per reason with examples.

    Every record read is either kept (`keep`) or dropped with a reason (`drop`), so
    `records_in == records_out + sum(dropped)` always holds and nothing vanishes silently."""

    source: str
    records_in: int = 0
    records_out: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    examples: dict = field(default_factory=lambda: collections.defaultdict(list))
    extra: dict = field(default_factory=dict)

    def seen(self, n: int = 1) -> None:
        self.records_in += n

    def keep(self, n: int = 1) -> None:
        self.records_out += n

    def drop(self, reason: str, where: str) -> None:
        """Count one record dropped for `reason`; `where` names it (e.g. 'file.jsonl:12')."""
        self.dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(where)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_examples": {k: v for k, v in sorted(self.examples.items())},
            **self.extra,
        }

    def summary_line(self) -> str:
        """One line for the terminal: in, out, and each drop reason with its count."""
        drops = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dropped.items())) or "none"
        return f"{self.source}: {self.records_in} in, {self.records_out} out; dropped: {drops}"
