"""Alerts on change: which endpoints went down or recovered, sent to a webhook."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from health_check import TIMESTAMP_FORMAT, TOOL_NAME, __version__
from health_check.files import write_atomic
from health_check.probe import USER_AGENT

STATE_FILE_NAME = "alert_state.json"
STATE_VERSION = 1

# Receivers that answer these are worth asking again; any other 4xx is final.
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try one webhook POST.

    The worst case per alert is (retries + 1) × timeout_s plus the backoff
    sleeps (0, 2, 4 … × backoff_s), about 23 s with the defaults.
    """

    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5


@dataclass(frozen=True)
class Alert:
    event: str  # down | still_down | recovered
    row: dict[str, Any]
    down_since: str


@dataclass(frozen=True)
class SentAlert:
    alert: Alert
    status_code: int
    attempts: int


@dataclass(frozen=True)
class Delivery:
    """The outcome of the alerts one run sent, or tried to send."""

    sent: list[SentAlert]
    failed: list[Alert]  # the first alert the receiver refused, then the rest
    reason: str | None
    attempts: int
    receiver: str  # the masked webhook URL


def alert_on_changes(
    results: list[dict[str, Any]],
    webhook_url: str,
    state_path: Path,
    realert_s: float | None,
    policy: DeliveryPolicy = DeliveryPolicy(),
) -> Delivery:
    """Send the alerts this run's results call for; remember what was sent.

    The state file records what the receiver has been told. An alert that
    could not be delivered leaves the state as it was, so the next run
    sends it again instead of losing it.
    """
    state = load_state(state_path)
    now = datetime.now(UTC)

    due = alerts_due(state, results, now, realert_s)
    delivery = deliver(due, webhook_url, policy)

    delivered = [item.alert for item in delivery.sent]
    new_state = state_after(state, delivered, results, now)
    if due or new_state != state:
        write_atomic(state_path, json.dumps(new_state, indent=2) + "\n")
    return delivery


def alerts_due(
    state: dict[str, Any],
    results: list[dict[str, Any]],
    now: datetime,
    realert_s: float | None,
) -> list[Alert]:
    """Compare the results with what the receiver was last told."""
    told_down = state["down"]
    due = []
    for row in results:
        known = told_down.get(row["name"])
        if known is None and not row["ok"]:
            due.append(Alert("down", row, down_since=row["checked_at"]))
        elif known is not None and row["ok"]:
            due.append(Alert("recovered", row, down_since=known["down_since"]))
        elif known is not None and _reminder_due(known, now, realert_s):
            due.append(Alert("still_down", row, down_since=known["down_since"]))
    return due


