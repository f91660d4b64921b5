"""Decode an input file as UTF-8 text, or say exactly why it is not.

Every converter reads its files through `read_text` (tools.common.fileio.read_jsonl uses it for
JSONL), so
a file that is not UTF-8 is refused the same way everywhere: the message names the file, the byte
offset of the first bad byte and the encoding the bytes most likely are (UTF-16 with or without a
byte-order mark, GBK/GB18030, binary data). A UTF-8 byte-order mark is accepted and removed.
Not a command itself.
"""

from __future__ import annotations

import codecs
from pathlib import Path

UTF8_BOM = codecs.BOM_UTF8


class NotTextError(ValueError):
    """An input that is missing, unreadable or not UTF-8 text; the message names the file and
    why."""


def guess_encoding(data: bytes) -> str:
    """A short phrase for what undecodable bytes most likely are."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        order = "LE" if data.startswith(codecs.BOM_UTF16_LE) else "BE"
        return f"UTF-16 {order} (byte-order mark {data[:2].hex(' ').upper()})"
    head = data[:4096]
    if head and head.count(0) * 4 >= len(head):
        # Text in UTF-16 without a mark has a zero byte in every other position (ASCII range).
        pairs = len(head) // 2 or 1
        zeros_odd = sum(1 for i in range(1, len(head), 2) if head[i] == 0) / pairs
        zeros_even = sum(1 for i in range(0, len(head), 2) if head[i] == 0) / pairs
        if max(zeros_odd, zeros_even) >= 0.4 and min(zeros_odd, zeros_even) < 0.1:
            return f"UTF-16 {'LE' if zeros_odd > zeros_even else 'BE'} without a byte-order mark"
        return "binary data (many NUL bytes)"
    if 0 in head:
        return "binary data (NUL bytes)"
    try:
        decoded = data.decode("gb18030")
    except UnicodeDecodeError:
        return "binary data or an unknown encoding"
    if any("\u4e00" <= ch <= "\u9fff" for ch in decoded[:2000]):
        return "GBK/GB18030 (Chinese legacy encoding)"
    return "a legacy 8-bit encoding (e.g. Latin-1 or Windows-1252)"


def _line_column(data: bytes, offset: int) -> str:
    """'line L, byte B of the line' of a byte offset, 1-based."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    return f"line {line}, byte {offset - line_start + 1} of the line"


def decode(data: bytes, source: Path | str) -> str:
    """`data` as text (a leading UTF-8 byte-order mark removed); NotTextError naming `source`,
    the byte offset and the likely encoding when it is not UTF-8 text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotTextError(
            f"{source}: not UTF-8: byte offset 0 starts a {guess_encoding(data)}; "
            "convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        guess = guess_encoding(data)
        hint = " (e.g. iconv -f GB18030 -t UTF-8)" if guess.startswith("GBK") else ""
        raise NotTextError(
            f"{source}: not UTF-8: invalid byte 0x{data[e.start]:02x} at byte offset {e.start} "
            f"({_line_column(data, e.start)}); looks like {guess}{hint}"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        at = len(text[:nul].encode("utf-8"))
        raise NotTextError(
            f"{source}: not text: NUL byte at byte offset {at} ({_line_column(data, at)}); "
            f"looks like {guess_encoding(data)}"
        )
    return text.removeprefix("\ufeff")


def read_text(path: Path | str) -> str:
    """The file decoded by `decode`; NotTextError when it is missing, a folder or unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotTextError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotTextError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise NotTextError(f"{path}: cannot read ({e.strerror})") from None
    return decode(data, path)
