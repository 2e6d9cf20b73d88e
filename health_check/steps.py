"""The dotflow steps: check one endpoint, then aggregate, validate and report."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from dotflow import action

from health_check import judge, publish, summary
from health_check.config import Endpoint
from health_check.probe import attempt

# dotflow's own timeout stays one second above the probe's deadline, so the
# probe always ends an attempt first. A dotflow TimeoutError is never retried
# and leaves its thread running, so it must only ever be a last resort.
TASK_TIMEOUT_MARGIN_S = 1

_RESULT_MARKER = "result="


class TransientCheckFailure(Exception):
    """Raised so that dotflow retries; the message carries the result row.

    dotflow keeps only a failed task's error type, message and traceback, so
    the row travels base64-encoded in the message. Encoding also keeps
    server-controlled text out of the message: dotflow refuses to retry an
    error whose text contains "initial_context" or "previous_context".
    """

    def __init__(self, row: dict[str, Any]) -> None:
        encoded = base64.urlsafe_b64encode(json.dumps(row).encode()).decode()
        super().__init__(f"{row['error_kind']} {_RESULT_MARKER}{encoded}")


def row_from_error_message(message: str) -> dict[str, Any] | None:
    """The row a TransientCheckFailure carried, or None for any other error."""
    _, marker, encoded = message.partition(_RESULT_MARKER)
    if not marker:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(encoded.encode()))
    except (ValueError, json.JSONDecodeError):
        return None


def check(initial_context: Any) -> dict[str, Any]:
    """One attempt; raise on a transient failure so dotflow tries again."""
    endpoint: Endpoint = initial_context.storage
    seen = attempt(endpoint)
    row = judge.result_row(endpoint, seen)
    # An expected 503 is healthy; only an unhealthy answer is worth a retry.
    if seen.transient and not row["ok"]:
        raise TransientCheckFailure(row)
    return row


# 2 attempts (config.DEFAULT_ATTEMPTS), each under dotflow's 6 s limit: the
# default 5 s deadline (config.DEFAULT_TIMEOUT_S) plus TASK_TIMEOUT_MARGIN_S.
@action(retry=2, timeout=6)
def check_endpoint(initial_context: Any) -> dict[str, Any]:
    """The checks workflow's step for an endpoint with the default settings."""
    return check(initial_context)


def step_for(endpoint: Endpoint):
    """check_endpoint, or a twin with the endpoint's own attempts and deadline."""
    timeout_s = math.ceil(endpoint.timeout_s) + TASK_TIMEOUT_MARGIN_S
    if (
        endpoint.attempts == check_endpoint.retry
        and timeout_s == check_endpoint.timeout
    ):
        return check_endpoint
    return action(retry=endpoint.attempts, timeout=timeout_s)(check)


@action
def aggregate_results(initial_context: Any) -> dict[str, Any]:
    """Counts and response-time statistics over the run's results."""
    run = initial_context.storage
    return {**run, "summary": summary.summarize(run["results"], run["duration_s"])}


@action
def validate_results(previous_context: Any) -> dict[str, Any]:
    """Every configured endpoint has exactly one result; one at least is ok."""
    run = previous_context.storage
    problems = summary.validate(run["endpoint_names"], run["results"])
    return {**run, "validation": {"passed": not problems, "problems": problems}}


@action
def generate_report(initial_context: Any, previous_context: Any) -> dict[str, Any]:
    """Build the report document and write every requested format."""
    run = previous_context.storage
    report = summary.build_report(run["summary"], run["validation"], run["results"])
    return publish.publish(report, initial_context.storage["outputs"])
