"""Errors mapped once at the edge: OpenAI's error shape on /v1, problem details (RFC 9457) on /api."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from schleuse_common.bus import BusError

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    should_retry: bool | None = None,
) -> Response:
    """An error body OpenAI SDKs understand (`should_retry=False` stops their automatic retries)."""
    body = {
        "error": {
            "message": message,
            "type": OPENAI_TYPES.get(status, "api_error"),
            "param": param,
            "code": code,
        }
    }
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else {}
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def problem(status: int, title: str, detail: str | None = None, type_: str = "about:blank", **extra: Any) -> Response:
    """RFC 9457 problem details."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


# Refusals that stay refusals however often the client asks again.
FINAL_REFUSALS = frozenset({"budget_exceeded", "dlp_blocked", "model_not_allowed"})


def status_of(error: BusError) -> int:
    """The HTTP status a bus error becomes at the edge (upstream trouble is a 502, not ours)."""
    if error.code in ("unavailable", "timeout") and error.status in (503, 504):
        return error.status
    return error.status if 400 <= error.status < 600 else 500
