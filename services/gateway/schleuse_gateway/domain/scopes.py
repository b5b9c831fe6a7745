"""API key scopes: which requests a key may make, derived from the route so new routes are covered."""

from __future__ import annotations

ALL = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_SCOPES = ("chat",)


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs: `chat` on /v1, `<area>:read|write` on /api/<area>, None elsewhere."""
    if path.startswith("/v1/") or path == "/v1":
        return "chat"
    if path.startswith("/api/"):
        area = path[5:].split("/", 1)[0] or "api"
        return f"{area}:{'read' if method.upper() in SAFE_METHODS else 'write'}"
    return None


def grants(scopes: list[str] | tuple[str, ...], required: str | None) -> bool:
    """True when `scopes` cover `required` (`*` covers all, `calls` covers `calls:read` and `calls:write`)."""
    if required is None or ALL in scopes or required in scopes:
        return True
    return required.split(":", 1)[0] in scopes


def valid_scope(scope: str) -> bool:
    """True for `*`, `area` or `area:read|write` with a lowercase area name."""
    if scope == ALL:
        return True
    area, _, access = scope.partition(":")
    return (
        bool(area)
        and area.replace("-", "").replace("_", "").isalnum()
        and area.islower()
        and access
        in (
            "",
            "read",
            "write",
        )
    )
