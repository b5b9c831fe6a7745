"""`make run`'s launcher on its own: everything comes up, the admin key works, Ctrl-C stops only what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from schleuse_common.db import drop_database, with_database
from schleuse_common.devstack import Stack, free_port, reachable

pytestmark = pytest.mark.e2e


def _env_file(path: Path, proc: subprocess.Popen[bytes], seconds: float = 180) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        if proc.poll() is not None:
            raise AssertionError(f"the launcher exited with {proc.returncode}")
        time.sleep(0.5)
    raise AssertionError("the launcher never wrote .dev/env")


def test_run_starts_everything_and_ctrl_c_stops_it(stack: Stack, tmp_path: Path) -> None:
    database = f"{make_url(stack.postgres.url).database}_run"
    port = free_port()
    env = {
        **os.environ,
        "SCHLEUSE_EMBEDDED": "nats",  # its own NATS, which it must also stop again
        "SCHLEUSE_DATABASE_URL": with_database(stack.postgres.url, database),
        "SCHLEUSE_GATEWAY_HEALTH_PORT": str(port),
        "SCHLEUSE_INGEST_DIR": str(tmp_path / "calls"),
    }
    env.pop("SCHLEUSE_NATS_URL", None)
    env.pop("SCHLEUSE_KEY_FILE", None)
    env.pop("SCHLEUSE_INTERNAL_KEY_FILE", None)
    base = tmp_path / "dev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "schleuse_common.devrun", "run", "--base", str(base)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        written = _env_file(base / "env", proc)
        assert written["SCHLEUSE_URL"] == f"http://127.0.0.1:{port}"
        models = httpx.get(
            f"{written['SCHLEUSE_URL']}/v1/models",
            headers={"Authorization": f"Bearer {written['SCHLEUSE_API_KEY']}"},
            timeout=10,
        )
        assert models.status_code == 200
        assert all(m["schleuse_demo"] for m in models.json()["data"])  # no provider configured: said loudly
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
        drop_database(with_database(stack.postgres.url, database))
    assert "Schleuse is running at" in output and "DEMO provider" in output
    assert "password (shown once)" in output  # the first admin's login, never a default password
    nats_url = next(line.split()[1] for line in output.splitlines() if line.strip().startswith("nats "))
    services = next(line for line in output.splitlines() if line.strip().startswith("services:"))
    ports = {name: int(p) for name, p in (item.split(":") for item in services.split(":", 1)[1].strip().split(", "))}
    assert set(ports) == {"dlp", "providers", "chat", "analytics", "governance", "ingest", "gateway"}
    still = [name for name, p in ports.items() if reachable("127.0.0.1", p)]
    assert not still, f"still answering after Ctrl-C: {still}"
    assert not reachable("127.0.0.1", int(nats_url.rsplit(":", 1)[1])), "the embedded NATS still runs"
    with psycopg.connect(stack.postgres.url) as conn:  # what it was given, it left alone
        assert conn.execute("SELECT 1").fetchone() == (1,)
