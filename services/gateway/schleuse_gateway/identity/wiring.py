"""Builds the identity components of one gateway instance from settings and the runtime."""

from __future__ import annotations

from dataclasses import dataclass

from schleuse_common.bus import Bus
from schleuse_common.service import Runtime
from schleuse_gateway.auth import Authenticator
from schleuse_gateway.domain.claims import ClaimsMapping
from schleuse_gateway.identity.accounts import Accounts, lockout_of
from schleuse_gateway.identity.audit import Auditor
from schleuse_gateway.identity.oidc import OidcClient
from schleuse_gateway.identity.ratelimit import RateLimiter
from schleuse_gateway.identity.sessions import SessionStore
from schleuse_gateway.settings import GatewaySettings

OIDC_CALLBACK = "/api/auth/oidc/callback"


@dataclass
class Identity:
    """Everything the identity routes need, kept on `app.state.identity`."""

    settings: GatewaySettings
    bus: Bus
    auth: Authenticator
    sessions: SessionStore
    accounts: Accounts
    auditor: Auditor
    oidc: OidcClient | None


def build_identity(rt: Runtime) -> Identity:
    """Wire sessions, rate limits, OIDC and local accounts around the runtime's Redis, database and bus."""
    settings = rt.settings
    assert isinstance(settings, GatewaySettings)
    assert rt.db is not None and rt.redis is not None
    sessions = SessionStore(rt.redis, settings.session_idle_seconds, settings.session_max_seconds)
    oidc = None
    mapping = ClaimsMapping()
    cfg = settings.oidc
    if cfg is not None:
        oidc = OidcClient(cfg, rt.redis, settings.public_url.rstrip("/") + OIDC_CALLBACK)
        mapping = ClaimsMapping(
            department_claim=cfg.department_claim,
            department_map=cfg.department_map,
            role_claim=cfg.role_claim,
            role_map=cfg.role_map,
            default_roles=tuple(cfg.default_roles),
        )
        rt.cleanups.append(oidc.close)
    auth = Authenticator(
        rt.db,
        rt.actor_key,
        settings.api_key_cache_seconds,
        sessions=sessions,
        limiter=RateLimiter(rt.redis, settings.rate_limit_window_seconds),
        oidc=oidc,
        mapping=mapping,
        claims_decide_roles=bool(cfg and cfg.role_claim),
        keep_display_name=bool(cfg and cfg.keep_display_name),
        keep_email=bool(cfg and cfg.keep_email),
        user_limit=settings.rate_limit_user,
        key_limit=settings.rate_limit_key,
        session_cookie=settings.session_cookie,
        csrf_header=settings.csrf_header.lower(),
    )
    auditor = Auditor(rt.bus)
    accounts = Accounts(
        rt.db,
        auth,
        auditor,
        lockout_of(settings.lockout_threshold, settings.lockout_seconds),
        settings.password_min_length,
    )
    rt.spawn(auth.listen(rt.bus), "gateway.auth.listen")
    return Identity(settings, rt.bus, auth, sessions, accounts, auditor, oidc)
