"""What authentication adds on the `/v1` hot path: an API key resolved (in-memory cache hit) plus the rate
limit's one pipelined Redis round trip, measured in-process against the real Postgres/Redis/NATS.

    python services/gateway/bench/auth_overhead.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from starlette.requests import Request

from schleuse_common import service
from schleuse_common.db import ensure_database
from schleuse_common.devstack import find_or_start
from schleuse_gateway.admin import bootstrap
from schleuse_gateway.app import create_app
from schleuse_gateway.main import SPEC, wire
from schleuse_gateway.settings import GatewaySettings


def request_for(key: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "query_string": b"",
    }
    return Request(scope)


async def run(n: int) -> None:
    settings = GatewaySettings(health_port=0, rate_limit_user=10**9, rate_limit_key=10**9)
    rt = await service.start(SPEC, settings, wire)
    try:
        app = create_app(rt)
        auth = app.state.identity.auth
        key, _ = await bootstrap(settings, "bench-admin", "IT")
        await auth.authenticate(request_for(key))  # warm the cache
        for label, limiter in (("cache hit + rate limit (Redis)", auth.limiter), ("cache hit only", None)):
            auth.limiter = limiter
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                await auth.authenticate(request_for(key))
                samples.append((time.perf_counter() - start) * 1000)
            samples.sort()
            p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
            print(f"{label:34} n={n} p50={p50:.3f} ms p99={p99:.3f} ms")
    finally:
        await service.stop(rt)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="schleuse-auth-bench-"))
    os.environ.setdefault("SCHLEUSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/schleuse_bench_auth")
    os.environ.setdefault("SCHLEUSE_INTERNAL_KEY_FILE", str(base / "internal.key"))
    os.environ.setdefault("SCHLEUSE_KEY_FILE", str(base / "kek.key"))
    stack = find_or_start(base, database="schleuse_bench_auth")
    try:
        ensure_database(stack.postgres.url)
        os.environ.update(stack.env())
        asyncio.run(run(args.n))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
