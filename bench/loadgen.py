"""A tiny keep-alive HTTP/1.1 load generator (asyncio streams): little overhead of its own, so the figures are ours."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    def p99(self) -> float:
        return self.pct(self.latencies, 0.99)

    def ttfc50(self) -> float:
        return statistics.median(self.first_chunk) * 1000 if self.first_chunk else float("nan")


async def _read_response(reader: asyncio.StreamReader, started: float, result: Result, stream: bool) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = None
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if length is not None:
        await reader.readexactly(length)
        return status
    if not chunked:
        raise RuntimeError("response without length")
    first = True
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            await reader.readline()
            return status
        data = await reader.readexactly(size + 2)
        if stream and first and b'"content"' in data:
            result.first_chunk.append(time.perf_counter() - started)
            first = False


async def _worker(
    url: str, body: bytes, headers: dict[str, str], deadline: float, result: Result, stream: bool
) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader, started, result, stream)
            if status == 200:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
    finally:
        writer.close()


async def run_load(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, stream: bool
) -> Result:
    """Keep `concurrency` connections busy for `seconds`; returns latencies of the successful requests."""
    result = Result()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(url, body, headers, deadline, result, stream) for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result
