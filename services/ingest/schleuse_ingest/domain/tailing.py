"""Reading daily JSONL files safely: where to resume, complete lines only, rotation and truncation."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

FILE_PATTERN = re.compile(r"^calls-(\d{4})-(\d{2})-(\d{2})\.jsonl$")
FINGERPRINT_BYTES = 256
MAX_LINE_BYTES = 1 << 20


class Resume(StrEnum):
    """Why reading starts where it does."""

    NEW = "new"
    CONTINUE = "continue"
    TRUNCATED = "truncated"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class FileCursor:
    """What is remembered about a file, committed with the rows read from it."""

    name: str
    inode: int
    offset: int
    fingerprint: str
    fingerprint_len: int


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line (without its newline) and the offset just after it."""

    data: bytes
    start: int
    end: int


def file_day(name: str) -> date | None:
    """The day a `calls-YYYY-MM-DD.jsonl` file belongs to, None for other names."""
    match = FILE_PATTERN.match(name)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def fingerprint(head: bytes) -> str:
    """Digest of a file's first bytes, to tell a replaced file from the one we read."""
    return hashlib.sha256(head).hexdigest()


def resume_at(cursor: FileCursor | None, *, inode: int, size: int, head: bytes) -> tuple[int, Resume]:
    """The offset to continue from: the remembered one, or 0 if the file is new, shrank or was replaced."""
    if cursor is None:
        return 0, Resume.NEW
    if size < cursor.offset:
        return 0, Resume.TRUNCATED
    if inode != cursor.inode or fingerprint(head[: cursor.fingerprint_len]) != cursor.fingerprint:
        return 0, Resume.REPLACED
    return cursor.offset, Resume.CONTINUE


def advance(name: str, inode: int, head: bytes, offset: int) -> FileCursor:
    """The cursor after reading up to `offset`; the fingerprint covers what exists of the first bytes."""
    length = min(len(head), FINGERPRINT_BYTES, offset)
    return FileCursor(name, inode, offset, fingerprint(head[:length]), length)


def split_lines(chunk: bytes, start: int, *, final: bool = False) -> tuple[list[Line], int]:
    """Complete lines of `chunk` (read at `start`) and the offset after the last one.

    A trailing fragment without newline is left for the next read unless `final` (the writer is
    done with the file) or it exceeds MAX_LINE_BYTES; blank lines are consumed but not returned.
    """
    lines: list[Line] = []
    pos = 0
    end = len(chunk)
    while pos < end:
        nl = chunk.find(b"\n", pos)
        if nl < 0:
            if final or end - pos > MAX_LINE_BYTES:
                _append(lines, chunk[pos:end], start + pos, start + end)
                pos = end
            break
        _append(lines, chunk[pos:nl], start + pos, start + nl + 1)
        pos = nl + 1
    return lines, start + pos


def _append(lines: list[Line], data: bytes, start: int, end: int) -> None:
    data = data.rstrip(b"\r")
    if data.strip():
        lines.append(Line(data, start, end))
