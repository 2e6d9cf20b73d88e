"""Alerts on change: every transition, delivery failures, and masked secrets."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from health_check import alerts

from helpers import run_main

pytestmark = [
    pytest.mark.usefixtures("no_leftover_server_threads"),
    pytest.mark.timeout(60),
]

PAYLOAD_KEYS = {
    "event",
    "endpoint",
    "url",
    "ok",
    "error",
    "error_kind",
    "status_code",
    "at",
    "down_since",
    "text",
    "content",
    "source",
}
SECRET = "XXXXsecretTOKEN"
QUICK = alerts.DeliveryPolicy(timeout_s=0.5, retries=1, backoff_s=0)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# --- which alerts are due: a pure function of state, results and time ----------


def _row(ok: bool, name: str = "api") -> dict:
    return {
        "name": name,
        "url": f"http://127.0.0.1/{name}",
        "ok": ok,
        "status_code": 200 if ok else 503,
        "error": None if ok else "HTTP 503 Service Unavailable",
        "error_kind": None if ok else "http_status",
        "checked_at": NOW.strftime(alerts.TIMESTAMP_FORMAT),
    }


def _state(last_alert_minutes_ago: float | None) -> dict:
    if last_alert_minutes_ago is None:
        return {"version": 1, "down": {}}
    last = NOW - timedelta(minutes=last_alert_minutes_ago)
    entry = {
        "down_since": "2026-01-01T09:00:00Z",
        "last_alert_at": last.strftime(alerts.TIMESTAMP_FORMAT),
    }
    return {"version": 1, "down": {"api": entry}}


@pytest.mark.parametrize(
    ("told_minutes_ago", "ok", "realert_s", "expected"),
    [
        (None, True, None, []),  # up and nobody was told otherwise
        (None, False, None, ["down"]),  # went down
        (5, False, None, []),  # still down, no reminders asked for
        (5, False, 1800, []),  # still down, reminder not due yet
        (30, False, 1800, ["still_down"]),  # reminder due exactly now
        (90, False, 1800, ["still_down"]),
        (5, True, 1800, ["recovered"]),
        (None, False, 1800, ["down"]),
    ],
)
def test_alerts_due_for_each_transition(told_minutes_ago, ok, realert_s, expected):
    due = alerts.alerts_due(_state(told_minutes_ago), [_row(ok)], NOW, realert_s)

    assert [alert.event for alert in due] == expected


def test_reminders_and_recoveries_keep_the_first_down_time():
    state = _state(60)

    still_down = alerts.alerts_due(state, [_row(False)], NOW, 1800)
    recovered = alerts.alerts_due(state, [_row(True)], NOW, 1800)

    assert still_down[0].down_since == "2026-01-01T09:00:00Z"
    assert recovered[0].down_since == "2026-01-01T09:00:00Z"


def test_state_records_only_what_was_delivered():
    results = [_row(False, "a"), _row(False, "b")]
    due = alerts.alerts_due(_state(None), results, NOW, None)

    state = alerts.state_after(_state(None), due[:1], results, NOW)

    assert list(state["down"]) == ["a"]
    assert alerts.alerts_due(state, results, NOW, None)[0].row["name"] == "b"


def test_state_forgets_endpoints_no_longer_configured():
    state = alerts.state_after(_state(5), [], [_row(True, "other")], NOW)

    assert state["down"] == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"down": 3}',
        '{"version": 99, "down": {}}',
        '{"version": 1, "down": {"api": {}}}',
        '{"version": 1, "down": {"api": {"down_since": 5, "last_alert_at": "x"}}}',
    ],
)
def test_unreadable_state_means_nobody_was_told(tmp_path, text):
    path = tmp_path / "alert_state.json"
    path.write_text(text)

    assert alerts.load_state(path) == {"version": 1, "down": {}}


# --- masking ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXsecretTOKEN",
            "https://hooks.slack.com/***",
        ),
        (
            "https://discord.com/api/webhooks/123/XXXXsecretTOKEN",
            "https://discord.com/***",
        ),
        (
            "https://api.telegram.org/botXXXXsecretTOKEN/sendMessage",
            "https://api.telegram.org/***",
        ),
        (
            "https://user:XXXXsecretTOKEN@example.invalid/",
            "https://***@example.invalid",
        ),
        (
            "http://127.0.0.1:8080/hook?token=XXXXsecretTOKEN",
            "http://127.0.0.1:8080/***?***",
        ),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_webhook_urls_show_only_scheme_host_and_port(url, shown):
    assert alerts.mask_webhook_url(url) == shown


# --- delivery against local receivers -----------------------------------------


def test_delivered_payload_is_the_documented_shape(webhook_server):
    alert = alerts.alerts_due(_state(None), [_row(False)], NOW, None)[0]

    delivery = alerts.deliver([alert], webhook_server.url("/hook"), QUICK)

    assert delivery.failed == [] and delivery.sent[0].status_code == 200
    body = webhook_server.bodies[0]
    assert set(body) == PAYLOAD_KEYS
    assert body["event"] == "down"
    assert body["endpoint"] == "api"
    assert body["status_code"] == 503
    assert body["error_kind"] == "http_status"
    assert body["text"] == body["content"] == "DOWN: api: HTTP 503 Service Unavailable"
    assert webhook_server.received[0].headers["Content-Type"] == "application/json"


def test_a_receiver_error_is_retried_with_backoff(app_server):
    alert = alerts.alerts_due(_state(None), [_row(False)], NOW, None)[0]

    delivery = alerts.deliver([alert], app_server.url("/fail-once/hook"), QUICK)

    assert delivery.failed == []
    assert delivery.sent[0].attempts == 2
    assert app_server.count("/fail-once/hook") == 2


def test_a_client_error_is_not_retried(webhook_server):
    webhook_server.answer_with(404)
    alert = alerts.alerts_due(_state(None), [_row(False)], NOW, None)[0]

    delivery = alerts.deliver([alert], webhook_server.url("/hook"), QUICK)

    assert delivery.sent == []
    assert (delivery.reason, delivery.attempts) == ("HTTP 404", 1)
    assert len(webhook_server.received) == 1


def test_a_slow_receiver_costs_one_alert_not_one_per_endpoint(webhook_server):
    webhook_server.answer_with(200, delay_ms=3000)
    results = [_row(False, "a"), _row(False, "b"), _row(False, "c")]
    due = alerts.alerts_due(_state(None), results, NOW, None)

    started = time.monotonic()
    delivery = alerts.deliver(due, webhook_server.url("/hook"), QUICK)
    elapsed_s = time.monotonic() - started

    assert delivery.reason == "no answer within 0.5 s"
    assert delivery.attempts == QUICK.retries + 1
    assert [alert.row["name"] for alert in delivery.failed] == ["a", "b", "c"]
    # Bounded by one alert's attempts, well below one slow answer (3 s).
    assert elapsed_s < 2.5


def test_an_undelivered_alert_is_sent_again_next_run(webhook_server, tmp_path):
    state_path = tmp_path / "alert_state.json"
    webhook_server.answer_with(500)

    first = alerts.alert_on_changes(
        [_row(False)], webhook_server.url(), state_path, None, QUICK
    )
    webhook_server.answer_with(200)
    second = alerts.alert_on_changes(
        [_row(False)], webhook_server.url(), state_path, None, QUICK
    )

    assert first.reason == "HTTP 500" and first.sent == []
    assert [item.alert.event for item in second.sent] == ["down"]
    assert list(json.loads(state_path.read_text())["down"]) == ["api"]


# --- the command line, run after run --------------------------------------------


def _write_config(path: Path, app_server, api_path: str) -> None:
    endpoints = [
        {"name": "api", "url": app_server.url(api_path), "retries": 1},
        {"name": "steady", "url": app_server.url("/ok"), "retries": 1},
    ]
    path.write_text(json.dumps({"endpoints": endpoints}))


def _run(tmp_path: Path, webhook_url: str, *extra: str):
    return run_main(
        "--config", "endpoints.json", "--webhook", webhook_url, *extra, cwd=tmp_path
    )


def test_down_then_still_down_then_recovered(app_server, webhook_server, tmp_path):
    config = tmp_path / "endpoints.json"
    hook = webhook_server.url("/hook")

    _write_config(config, app_server, "/status/503")
    went_down = _run(tmp_path, hook)
    still_down = _run(tmp_path, hook)
    _write_config(config, app_server, "/ok")
    recovered = _run(tmp_path, hook)

    events = [(body["event"], body["endpoint"]) for body in webhook_server.bodies]
    assert events == [("down", "api"), ("recovered", "api")]
    assert [went_down.returncode, still_down.returncode, recovered.returncode] == [
        0,
        0,
        0,
    ]
    assert "alert down for 'api' sent to http://127.0.0.1:" in went_down.stdout
    assert "alert" not in still_down.stdout
    first, last = webhook_server.bodies
    assert last["down_since"] == first["at"]
    assert (last["ok"], last["error"]) == (True, None)


def test_realert_reminds_once_the_interval_has_passed(
    app_server, webhook_server, tmp_path
):
    _write_config(tmp_path / "endpoints.json", app_server, "/status/503")
    hook = webhook_server.url("/hook")

    _run(tmp_path, hook, "--realert", "1h")
    ended = time.monotonic()
    _run(tmp_path, hook, "--realert", "1h")
    time.sleep(max(0.0, 1.1 - (time.monotonic() - ended)))
    reminded = _run(tmp_path, hook, "--realert", "1s")

    assert [body["event"] for body in webhook_server.bodies] == ["down", "still_down"]
    assert "alert still_down for 'api'" in reminded.stdout
    first, reminder = webhook_server.bodies
    assert reminder["down_since"] == first["at"]


def test_receiver_down_never_fails_the_check(app_server, refused_port, tmp_path):
    _write_config(tmp_path / "endpoints.json", app_server, "/status/503")
    hook = f"http://user:{SECRET}@127.0.0.1:{refused_port}/services/T0/B0/{SECRET}"

    run = _run(tmp_path, f"{hook}?token={SECRET}")

    assert run.returncode == 0
    assert run.stderr.splitlines() == [
        f"health-check: warning: alert down for 'api' not sent to "
        f"http://***@127.0.0.1:{refused_port}/***?***: cannot connect (4 attempts)"
    ]
    report = json.loads((tmp_path / "health_report.json").read_text())
    assert report["summary"]["fail_count"] == 1


def test_the_webhook_secret_appears_in_no_output(app_server, refused_port, tmp_path):
    _write_config(tmp_path / "endpoints.json", app_server, "/status/503")
    hook = f"http://user:{SECRET}@127.0.0.1:{refused_port}/services/T0/B0/{SECRET}"

    run = _run(tmp_path, f"{hook}?token={SECRET}")

    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert (tmp_path / ".output" / "flow.log") in written
    for text in [run.stdout, run.stderr, *(p.read_text() for p in written)]:
        assert SECRET not in text


def test_the_webhook_url_can_come_from_the_environment(
    app_server, webhook_server, tmp_path, monkeypatch
):
    _write_config(tmp_path / "endpoints.json", app_server, "/status/503")
    monkeypatch.setenv("HEALTH_CHECK_WEBHOOK_URL", webhook_server.url("/from-env"))

    run = run_main("--config", "endpoints.json", cwd=tmp_path)

    assert run.returncode == 0
    assert [hook.path for hook in webhook_server.received] == ["/from-env"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--realert", "30m"], "--realert needs --webhook"),
        (["--webhook", "http://127.0.0.1:9/x", "--realert", "soon"], "'soon' is not"),
        (["--webhook", "http://127.0.0.1:9/x", "--realert", "0s"], "'0s' is not"),
        (["--webhook", f"ftp://127.0.0.1/{SECRET}"], "webhook ftp://127.0.0.1/***"),
    ],
)
def test_bad_alert_options_are_one_line_exit_2(tmp_path, args, message):
    run = run_main(*args, "http://127.0.0.1:9/", cwd=tmp_path)

    assert run.returncode == 2
    assert message in run.stderr.splitlines()[-1]
    assert SECRET not in run.stderr
    assert not (tmp_path / "health_report.json").exists()
