"""File helpers every command shares: atomic writes, JSONL reading that names bad lines, the
in/out/dropped-per-reason report that converters print and save, and the resumable append-only
JSONL output (`AppendOnlyJsonl`) that traces, eval and regress write through under a lock.

Not a command itself; imported by the other modules in tools/.
"""

import collections
import fcntl
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.common.text_input import read_text

logger = logging.getLogger(__name__)

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
    or not UTF-8 raises tools.common.text_input.NotTextError (a UTF-8 byte-order mark is
    accepted)."""
    with io.StringIO(read_text(path), newline=None) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield JsonlRecord(line_no, json.loads(line))
            except json.JSONDecodeError as e:
                yield JsonlRecord(
                    line_no, error=f"broken JSON at column {e.colno}: {e.msg.removesuffix(' at')}"
                )


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


class OutputError(ValueError):
    """An output cannot be resumed as it is (a line that is no record, duplicated records); the
    message names the file, the line and the reason. Commands exit 2 on it."""


class OutputBusy(OutputError):
    """Another process holds the output's lock; `pid` is the holder's process id (None if
    unknown)."""

    def __init__(self, path: Path, pid: int | None):
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{path} is being written by {holder} (lock {lock_path(path)}); "
            "wait for it to finish or stop it, then rerun"
        )


def lock_path(path: Path | str) -> Path:
    """The lock file beside an output: `<output>.lock`, holding the writer's pid."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


class AppendOnlyJsonl:
    """A resumable append-only JSONL output held under an exclusive lock, one record per line.

    Use as a context manager: entering takes the lock (`OutputBusy` when another process holds
    it), then reads what an earlier run wrote: a torn last line (a kill mid-write) is cut off;
    a complete line that is not a JSON object with a key is refused (`OutputError` naming file and
    line); so are records with the same key (`OutputError` with the count), unless `dedupe` is
    set, in which case the file is rewritten atomically keeping the first record of each key.
    `keys` then holds the key of every record (and `records` the records, with `keep_records`);
    `append` writes one record as one whole line (fsync'ed with `durable`). Leaving releases the
    lock; the lock file stays (removing it would race with a process about to take it).

    `key(record)` returns the record's identity (e.g. its line index); it may raise KeyError or
    TypeError for a record without one, or OutputError / ValueError with its own reason (a record
    made with another configuration), which is reported at the record's file and line.
    """

    def __init__(
        self,
        path: Path | str,
        key: Callable[[dict], Hashable],
        *,
        dedupe: bool = False,
        keep_records: bool = False,
        durable: bool = False,
    ):
        self.path = Path(path)
        self.key = key
        self.dedupe = dedupe
        self.keep_records = keep_records
        self.durable = durable
        self.keys: set = set()
        self.records: dict = {}
        self._lock_fd: int | None = None
        self._file = None

    def __enter__(self) -> "AppendOnlyJsonl":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._load()
            self._file = self.path.open("a", encoding="utf-8")
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._unlock()

    def append(self, record: dict) -> None:
        """Write `record` as one line and remember its key."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())
        key = self.key(record)
        self.keys.add(key)
        if self.keep_records:
            self.records[key] = record

    def _lock(self) -> None:
        fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise OutputBusy(self.path, int(holder) if holder.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _load(self) -> None:
        if not self.path.exists():
            return
        good_bytes, kept, duplicates, first_duplicate = 0, [], 0, None
        with self.path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break  # torn: only the last line can be
                good_bytes += len(raw)
                if not raw.strip():
                    continue
                where = f"{self.path}:{number}"
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise OutputError(
                        f"{where}: not a record (broken JSON: {e.msg} at column {e.colno}); "
                        "refusing to append to this file"
                    ) from None
                except UnicodeDecodeError:
                    raise OutputError(
                        f"{where}: not a record (not UTF-8); refusing to append to this file"
                    ) from None
                if not isinstance(record, dict):
                    raise OutputError(
                        f"{where}: not a record (not a JSON object); refusing to append "
                        "to this file"
                    )
                try:
                    key = self.key(record)
                    hash(key)
                except (KeyError, TypeError) as e:
                    raise OutputError(
                        f"{where}: not a record of this output (no {e}); refusing to append "
                        "to this file"
                    ) from None
                except ValueError as e:
                    raise OutputError(f"{where}: {e}") from None
                if key in self.keys:
                    duplicates += 1
                    first_duplicate = first_duplicate or where
                    continue
                self.keys.add(key)
                if self.keep_records:
                    self.records[key] = record
                if self.dedupe:
                    kept.append(raw)
        size = self.path.stat().st_size
        if duplicates and not self.dedupe:
            raise OutputError(
                f"{self.path}: {duplicates} duplicated records (first at {first_duplicate}); "
                "refusing to append (rerun with --dedupe to keep the first of each)"
            )
        if duplicates:
            logger.warning(
                "%s: dropping %d duplicated records (kept the first of each)", self.path, duplicates
            )
            atomic_write_bytes(self.path, b"".join(kept))
        elif good_bytes < size:
            logger.warning(
                "%s: cutting off a torn last record (%d bytes)", self.path, size - good_bytes
            )
            with self.path.open("r+b") as f:
                f.truncate(good_bytes)


def duplicate_keys(path: Path | str, key: Callable[[dict], Hashable]) -> tuple[int, str | None]:
    """(how many records of a JSONL file repeat the key of an earlier record, 'file:line' of the
    first repeat). Lines that are not JSON objects with a key are not counted here (readers report
    them); the same rule `AppendOnlyJsonl` resumes by, for commands that only read an output."""
    seen, repeats, first = set(), 0, None
    for record in read_jsonl(path):
        if not isinstance(record.value, dict):
            continue
        try:
            identity = key(record.value)
            hash(identity)
        except (KeyError, TypeError, ValueError):
            continue
        if identity in seen:
            repeats += 1
            first = first or f"{path}:{record.line_no}"
        else:
            seen.add(identity)
    return repeats, first
