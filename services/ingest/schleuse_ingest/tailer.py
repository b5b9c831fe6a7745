"""Tails `calls-YYYY-MM-DD.jsonl` files: complete lines only, resumes at committed offsets, survives rotation."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from schleuse_common.db import Database
from schleuse_ingest import store
from schleuse_ingest.domain.retention import day_of
from schleuse_ingest.domain.tailing import (
    FINGERPRINT_BYTES,
    FileCursor,
    Line,
    Resume,
    advance,
    file_day,
    resume_at,
    split_lines,
)
from schleuse_ingest.ingestor import Ingestor, RawEvent

log = structlog.get_logger("schleuse.ingest.tailer")
SOURCE = "file"


@dataclass(frozen=True, slots=True)
class _Seen:
    inode: int
    size: int
    mtime_ns: int


class Tailer:
    """Polls a directory; each batch of lines is committed with the file's new offset."""

    def __init__(
        self,
        directory: Path,
        db: Database,
        ingestor: Ingestor,
        *,
        batch_lines: int = 5000,
        chunk_bytes: int = 4 << 20,
        settle_s: float = 300.0,
    ) -> None:
        self.directory = directory
        self.db = db
        self.ingestor = ingestor
        self.batch_lines = batch_lines
        self.chunk_bytes = chunk_bytes
        self.settle_s = settle_s
        self._cursors: dict[str, FileCursor | None] = {}
        self._seen: dict[str, _Seen] = {}

    async def run(self, interval_s: float) -> None:
        """Poll forever; a failing file is retried on the next round."""
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a database outage must not end tailing; the next round retries
                log.warning("tailer.poll_failed", error=type(e).__name__)
                self._cursors.clear()
                self._seen.clear()
                await asyncio.sleep(1.0)
            await asyncio.sleep(interval_s)

    async def poll(self) -> int:
        """Read every daily file up to its last complete line; returns the number of lines read."""
        total = 0
        for path in sorted(self.directory.glob("calls-*.jsonl")):
            if file_day(path.name) is not None:
                total += await self.read_file(path)
        return total

    def forget(self, name: str) -> None:
        """Drop what is cached about a file (deleted by the purge)."""
        self._cursors.pop(name, None)
        self._seen.pop(name, None)

    async def read_file(self, path: Path) -> int:
        """Read new complete lines of one file in batches, each committed with its offset."""
        name = path.name
        try:
            st = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            self.forget(name)
            return 0
        seen = _Seen(st.st_ino, st.st_size, st.st_mtime_ns)
        if self._seen.get(name) == seen and not self._settles(name, st.st_mtime_ns):
            return 0
        if name not in self._cursors:
            async with self.db.session() as session:
                self._cursors[name] = await store.load_cursor(session, name)
        lines_read = await self._consume(path, name)
        self._seen[name] = seen
        return lines_read

    def _settles(self, name: str, mtime_ns: int) -> bool:
        """A past day's file that has been idle for settle_s: its last line may lack a newline."""
        day = file_day(name)
        now = datetime.now(UTC)
        return day is not None and day < day_of(now) and time.time() - mtime_ns / 1e9 >= self.settle_s

    async def _consume(self, path: Path, name: str) -> int:
        lines_read = 0
        while True:
            chunk = await asyncio.to_thread(self._read, path, name)
            if chunk is None:
                return lines_read
            inode, head, start, data, final, reason = chunk
            if reason in (Resume.TRUNCATED, Resume.REPLACED):
                log.info("tailer.restart_file", file=name, reason=reason.value)
            lines, consumed = split_lines(data, start, final=final)
            if consumed == start:
                return lines_read
            lines_read += await self._commit_batches(name, inode, head, lines, consumed)
            if len(data) < self.chunk_bytes:
                return lines_read

    async def _commit_batches(self, name: str, inode: int, head: bytes, lines: list[Line], consumed: int) -> int:
        """Commit batches in file order; the next batch is validated in a thread while one commits."""
        parts: list[tuple[list[RawEvent], FileCursor]] = []
        for i in range(0, max(len(lines), 1), self.batch_lines):
            part = lines[i : i + self.batch_lines]
            end = part[-1].end if part and i + self.batch_lines < len(lines) else consumed
            events = [RawEvent(line.data, name, line.start, SOURCE) for line in part]
            parts.append((events, advance(name, inode, head, end)))
        pending = asyncio.ensure_future(asyncio.to_thread(self.ingestor.prepare, parts[0][0]))
        try:
            for k, (_events, cursor) in enumerate(parts):
                prepared = await pending
                if k + 1 < len(parts):
                    pending = asyncio.ensure_future(asyncio.to_thread(self.ingestor.prepare, parts[k + 1][0]))
                await self.ingestor.commit(prepared, kind="file", cursor=cursor)
                self._cursors[name] = cursor
        finally:
            pending.cancel()
        return len(lines)

    def _read(self, path: Path, name: str) -> tuple[int, bytes, int, bytes, bool, Resume] | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            head = os.pread(fd, FINGERPRINT_BYTES, 0)
            start, reason = resume_at(self._cursors.get(name), inode=st.st_ino, size=st.st_size, head=head)
            if start >= st.st_size:
                return None
            data = os.pread(fd, self.chunk_bytes, start)
            final = len(data) < self.chunk_bytes and self._settles(name, st.st_mtime_ns)
            return st.st_ino, head, start, data, final, reason
        finally:
            os.close(fd)
