"""Real loopback answers judged against expectations: one probe, one result row."""

import json
from urllib.parse import quote

import pytest

from health_check.config import Endpoint
from health_check.judge import result_row
from health_check.probe import attempt

pytestmark = pytest.mark.timeout(30)


def check(url: str, **options) -> dict:
    endpoint = Endpoint.model_validate({"url": url, "timeout": 5, **options})
    return result_row(endpoint, attempt(endpoint))


def json_url(server, document: object, status: int = 200) -> str:
    body = quote(json.dumps(document))
    return server.url(f"/json?body={body}&status={status}")


def test_json_down_with_status_200_is_unhealthy(app_server):
    url = json_url(app_server, {"status": "DOWN", "checks": {"db": {"status": "UP"}}})

    row = check(url, expect={"json": {"status": "UP", "checks.db.status": "UP"}})

    assert row["status_code"] == 200
    assert (row["ok"], row["error_kind"]) == (False, "expectation")
    assert row["failed_expectations"] == ['json status is "DOWN", expected "UP"']
    assert row["error"] == 'json status is "DOWN", expected "UP"'


def test_json_up_is_healthy(app_server):
    url = json_url(app_server, {"status": "UP", "checks": {"db": {"status": "UP"}}})
    row = check(url, expect={"json": {"status": "UP", "checks.db.status": "UP"}})
    assert (row["ok"], row["error"], row["failed_expectations"]) == (True, None, [])


def test_redirect_to_maintenance_page_fails_its_expectations(app_server):
    url = app_server.url("/redirect-to?url=/maintenance")

    row = check(url, expect={"status": [200], "json": {"status": "ok"}})

    assert row["status_code"] == 200
    assert row["final_url"] == app_server.url("/maintenance")
    assert row["redirects"] == 1
    assert row["failed_expectations"] == ["body is not valid JSON"]
    assert row["error_kind"] == "expectation"


def test_redirect_to_maintenance_passes_the_plain_rule(app_server):
    # Why expectations exist: a maintenance page answers 200.
    row = check(app_server.url("/redirect-to?url=/maintenance"))
    assert (row["ok"], row["status_code"], row["redirects"]) == (True, 200, 1)


@pytest.mark.parametrize(
    ("expect", "ok", "failed"),
    [
        ({}, True, []),
        ({"status": 301}, True, []),
        ({"status": [200]}, False, ["status 301 not in [200]"]),
    ],
    ids=["plain-rule", "expects-301", "expects-200"],
)
def test_without_following_the_first_answer_is_judged(app_server, expect, ok, failed):
    url = app_server.url("/redirect-to?url=/maintenance")

    row = check(url, follow_redirects=False, expect=expect)

    assert (row["ok"], row["status_code"]) == (ok, 301)
    assert row["failed_expectations"] == failed
    assert (row["final_url"], row["redirects"]) == (url, 0)
    assert app_server.count("/maintenance") == 0


def test_head_answered_405(app_server):
    row = check(app_server.url("/head405"), method="HEAD")

    assert (row["ok"], row["method"], row["status_code"]) == (False, "HEAD", 405)
    assert row["error_kind"] == "http_status"
    assert row["error"] == "HTTP 405 Method Not Allowed"


@pytest.mark.parametrize(
    ("body_option", "sent"),
    [
        ({"json": {"deep": True}}, '{"deep": true}'),
        ({"body": "deep=true"}, "deep=true"),
    ],
    ids=["json", "plain"],
)
def test_post_sends_its_body(app_server, body_option, sent):
    row = check(
        app_server.url("/method"),
        method="POST",
        **body_option,
        expect={"json": {"method": "POST", "body": sent}},
    )
    assert (row["ok"], row["failed_expectations"]) == (True, [])


