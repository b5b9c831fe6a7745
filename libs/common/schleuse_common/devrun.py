"""`make run` and `make migrate`: the whole platform as local processes, and the e2e tests' launcher.

python -m schleuse_common.devrun run       # infrastructure, migrations, services, bootstrap admin
python -m schleuse_common.devrun migrate   # only apply every service's migrations
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from schleuse_common.db import ensure_database, run_migrations
from schleuse_common.devstack import Stack, find_or_start, free_port
from schleuse_common.settings import load_yaml_config

SERVICES = ("dlp", "providers", "chat", "analytics", "governance", "ingest", "gateway")
GATEWAY_PORT = 8080
DEMO_PORT = 8099


@dataclass
class Platform:
    """Every service as its own process, pointed at one stack; stops only what it started."""

    stack: Stack
    base: Path
    env: dict[str, str]
    gateway_port: int
    services: tuple[str, ...] = SERVICES
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    demo_url: str | None = None

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        logs = self.base / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = proc
        return proc

    def start_demo_provider(self, port: int) -> str:
        """Start the bundled OpenAI-compatible demo provider; returns its base URL."""
        self._spawn("demo-provider", ["-m", "schleuse_providers.demo_server", "--port", str(port)], self.env)
        _wait_http(f"http://127.0.0.1:{port}/v1/models", self.processes["demo-provider"], "demo provider")
        self.demo_url = f"http://127.0.0.1:{port}/v1"
        return self.demo_url

    def start(self, timeout: float = 60.0) -> None:
        """Start every service and wait until each one's /readyz answers 200."""
        for name in self.services:
            port = self.gateway_port if name == "gateway" else free_port()
            self.ports[name] = port
            env = {**self.env, f"SCHLEUSE_{name.upper()}_HEALTH_PORT": str(port)}
            self._spawn(name, ["-m", f"schleuse_{name}"], env)
        for name in self.services:
            log_hint = str(self.base / "logs" / f"{name}.log")
            url = f"http://127.0.0.1:{self.ports[name]}/readyz"
            _wait_http(url, self.processes[name], name, timeout=timeout, log_hint=log_hint)

    def stop(self) -> None:
        """SIGTERM every process this platform started, then wait (kill after 10 s)."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0, log_hint: str = ".dev/logs/"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log_hint}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local health URL
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready at {url} within {timeout:g}s")


def migrate_all(database_url: str) -> None:
    """Apply every service's migrations (each service also does this at start, safely in parallel)."""
    for name in SERVICES:
        spec = importlib.import_module(f"schleuse_{name}.main").SPEC
        if spec.schema and spec.migrations:
            run_migrations(database_url, spec.schema, spec.migrations)


def needs_demo_provider() -> bool:
    """True when no provider is configured in schleuse.yaml or the environment."""
    if os.environ.get("SCHLEUSE_PROVIDERS_DEMO_URL"):
        return False
    return not load_yaml_config().get("providers") and not os.environ.get("SCHLEUSE_PROVIDERS_CONFIG")


def bootstrap_admin(env: dict[str, str]) -> str:
    """Create the bootstrap admin (once) and a fresh admin API key, shown once."""
    out = subprocess.run(
        [sys.executable, "-m", "schleuse_gateway.admin", "bootstrap"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(f"  {line}", flush=True)  # first run: the admin login and its password, shown once
    return lines[-1]


def platform_env(stack: Stack, base: Path) -> dict[str, str]:
    """The environment every service process gets."""
    keys = base / "keys"
    return {
        **os.environ,
        **stack.env(),
        "SCHLEUSE_KEY_FILE": os.environ.get("SCHLEUSE_KEY_FILE", str(keys / "kek.key")),
        "SCHLEUSE_INTERNAL_KEY_FILE": os.environ.get("SCHLEUSE_INTERNAL_KEY_FILE", str(keys / "internal.key")),
        "SCHLEUSE_INGEST_DIR": os.environ.get("SCHLEUSE_INGEST_DIR", str(base / "calls")),
    }


def run(base: Path) -> int:
    """`make run`: everything up, the URL and an admin key printed and written to .dev/env, Ctrl-C stops it."""
    print("Schleuse: starting infrastructure ...", flush=True)
    stack = find_or_start(base)
    platform: Platform | None = None
    try:
        for line in stack.describe():
            print(f"  {line}", flush=True)
        ensure_database(stack.postgres.url)
        env = platform_env(stack, base)
        os.environ.update({k: v for k, v in env.items() if k.startswith("SCHLEUSE_")})
        Path(env["SCHLEUSE_INGEST_DIR"]).mkdir(parents=True, exist_ok=True)
        port = int(os.environ.get("SCHLEUSE_GATEWAY_HEALTH_PORT", GATEWAY_PORT))
        platform = Platform(stack, base, env, port)
        if needs_demo_provider():
            demo = platform.start_demo_provider(free_port() if _busy(DEMO_PORT) else DEMO_PORT)
            env["SCHLEUSE_PROVIDERS_DEMO_URL"] = demo
            print("", flush=True)
            print("  !!! No LLM provider configured: using the bundled DEMO provider at " + demo, flush=True)
            print("  !!! Answers are canned text, not a language model. Configure `providers:` in", flush=True)
            print(
                "  !!! schleuse.yaml (see README) to use Azure OpenAI, OpenAI, Anthropic, Bedrock or Ollama.",
                flush=True,
            )
            print("", flush=True)
        print("Schleuse: migrating and starting services ...", flush=True)
        migrate_all(stack.postgres.url)
        platform.start()
        key = bootstrap_admin(env)
        env_file = base / "env"
        env_file.write_text(f"SCHLEUSE_URL={platform.url}\nSCHLEUSE_API_KEY={key}\n", encoding="utf-8")
        env_file.chmod(0o600)
        print(f"Schleuse is running at {platform.url}", flush=True)
        print(f"  services: {', '.join(f'{n}:{p}' for n, p in platform.ports.items())}", flush=True)
        print(f"  calls directory: {env['SCHLEUSE_INGEST_DIR']}", flush=True)
        print(f"  admin API key (shown once, also in {env_file}): {key}", flush=True)
        print(f"  try: curl {platform.url}/v1/models -H 'Authorization: Bearer $SCHLEUSE_API_KEY'", flush=True)
        print(f"  logs: {base / 'logs'}/  —  Ctrl-C stops everything started here.", flush=True)
        while all(p.poll() is None for p in platform.processes.values()):
            time.sleep(0.5)
        print(f"Schleuse: a service exited; see {base / 'logs'}/", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print("Schleuse: stopping ...", flush=True)
        if platform is not None:
            platform.stop()
        stack.stop()
    return 0


def _busy(port: int) -> bool:
    from schleuse_common.devstack import reachable

    return reachable("127.0.0.1", port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schleuse_common.devrun")
    parser.add_argument("command", choices=["run", "migrate"])
    parser.add_argument("--base", type=Path, default=Path(".dev"))
    args = parser.parse_args(argv)
    if args.command == "migrate":
        stack = find_or_start(args.base)
        try:
            ensure_database(stack.postgres.url)
            migrate_all(stack.postgres.url)
            print("migrations applied", flush=True)
        finally:
            stack.stop()
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even when started in the background, where SIGINT is ignored
    return run(args.base)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
