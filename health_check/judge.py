"""Turn one attempt into the endpoint's result row: healthy or not, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from health_check.config import Endpoint
from health_check.probe import Attempt


def result_row(endpoint: Endpoint, seen: Attempt, attempts: int = 1) -> dict[str, Any]:
    """The report's row for an endpoint, from its last attempt."""
    error_kind, error = seen.error_kind, seen.error
    if error_kind is None:
        error_kind, error = _judge_status(seen)

    return {
        "name": endpoint.name,
        "url": endpoint.display_url,
        "method": endpoint.method,
        "ok": error_kind is None,
        "status_code": seen.status_code,
        "response_time_ms": seen.response_time_ms,
        "attempts": attempts,
        "flaky": False,
        "error": error,
        "error_kind": error_kind,
        "failed_expectations": [],
        "final_url": seen.final_url,
        "redirects": seen.redirects,
        "body_bytes_read": seen.body_bytes_read,
        "body_truncated": seen.body_truncated,
        "retry_after": _header(seen, "Retry-After"),
        "tls": None,
        "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _judge_status(seen: Attempt) -> tuple[str | None, str | None]:
    status = seen.status_code
    if status is not None and status < 400:
        return None, None
    text = f"HTTP {status} {seen.reason}".strip()
    if status == 429 or (
        status == 403 and _header(seen, "X-RateLimit-Remaining") == "0"
    ):
        return "rate_limited", f"rate limited: {text}"
    return "http_status", text


def _header(seen: Attempt, name: str) -> str | None:
    lowered = {key.lower(): value for key, value in seen.headers.items()}
    return lowered.get(name.lower())