def state_after(
    state: dict[str, Any],
    delivered: list[Alert],
    results: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The state once the delivered alerts are recorded.

    Endpoints that are no longer configured are forgotten.
    """
    configured = {row["name"] for row in results}
    down = {name: entry for name, entry in state["down"].items() if name in configured}
    for alert in delivered:
        name = alert.row["name"]
        if alert.event == "recovered":
            down.pop(name, None)
        else:
            down[name] = {
                "down_since": alert.down_since,
                "last_alert_at": now.strftime(TIMESTAMP_FORMAT),
            }
    return {"version": STATE_VERSION, "down": down}


def load_state(path: Path) -> dict[str, Any]:
    """The saved state; a missing or unreadable file means nobody was told."""
    empty = {"version": STATE_VERSION, "down": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return empty
    down = state.get("down")
    if not isinstance(down, dict):
        return empty
    # A hand-edited entry is dropped rather than trusted: at worst its
    # endpoint alerts again, and the run never stops on a KeyError.
    kept = {name: entry for name, entry in down.items() if _usable_entry(entry)}
    return {**state, "down": kept}


def _usable_entry(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    try:
        for key in ("down_since", "last_alert_at"):
            datetime.strptime(entry[key], TIMESTAMP_FORMAT)
    except (KeyError, TypeError, ValueError):
        return False
    return True


def payload(alert: Alert) -> dict[str, Any]:
    """The JSON body POSTed for one alert; the README documents every key."""
    row = alert.row
    return {
        "event": alert.event,
        "endpoint": row["name"],
        "url": row["url"],
        "ok": row["ok"],
        "error": row.get("error"),
        "error_kind": row.get("error_kind"),
        "status_code": row.get("status_code"),
        "at": row["checked_at"],
        "down_since": alert.down_since,
        # Chat receivers show one of these two keys and ignore the rest:
        # Slack, Mattermost and Teams read "text", Discord reads "content".
        "text": _headline(alert),
        "content": _headline(alert),
        "source": f"{TOOL_NAME} {__version__}",
    }


def deliver(alerts: list[Alert], webhook_url: str, policy: DeliveryPolicy) -> Delivery:
    """POST each alert in turn; stop at the first one the receiver does not take.

    Stopping early bounds a run's time when the receiver is down or slow:
    one alert's retries, not one per endpoint. The rest go out next run.
    """
    receiver = mask_webhook_url(webhook_url)
    sent: list[SentAlert] = []
    with _session(policy) as session:
        for position, alert in enumerate(alerts):
            status_code, attempts, reason = _post(session, webhook_url, alert, policy)
            if reason is not None:
                return Delivery(sent, alerts[position:], reason, attempts, receiver)
            sent.append(SentAlert(alert, status_code, attempts))
    return Delivery(sent, [], None, 0, receiver)


def mask_webhook_url(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries carry tokens.

    Slack (/services/T…/B…/secret), Discord (/api/webhooks/id/token) and
    Telegram (/bot<token>/…) all put the secret in the path, so no part of
    the path or query is ever shown.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = f"{parts.scheme}://"
    if parts.username is not None or parts.password is not None:
        shown += "***@"
    shown += host if port is None else f"{host}:{port}"
    if parts.path not in ("", "/"):
        shown += "/***"
    if parts.query:
        shown += "?***"
    return shown


def _reminder_due(
    known: dict[str, Any], now: datetime, realert_s: float | None
) -> bool:
    if realert_s is None:
        return False
    last = datetime.strptime(known["last_alert_at"], TIMESTAMP_FORMAT)
    return (now - last.replace(tzinfo=UTC)).total_seconds() >= realert_s


def _headline(alert: Alert) -> str:
    row = alert.row
    if alert.event == "recovered":
        return f"RECOVERED: {row['name']} is up again (down since {alert.down_since})"
    label = "DOWN" if alert.event == "down" else "STILL DOWN"
    return f"{label}: {row['name']}: {row.get('error') or 'check failed'}"


def _session(policy: DeliveryPolicy) -> requests.Session:
    retry = Retry(
        total=policy.retries,
        backoff_factor=policy.backoff_s,
        status_forcelist=RETRY_STATUSES,
        # POST is not idempotent; a receiver may see an alert twice, which
        # beats never seeing it.
        allowed_methods=None,
        raise_on_status=False,
        # A Retry-After of an hour would stall the whole run.
        respect_retry_after_header=False,
    )
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _post(
    session: requests.Session, url: str, alert: Alert, policy: DeliveryPolicy
) -> tuple[int | None, int, str | None]:
    """(HTTP status, attempts, reason it failed or None)."""
    try:
        response = session.post(
            url,
            json=payload(alert),
            timeout=policy.timeout_s,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        # Never str(error): requests puts the URL, token and all, in it.
        return None, policy.retries + 1, _failure_reason(error, policy)

    response.close()
    attempts = len(response.raw.retries.history) + 1 if response.raw.retries else 1
    if not 200 <= response.status_code < 300:
        return response.status_code, attempts, f"HTTP {response.status_code}"
    return response.status_code, attempts, None


def _failure_reason(error: requests.RequestException, policy: DeliveryPolicy) -> str:
    wrapped = error.args[0] if error.args else None
    cause = getattr(wrapped, "reason", wrapped)
    # urllib3 derives NameResolutionError from NewConnectionError, and that
    # from ConnectTimeoutError: ask the narrowest question first.
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "cannot resolve the host"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        return "cannot connect"
    if isinstance(error, requests.Timeout) or isinstance(
        cause, urllib3.exceptions.TimeoutError
    ):
        return f"no answer within {policy.timeout_s} s"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS handshake failed"
    return f"connection failed ({type(cause or error).__name__})"