@pytest.mark.parametrize(
    ("path", "status", "retry_after"),
    [("/ratelimit", 429, "7"), ("/github-ratelimit", 403, None)],
    ids=["429-retry-after", "github-403-remaining-0"],
)
@pytest.mark.parametrize("expect", [{}, {"status": "2xx"}], ids=["plain", "2xx"])
def test_rate_limiting_has_its_own_kind(app_server, path, status, retry_after, expect):
    row = check(app_server.url(path), expect=expect)

    assert (row["ok"], row["status_code"]) == (False, status)
    assert row["error_kind"] == "rate_limited"
    assert row["error"].startswith(f"rate limited: HTTP {status}")
    assert row["retry_after"] == retry_after


def test_a_plain_403_is_not_rate_limiting(app_server):
    row = check(app_server.url("/status/403"))
    assert (row["error_kind"], row["retry_after"]) == ("http_status", None)


def test_gzip_body_is_decoded_before_expectations(app_server):
    row = check(
        app_server.url("/gzip"),
        expect={"json": {"compressed": True}, "body_contains": '"status": "ok"'},
    )

    assert (row["ok"], row["failed_expectations"]) == (True, [])
    expected_bytes = len(json.dumps({"status": "ok", "compressed": True}))
    assert row["body_bytes_read"] == expected_bytes


def test_latin_1_body_is_decoded_with_its_charset(app_server):
    row = check(app_server.url("/charset"), expect={"body_contains": "Café crème"})
    assert (row["ok"], row["failed_expectations"]) == (True, [])


@pytest.mark.parametrize(
    ("expected_type", "failed"),
    [
        ("application/json", []),
        (
            "text/html",
            ['header Content-Type is "application/json", expected "text/html"'],
        ),
    ],
    ids=["holds", "fails"],
)
def test_header_expectation(app_server, expected_type, failed):
    row = check(
        app_server.url("/ok"), expect={"headers": {"Content-Type": expected_type}}
    )
    assert row["failed_expectations"] == failed


@pytest.mark.parametrize(
    ("wanted", "failed"),
    [('"ok"', []), ("healthy", ['body does not contain "healthy"'])],
    ids=["holds", "fails"],
)
def test_body_contains_expectation(app_server, wanted, failed):
    row = check(app_server.url("/ok"), expect={"body_contains": wanted})
    assert row["failed_expectations"] == failed


def test_slow_answer_fails_the_time_limit(app_server):
    row = check(app_server.url("/delay/300"), expect={"max_response_time_ms": 100})

    [reason] = row["failed_expectations"]
    took_ms = int(reason.removeprefix("took ").split(" ms")[0])
    assert reason == f"took {took_ms} ms, limit 100 ms"
    assert took_ms >= 300
    assert row["error_kind"] == "expectation"


def test_fast_answer_meets_the_time_limit(app_server):
    row = check(app_server.url("/ok"), expect={"max_response_time_ms": 4000})
    assert (row["ok"], row["failed_expectations"]) == (True, [])


@pytest.mark.parametrize(
    ("expect", "ok", "kind"),
    [
        ({}, False, "http_status"),
        ({"status": [503]}, True, None),
        ({"status": "5xx"}, True, None),
        ({"status": [200, 204]}, False, "expectation"),
    ],
    ids=["plain-rule", "expects-503", "expects-5xx", "expects-2xx"],
)
def test_expected_status_replaces_the_plain_rule(app_server, expect, ok, kind):
    row = check(app_server.url("/status/503"), expect=expect)
    assert (row["ok"], row["error_kind"]) == (ok, kind)


def test_status_reason_lists_the_expected_statuses(app_server):
    row = check(app_server.url("/status/503"), expect={"status": [200, 204]})
    assert row["failed_expectations"] == ["status 503 not in [200, 204]"]


def test_transport_failure_reports_no_expectations(refused_port):
    row = check(f"http://127.0.0.1:{refused_port}/", expect={"status": [200]})
    assert (row["error_kind"], row["failed_expectations"]) == ("connect", [])
