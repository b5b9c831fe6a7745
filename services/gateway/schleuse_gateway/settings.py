"""Gateway settings (prefix `SCHLEUSE_GATEWAY_`, section `gateway:` in schleuse.yaml)."""

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings


class OidcSettings(BaseModel):
    """One OpenID provider, found by its issuer's discovery document, and how its claims map to roles."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    discovery_url: str | None = None  # default: <issuer>/.well-known/openid-configuration
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    # Audiences accepted for bearer access tokens on the API (ID tokens need `client_id`).
    api_audiences: list[str] = Field(default_factory=list)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])
    leeway_seconds: int = 30
    jwks_min_refresh_seconds: float = 10.0
    department_claim: str | None = "department"
    department_map: dict[str, str] = Field(default_factory=dict)
    role_claim: str | None = "groups"
    role_map: dict[str, list[str]] = Field(default_factory=dict)
    default_roles: list[str] = Field(default_factory=lambda: ["user"])
    keep_display_name: bool = False
    keep_email: bool = False
    post_logout_redirect: str | None = None

    @property
    def discovery(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_GATEWAY_", env_nested_delimiter="__", extra="ignore")
    yaml_section = "gateway"

    health_host: str = "0.0.0.0"
    health_port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    api_key_cache_seconds: float = 10.0
    turn_timeout_seconds: float = 120.0

    # Sessions (Redis) and cookies
    session_cookie: str = "schleuse_session"
    csrf_cookie: str = "schleuse_csrf"
    csrf_header: str = "X-CSRF-Token"
    session_idle_seconds: float = 30 * 60
    session_max_seconds: float = 12 * 3600

    # Local accounts
    password_min_length: int = 12
    lockout_threshold: int = 5
    lockout_seconds: float = 15 * 60

    # Rate limits (sliding window in Redis); 0 disables
    rate_limit_window_seconds: int = 60
    rate_limit_user: int = 600
    rate_limit_key: int = 600

    # Security headers
    frame_ancestors: str = "'none'"
    content_security_policy: str = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'"
    )
    trust_forwarded_proto: bool = False

    oidc: OidcSettings | None = None

    @property
    def tls(self) -> bool:
        """True when the gateway is served over HTTPS (cookies get `Secure`, responses HSTS)."""
        return self.public_url.startswith("https://")
