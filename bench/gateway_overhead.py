"""What the platform adds to a provider call: the same load direct to a fast fake upstream and through Schleuse.

    python bench/gateway_overhead.py [--seconds 5] [--concurrency 1 10 50]

Full path through the gateway: API-key auth and rate limit, chat turn over NATS, DLP scan, routing
(a priced catalogue model with a fallback chain), budget reservation and settlement (a department
budget), provider call, encrypted record on JetStream (persisted by chat), usage event (consumed by
analytics). Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_env import use_project_venv

use_project_venv()

import httpx
from loadgen import Result, run_load

from schleuse_common.db import ensure_database
from schleuse_common.devrun import SERVICES, Platform, bootstrap_admin, migrate_all, platform_env
from schleuse_common.devstack import find_or_start, free_port

PROMPT = "Bitte fasse die Regeln für Dienstreisen in drei Sätzen zusammen. Rückfragen an das Sekretariat."


def body(stream: bool) -> bytes:
    payload = {"model": "default", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    if stream:
        payload["stream_options"] = {"include_usage": True}
    return json.dumps(payload).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def where_time_goes(gw_url: str, key: str, processes: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU milliseconds each process spends per plain request at concurrency 10 (the cost, not the wait)."""
    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    result = await run_load(gw_url, body(False), {"Authorization": f"Bearer {key}"}, 10, seconds, False)
    await asyncio.sleep(1.5)  # batched consumers (persistence, usage) finish their share
    count = max(1, len(result.latencies))
    per_request = {name: (cpu_seconds(pid) - before[name]) * 1000 / count for name, pid in processes.items()}
    print("\nCPU ms per plain request at concurrency 10, by process:")
    for name, ms in sorted(per_request.items(), key=lambda item: -item[1]):
        print(f"  {name:14} {ms:6.2f}")
    print(f"  {'total':14} {sum(per_request.values()):6.2f}")
    return {f"cpu_ms_{name.replace('-', '_')}": round(ms, 2) for name, ms in per_request.items()}


async def measure(direct_url: str, gw_url: str, key: str, concurrency: list[int], seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    print(f"{'mode':10} {'c':>3} {'path':8} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'ttfc50':>8} {'errors':>6}")
    for stream in (False, True):
        mode = "stream" if stream else "plain"
        for c in concurrency:
            await run_load(gw_url, body(stream), {"Authorization": f"Bearer {key}"}, c, 0.5, stream)  # warm-up
            direct = await run_load(direct_url, body(stream), {}, c, seconds, stream)
            gateway = await run_load(gw_url, body(stream), {"Authorization": f"Bearer {key}"}, c, seconds, stream)
            for name, r in (("direct", direct), ("gateway", gateway)):
                print(
                    f"{mode:10} {c:>3} {name:8} {r.rps:8.1f} {r.p50():8.2f} {r.p99():8.2f} "
                    f"{r.ttfc50() if stream else float('nan'):8.2f} {r.errors:6d}"
                )
            _record(figures, mode, c, direct, gateway, stream)
    return figures


def _record(figures: dict[str, float], mode: str, c: int, direct: Result, gateway: Result, stream: bool) -> None:
    prefix = f"{mode}_c{c}"
    figures[f"{prefix}_rps"] = round(gateway.rps, 1)
    figures[f"{prefix}_direct_rps"] = round(direct.rps, 1)
    figures[f"{prefix}_p50_ms"] = round(gateway.p50(), 2)
    figures[f"{prefix}_p99_ms"] = round(gateway.p99(), 2)
    figures[f"{prefix}_added_p50_ms"] = round(gateway.p50() - direct.p50(), 2)
    figures[f"{prefix}_added_p99_ms"] = round(gateway.p99() - direct.p99(), 2)
    figures[f"{prefix}_errors"] = gateway.errors
    if stream:
        figures[f"{prefix}_ttfc_overhead_p50_ms"] = round(gateway.ttfc50() - direct.ttfc50(), 2)


def configure_cost_control(url: str, key: str, upstream: str) -> None:
    """Route `default` to a priced model with a fallback, and give the admin's department a budget."""
    headers = {"Authorization": f"Bearer {key}"}
    models = [
        {"id": "bench-mini", "upstream_model": "schleuse-demo", "input_per_1m": 0.25, "output_per_1m": 2.0},
        {"id": "bench-fallback", "upstream_model": "schleuse-demo", "input_per_1m": 0.5, "output_per_1m": 4.0},
    ]
    provider = {"kind": "openai_compatible", "base_url": upstream, "max_concurrency": 200, "models": models}
    routing = {"default": "bench-mini", "large": "bench-mini", "fallbacks": {"bench-mini": ["bench-fallback"]}}
    budget = {"currency": "EUR", "soft_limit": "900000", "hard_limit": "1000000"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for method, path, body in (
            ("PUT", "/api/admin/providers/bench", provider),
            ("PUT", "/api/admin/routing", routing),
            ("PUT", "/api/admin/budgets/department/IT", budget),
        ):
            client.request(method, path, json=body).raise_for_status()
    time.sleep(1.0)  # replicas pick the changes up from their audit facts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="schleuse-bench-"))
    os.environ.setdefault("SCHLEUSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/schleuse_bench")
    # The bench measures the path, not the per-user rate limit (still checked: one Redis round trip).
    os.environ.setdefault("SCHLEUSE_GATEWAY_RATE_LIMIT_USER", "1000000000")
    os.environ.setdefault("SCHLEUSE_GATEWAY_RATE_LIMIT_KEY", "1000000000")
    os.environ.setdefault("SCHLEUSE_LOG_LEVEL", "WARNING")
    # A NATS of its own: a shared server's leftover consumers and their backlog would be measured too.
    os.environ.setdefault("SCHLEUSE_EMBEDDED", "nats")
    stack = find_or_start(base, database="schleuse_bench", ephemeral=True)
    platform = None
    try:
        ensure_database(stack.postgres.url)
        env = platform_env(stack, base)
        env["SCHLEUSE_LOG_LEVEL"] = "WARNING"
        # Everything on the chat path and behind it; ingest (the calls product line) is not on it.
        hot_path = tuple(name for name in SERVICES if name != "ingest")
        platform = Platform(stack, base, env, free_port(), services=hot_path)
        upstream = platform.start_demo_provider(free_port())
        env["SCHLEUSE_PROVIDERS_DEMO_URL"] = upstream
        migrate_all(stack.postgres.url)
        platform.start()
        key = bootstrap_admin(env)
        configure_cost_control(platform.url, key, upstream)
        gw_url = f"{platform.url}/v1/chat/completions"
        figures = asyncio.run(measure(f"{upstream}/chat/completions", gw_url, key, args.concurrency, args.seconds))
        processes = {name: proc.pid for name, proc in platform.processes.items()}
        figures |= asyncio.run(where_time_goes(gw_url, key, processes, args.seconds))
        print(json.dumps(figures))
    finally:
        if platform is not None:
            platform.stop()
        stack.stop()


if __name__ == "__main__":
    main()
