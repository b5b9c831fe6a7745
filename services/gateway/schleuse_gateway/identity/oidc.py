"""OpenID Connect relying party: discovery, authorization code + PKCE, token checks against the JWKS (joserfc)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import structlog
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from redis.asyncio import Redis

from schleuse_gateway.settings import OidcSettings

log = structlog.get_logger("schleuse.gateway.oidc")

STATE_PREFIX = "gw:oidc:state:"
NONCE_PREFIX = "gw:oidc:nonce:"
STATE_TTL_S = 600


class OidcError(Exception):
    """A login or token that must be refused; the message is safe to show."""


@dataclass
class Tokens:
    """What the token endpoint answered, the ID token's claims already verified."""

    claims: dict[str, Any]
    id_token: str
    refresh_token: str | None
    return_to: str | None = None


def _pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class OidcClient:
    """One provider. Discovery and JWKS are fetched lazily and cached; an unknown `kid` refreshes the JWKS."""

    config: OidcSettings
    redis: Redis
    redirect_uri: str
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10.0))
    _metadata: dict[str, Any] | None = None
    _keys: KeySet | None = None
    _keys_fetched: float = 0.0

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document; its issuer must be exactly the configured one."""
        if self._metadata is None:
            resp = await self.http.get(self.config.discovery)
            resp.raise_for_status()
            meta = resp.json()
            if meta.get("issuer") != self.config.issuer:
                raise OidcError("discovery document names a different issuer")
            self._metadata = meta
        return self._metadata

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys, refetched at most every `jwks_min_refresh_seconds` when asked."""
        now = time.monotonic()
        stale = refresh and now - self._keys_fetched >= self.config.jwks_min_refresh_seconds
        if self._keys is None or stale:
            meta = await self.metadata()
            resp = await self.http.get(meta["jwks_uri"])
            resp.raise_for_status()
            self._keys = KeySet.import_key_set(resp.json())
            self._keys_fetched = now
        return self._keys

    async def verify(self, token: str, *, audiences: list[str], nonce: str | None = None) -> dict[str, Any]:
        """Claims of a JWT signed by the provider for one of `audiences`; raises OidcError otherwise."""
        meta = await self.metadata()
        try:
            try:
                decoded = jwt.decode(token, await self.key_set(), algorithms=self.config.algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(token, await self.key_set(refresh=True), algorithms=self.config.algorithms)
            checks: dict[str, Any] = {
                "iss": {"essential": True, "value": meta["issuer"]},
                "aud": {"essential": True, "values": audiences},
                "sub": {"essential": True},
                "exp": {"essential": True},
            }
            if nonce is not None:
                checks["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(leeway=self.config.leeway_seconds, **checks).validate(decoded.claims)
        except JoseError as e:
            raise OidcError(f"token rejected: {e.error}") from e
        except ValueError as e:
            raise OidcError("token rejected: malformed") from e
        claims = dict(decoded.claims)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") not in audiences:
            raise OidcError("token rejected: azp")
        return claims

    async def begin(self, *, return_to: str | None = None, login_hint: str | None = None) -> str:
        """Start a login: state, nonce and PKCE verifier kept in Redis; returns the provider's URL."""
        meta = await self.metadata()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        record = {"nonce": nonce, "verifier": verifier, "return_to": return_to}
        await self.redis.set(STATE_PREFIX + state, orjson.dumps(record), ex=STATE_TTL_S)
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{meta['authorization_endpoint']}?{urlencode(params)}"

    async def finish(self, *, code: str, state: str) -> Tokens:
        """Complete a login: the state is single-use, the ID token must carry its nonce, once."""
        raw = await self.redis.getdel(STATE_PREFIX + state)
        if raw is None:
            raise OidcError("unknown or used login state")
        record = orjson.loads(raw)
        answer = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": record["verifier"],
            }
        )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("provider returned no ID token")
        claims = await self.verify(id_token, audiences=[self.config.client_id], nonce=record["nonce"])
        await self.use_nonce(record["nonce"], int(claims["exp"]))
        return Tokens(claims, id_token, answer.get("refresh_token"), record.get("return_to"))

    async def use_nonce(self, nonce: str, expires_at: int) -> None:
        """Remember a nonce until its token expires; a second use is a replay."""
        ttl = max(60, expires_at - int(time.time()) + self.config.leeway_seconds)
        digest = hashlib.sha256(nonce.encode()).hexdigest()
        if not await self.redis.set(NONCE_PREFIX + digest, b"1", ex=ttl, nx=True):
            raise OidcError("token rejected: replayed nonce")

    async def refresh(self, refresh_token: str) -> Tokens:
        """New tokens from a refresh token; the new ID token is verified like the first."""
        answer = await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("provider returned no ID token on refresh")
        claims = await self.verify(id_token, audiences=[self.config.client_id])
        return Tokens(claims, id_token, answer.get("refresh_token") or refresh_token)

    async def end_session_url(self, id_token: str | None) -> str | None:
        """Where to send the browser to end the provider's session too (RP-initiated logout), if supported."""
        meta = await self.metadata()
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {"client_id": self.config.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        if self.config.post_logout_redirect:
            params["post_logout_redirect_uri"] = self.config.post_logout_redirect
        return f"{endpoint}?{urlencode(params)}"

    async def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        meta = await self.metadata()
        auth = (self.config.client_id, self.config.client_secret) if self.config.client_secret else None
        if auth is None:
            form = {**form, "client_id": self.config.client_id}
        resp = await self.http.post(meta["token_endpoint"], data=form, auth=auth)
        if resp.status_code != 200:
            error = (
                resp.json().get("error", "error")
                if resp.headers.get("content-type", "").startswith("application/json")
                else "error"
            )
            log.warning("oidc.token_request_failed", status=resp.status_code, error=str(error)[:64])
            raise OidcError(f"provider refused the token request: {error}")
        body: dict[str, Any] = resp.json()
        return body

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()
