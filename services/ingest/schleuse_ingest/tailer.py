"""Tails `calls-YYYY-MM-DD.jsonl` files: complete lines only, resumes at committed offsets, survives rotation."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
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
        """Commit the new lines batch by batch, in file order, each with the offset after its last line.

        A pipeline: the next batch (possibly from the next chunk of the file, read ahead) is validated and
        encrypted in a thread while the current one commits; offsets still advance only at commit.
        """
        feed = self._batches(path, name)
        current = await anext(feed, None)
        if current is None:
            return 0
        pending = asyncio.ensure_future(asyncio.to_thread(self.ingestor.prepare, current[0]))
        lines_read = 0
        try:
            while current is not None:
                following = await anext(feed, None)
                prepared = await pending
                if following is not None:
                    pending = asyncio.ensure_future(asyncio.to_thread(self.ingestor.prepare, following[0]))
                events, cursor = current
                await self.ingestor.commit(prepared, kind="file", cursor=cursor)
                self._cursors[name] = cursor
                lines_read += len(events)
                current = following
        finally:
            pending.cancel()
            await feed.aclose()
        return lines_read

    async def _batches(self, path: Path, name: str) -> AsyncIterator[tuple[list[RawEvent], FileCursor]]:
        """Batches of complete lines from the committed offset on, with the cursor after each batch."""
        position = self._cursors.get(name)
        while True:
            chunk = await asyncio.to_thread(self._read_batches, path, position)
            if chunk is None:
                return
            batches, reason, last = chunk
            if reason in (Resume.TRUNCATED, Resume.REPLACED):
                log.info("tailer.restart_file", file=name, reason=reason.value)
            for batch in batches:
                position = batch[1]
                yield batch
            if last:
                return

    def _read_batches(
        self, path: Path, position: FileCursor | None
    ) -> tuple[list[tuple[list[RawEvent], FileCursor]], Resume, bool] | None:
        """One chunk of the file as batches (in a thread: splitting lines is CPU work); `last`: nothing follows."""
        chunk = self._read(path, position)
        if chunk is None:
            return None
        inode, head, start, data, final, reason = chunk
        lines, consumed = split_lines(data, start, final=final)
        if consumed == start:
            return None
        name = path.name
        batches = []
        for i in range(0, max(len(lines), 1), self.batch_lines):
            part = lines[i : i + self.batch_lines]
            end = part[-1].end if part and i + self.batch_lines < len(lines) else consumed
            events = [RawEvent(line.data, name, line.start, SOURCE) for line in part]
            batches.append((events, advance(name, inode, head, end)))
        return batches, reason, len(data) < self.chunk_bytes

    def _read(self, path: Path, position: FileCursor | None) -> tuple[int, bytes, int, bytes, bool, Resume] | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            head = os.pread(fd, FINGERPRINT_BYTES, 0)
            start, reason = resume_at(position, inode=st.st_ino, size=st.st_size, head=head)
            if start >= st.st_size:
                return None
            data = os.pread(fd, self.chunk_bytes, start)
            final = len(data) < self.chunk_bytes and self._settles(path.name, st.st_mtime_ns)
            return st.st_ino, head, start, data, final, reason
        finally:
            os.close(fd)
