"""How the series loader reads one file of a data directory, whatever is on the disk.

Only regular files are read: a FIFO, a device, a socket or a directory in a file's place is
refused by name before it is opened (and checked again on the open descriptor, which is opened
non-blocking, so a FIFO swapped in between can never block). A file larger than the per-file
limit is refused before it is read, and never more than the limit is read. A path whose real
location lies outside the data directory (through a symlink) is refused unless the policy
allows it. JSON is UTF-8, a leading byte-order mark accepted; nesting too deep to parse, numbers
Python will not convert and lone surrogate escapes are refused. A .npy file is checked from its
header (version, dtype, shape, and that the data fill the file exactly) before numpy loads it,
with pickles disallowed. Every refusal is a SeriesError naming the file and the reason.
"""

import io
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Large enough for any file of the release (its largest is ~2.3 MB), small enough that a
# stray huge file cannot exhaust memory.
DEFAULT_MAX_FILE_MB = 128.0
# A JSON text can only hold a lone surrogate through a \uD800-\uDFFF escape.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SHOWN_CHARS = 60


class SeriesError(ValueError):
    """A series on disk is malformed; names the file, where in it, and why."""

    def __init__(self, path: Path | str, reason: str, where: str | None = None):
        self.path, self.reason, self.where = Path(path), reason, where
        location = f"{self.path}: {where}" if where else str(self.path)
        super().__init__(f"{location}: {reason}")


@dataclass(frozen=True)
class ReadPolicy:
    """What the loader agrees to read: the per-file size limit, and whether symlinks may lead
    out of the data directory."""

    max_file_bytes: int = int(DEFAULT_MAX_FILE_MB * 2**20)
    allow_outside_links: bool = False


DEFAULT_POLICY = ReadPolicy()


def show(value: object) -> str:
    """repr of a value from a file, cut short: messages must stay small whatever the file holds."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text)} chars)"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class DataDir:
    """Reads files under one data directory by the rules of a ReadPolicy."""

    def __init__(self, base: Path | str, policy: ReadPolicy = DEFAULT_POLICY):
        self.base, self.policy = Path(base), policy
        self._real_base = None

    def check_inside(self, path: Path) -> None:
        """Refuse `path` when its real location lies outside the data directory."""
        if self.policy.allow_outside_links:
            return
        try:
            if self._real_base is None:
                self._real_base = self.base.resolve()
            real = path.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
            raise SeriesError(path, f"cannot resolve the path ({e})") from None
        if not real.is_relative_to(self._real_base):
            raise SeriesError(
                path,
                f"a symlink leads outside the data directory {self.base} (to {real}); "
                "pass --allow-outside-links to follow it",
            )

    def is_dir(self, path: Path) -> bool:
        """Whether `path` is a directory the loader may read (inside the data directory)."""
        if not path.is_dir():
            return False
        self.check_inside(path)
        return True

    def list_dir(self, path: Path) -> list[Path]:
        """The entries of a directory, sorted by name."""
        self.check_inside(path)
        try:
            return sorted(path.iterdir())
        except OSError as e:
            raise SeriesError(path, f"cannot list the directory: {e.strerror or e}") from None

    def read_bytes(self, path: Path) -> bytes:
        """The whole content of a regular file within the size limit."""
        self.check_inside(path)
        limit = self.policy.max_file_bytes
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                raise SeriesError(
                    path, f"{_kind(info.st_mode)}, not a regular file; only regular files are read"
                )
            self._check_size(path, info.st_size)
            fd = os.open(
                path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
            )
            with os.fdopen(fd, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if not stat.S_ISREG(mode):  # replaced between the stat and the open
                    raise SeriesError(
                        path, f"{_kind(mode)}, not a regular file; only regular files are read"
                    )
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise SeriesError(
                path, "file is missing" + (" (a broken symlink)" if path.is_symlink() else "")
            ) from None
        except OSError as e:
            raise SeriesError(path, f"cannot read the file: {e.strerror or e}") from None
        self._check_size(path, len(data))
        return data

    def _check_size(self, path: Path, size: int) -> None:
        limit = self.policy.max_file_bytes
        if size > limit:
            raise SeriesError(
                path,
                f"larger than the per-file limit of {limit / 2**20:g} MiB "
                f"({size} bytes or more); raise --max-file-mb to read it",
            )

    def read_json(self, path: Path):
        """A JSON file's value."""
        raw = self.read_bytes(path)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SeriesError(path, f"not UTF-8 ({e.reason} at byte {e.start})") from None
        try:
            data = json.loads(text)
            if SURROGATE_ESCAPE.search(text):
                json.dumps(data, ensure_ascii=False).encode("utf-8")
        except json.JSONDecodeError as e:
            raise SeriesError(
                path, f"malformed JSON: {e.msg}", f"line {e.lineno} column {e.colno}"
            ) from None
        except RecursionError:
            raise SeriesError(path, "malformed JSON: nested too deeply to read") from None
        except UnicodeEncodeError:
            raise SeriesError(
                path,
                "malformed JSON: a string holds a lone surrogate (a \\uD800-\\uDFFF escape "
                "without its pair)",
            ) from None
        except ValueError as e:  # e.g. an integer with more digits than Python converts
            raise SeriesError(path, f"malformed JSON: {e}") from None
        return data

    def read_npy(self, path: Path) -> np.ndarray:
        """A 2-D float array from a .npy file, its header checked against the file before
        loading."""
        raw = self.read_bytes(path)
        with io.BytesIO(raw) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise SeriesError(path, f"unsupported .npy format version {version}")
            except (ValueError, OSError, EOFError, SyntaxError) as e:
                raise SeriesError(path, f"not a readable .npy array ({e})") from None
            if not (len(shape) == 2 and shape[1] > 0 and np.issubdtype(dtype, np.floating)):
                raise SeriesError(
                    path, f"expected a 2-D float array, got shape {shape} dtype {dtype}"
                )
            expected = shape[0] * shape[1] * dtype.itemsize
            if len(raw) - f.tell() != expected:
                raise SeriesError(
                    path,
                    f"holds {len(raw) - f.tell()} bytes of data but its header ({shape} {dtype}) "
                    f"needs {expected}: truncated or padded",
                )
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise SeriesError(path, f"not a readable .npy array ({e})") from None
