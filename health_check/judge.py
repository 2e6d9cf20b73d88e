"""Turn one attempt into the endpoint's result row: healthy or not, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from health_check import TIMESTAMP_FORMAT
from health_check.config import Endpoint
from health_check.expectations import failed_expectations, status_expected
from health_check.probe import Attempt
from health_check.server_text import printable

# An HTTP-date is 29 characters; anything longer is not a Retry-After.
RETRY_AFTER_CHARS = 40


def result_row(endpoint: Endpoint, seen: Attempt) -> dict[str, Any]:
    """The report's row for an endpoint, from its last attempt."""
    failed = failed_expectations(endpoint, seen)
    error_kind, error = seen.error_kind, seen.error
    if error_kind is None:
        error_kind, error = _judge_answer(endpoint, seen, failed)

    return {
        "name": endpoint.name,
        "url": endpoint.display_url,
        "method": endpoint.method,
        "ok": error_kind is None,
        "status_code": seen.status_code,
        "response_time_ms": seen.response_time_ms,
        # One attempt's view; pipeline.read_result sets the task's real count
        # of attempts, and flaky, from what dotflow recorded.
        "attempts": 1,
        "flaky": False,
        "error": error,
        "error_kind": error_kind,
        "failed_expectations": failed,
        "final_url": seen.final_url,
        "redirects": seen.redirects,
        "body_bytes_read": seen.body_bytes_read,
        "body_truncated": seen.body_truncated,
        "retry_after": printable(_header(seen, "Retry-After"), RETRY_AFTER_CHARS),
        "tls": seen.tls,
        "checked_at": datetime.now(UTC).strftime(TIMESTAMP_FORMAT),
    }


def _judge_answer(
    endpoint: Endpoint, seen: Attempt, failed: list[str]
) -> tuple[str | None, str | None]:
    """The one error kind of an answered attempt, most specific first.

    The error line leads with the kind's own reason, then names every failed
    expectation, so the terminal's one line still tells the whole story.
    """
    kind, reason = _judge_status(endpoint, seen)
    if kind is None:
        kind, reason = _judge_certificate(endpoint, seen)
    if kind is None and failed:
        kind = "expectation"

    reasons = [reason] if reason else []
    reasons += [item for item in failed if item not in reasons]
    return kind, "; ".join(reasons) or None


def _judge_status(endpoint: Endpoint, seen: Attempt) -> tuple[str | None, str | None]:
    """Rate limiting, or the plain "status below 400" rule when no status is given.

    An `expect.status` replaces the plain rule: the user may expect a 301
    or even a 503. Its failure is then an expectation like any other.
    """
    status = seen.status_code
    expect = endpoint.expect
    if expect.status is not None and status_expected(expect, status):
        return None, None

    text = f"HTTP {status} {seen.reason}".strip()
    if _rate_limited(seen):
        return "rate_limited", f"rate limited: {text}"
    if expect.status is None and status >= 400:
        return "http_status", text
    return None, None


def _judge_certificate(
    endpoint: Endpoint, seen: Attempt
) -> tuple[str | None, str | None]:
    min_days = endpoint.tls.min_days_valid
    if seen.tls is None or min_days is None:
        return None, None
    days_left = seen.tls["days_left"]
    if days_left < 0:
        return "tls_expired", f"certificate expired {-days_left:.1f} days ago"
    if days_left < min_days:
        return (
            "tls_expiring",
            f"certificate expires in {days_left:.1f} days, minimum {min_days}",
        )
    return None, None


def _rate_limited(seen: Attempt) -> bool:
    status = seen.status_code
    remaining = _header(seen, "X-RateLimit-Remaining")
    return status == 429 or (status == 403 and remaining == "0")


def _header(seen: Attempt, name: str) -> str | None:
    lowered = {key.lower(): value for key, value in seen.headers.items()}
    return lowered.get(name.lower())
