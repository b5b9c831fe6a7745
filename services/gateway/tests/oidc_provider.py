"""Starts the real OpenID provider (node `oidc-provider`) for a test session, with keys the test also holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

from schleuse_common.devstack import free_port

HERE = Path(__file__).parent / "oidc"


@dataclass
class OidcProvider:
    """A running provider: its issuer, the client the gateway uses, and its signing key (to forge tokens)."""

    issuer: str
    client_id: str
    client_secret: str
    signing_key: RSAKey
    accounts: dict[str, dict[str, Any]]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _ensure_node_modules() -> None:
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the test OpenID provider (services/gateway/tests/oidc)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True, timeout=300)


def start_provider(workdir: Path, redirect_uri: str, accounts: dict[str, dict[str, Any]]) -> OidcProvider:
    """Install (once), configure and start the provider; returns when its discovery document answers."""
    _ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the test OpenID provider")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(2048, parameters={"kid": "schleuse-test-1", "use": "sig", "alg": "RS256"})
    provider = OidcProvider(issuer, "schleuse-gateway", "test-client-secret-0123456789", key, accounts)
    config = {
        "issuer": issuer,
        "port": port,
        "jwks": {"keys": [key.as_dict(private=True)]},
        "accounts": accounts,
        "clients": [
            {
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
                "redirect_uris": [redirect_uri],
                "post_logout_redirect_uris": [redirect_uri.rsplit("/api/", 1)[0] + "/"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
    }
    cfg_path = workdir / "oidc-provider.json"
    cfg_path.write_text(json.dumps(config), encoding="utf-8")
    provider.log = workdir / "oidc-provider.log"
    out = provider.log.open("ab")
    provider.process = subprocess.Popen([node, str(HERE / "provider.mjs"), str(cfg_path)], stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if provider.process.poll() is not None:
            raise RuntimeError(f"OpenID provider exited: {provider.log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=1) as resp:
                if resp.status == 200:
                    return provider
        except OSError:
            time.sleep(0.2)
    provider.stop()
    raise RuntimeError("OpenID provider did not start within 30 s")
