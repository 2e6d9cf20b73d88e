"""Each expectation, passing and failing, on answers built by hand."""

import json

import pytest

from health_check.config import Endpoint
from health_check.expectations import body_text, describe_ranges, failed_expectations
from health_check.probe import Attempt

HEALTHY_JSON = {"status": "UP", "checks": {"database": {"status": "UP"}}, "n": [1]}


def answer(**fields) -> Attempt:
    """A 200 JSON answer that took 100 ms, with `fields` replaced."""
    defaults = {
        "status_code": 200,
        "response_time_ms": 100.0,
        "headers": {"Content-Type": "application/json; charset=utf-8"},
        "body": json.dumps(HEALTHY_JSON).encode(),
    }
    return Attempt(**{**defaults, **fields})


def endpoint(**expect) -> Endpoint:
    return Endpoint.model_validate({"url": "http://127.0.0.1:1/", "expect": expect})


@pytest.mark.parametrize(
    ("expect", "seen"),
    [
        ({"status": [200, 204]}, answer(status_code=204)),
        ({"status": "2xx"}, answer(status_code=299)),
        ({"status": "200-250"}, answer(status_code=250)),
        ({"status": 301}, answer(status_code=301)),
        ({"max_response_time_ms": 800}, answer(response_time_ms=800.0)),
        ({"body_contains": '"UP"'}, answer()),
        ({"json": {"status": "UP", "checks.database.status": "UP"}}, answer()),
        ({"json": {"n.0": 1}}, answer()),
        ({"headers": {"Content-Type": "application/json"}}, answer()),
        ({"headers": {"content-type": "application/json; charset=utf-8"}}, answer()),
        ({}, answer(status_code=503)),
    ],
    ids=[
        "status-list",
        "status-class",
        "status-range",
        "status-single",
        "time-at-limit",
        "body-contains",
        "json-dotted",
        "json-array-index",
        "header-ignores-parameters",
        "header-name-any-case",
        "nothing-expected",
    ],
)
def test_expectation_holds(expect, seen):
    assert failed_expectations(endpoint(**expect), seen) == []


@pytest.mark.parametrize(
    ("expect", "seen", "reason"),
    [
        (
            {"status": [200, 204]},
            answer(status_code=503),
            "status 503 not in [200, 204]",
        ),
        (
            {"status": ["2xx", "300-304"]},
            answer(status_code=404),
            "status 404 not in [2xx, 300-304]",
        ),
        (
            {"max_response_time_ms": 800},
            answer(response_time_ms=1311.2),
            "took 1312 ms, limit 800 ms",
        ),
        (
            {"body_contains": "healthy"},
            answer(),
            'body does not contain "healthy"',
        ),
        (
            {"body_contains": "healthy"},
            answer(body_truncated=True),
            'body does not contain "healthy" (body was cut at the size cap)',
        ),
        (
            {"json": {"status": "UP"}},
            answer(body=b'{"status": "DOWN"}'),
            'json status is "DOWN", expected "UP"',
        ),
        (
            {"json": {"checks.database.status": "UP"}},
            answer(body=b'{"checks": {}}'),
            'json checks.database.status is missing, expected "UP"',
        ),
        (
            {"json": {"ready": True}},
            answer(body=b'{"ready": 1}'),
            "json ready is 1, expected true",
        ),
        (
            {"json": {"status": "UP"}},
            answer(body=b"<html>maintenance</html>"),
            "body is not valid JSON",
        ),
        (
            {"headers": {"Content-Type": "application/json"}},
            answer(headers={"Content-Type": "text/html"}),
            'header Content-Type is "text/html", expected "application/json"',
        ),
        (
            {"headers": {"X-Served-By": "blue"}},
            answer(),
            'header X-Served-By is missing, expected "blue"',
        ),
    ],
    ids=[
        "status-list",
        "status-ranges-shown-as-written",
        "time-over-limit",
        "body-missing-text",
        "body-missing-text-after-cut",
        "json-down",
        "json-path-missing",
        "json-true-is-not-1",
        "json-invalid",
        "header-differs",
        "header-missing",
    ],
)
def test_expectation_fails_with_a_reason(expect, seen, reason):
    assert failed_expectations(endpoint(**expect), seen) == [reason]


def test_every_failed_expectation_is_listed():
    expect = {
        "status": [200],
        "max_response_time_ms": 50,
        "json": {"status": "UP"},
        "headers": {"Content-Type": "application/json"},
    }
    seen = answer(status_code=500, headers={"Content-Type": "text/plain"}, body=b"oops")

    assert failed_expectations(endpoint(**expect), seen) == [
        "status 500 not in [200]",
        "took 100 ms, limit 50 ms",
        'header Content-Type is "text/plain", expected "application/json"',
        "body is not valid JSON",
    ]


def test_no_answer_fails_no_expectation():
    seen = Attempt(error_kind="connect", error="cannot connect")
    assert failed_expectations(endpoint(status=[200], body_contains="x"), seen) == []


@pytest.mark.parametrize(
    ("ranges", "shown"),
    [
        ([(200, 200), (204, 204)], "[200, 204]"),
        ([(200, 299)], "[2xx]"),
        ([(200, 250), (500, 599)], "[200-250, 5xx]"),
    ],
)
def test_ranges_read_the_way_users_write_them(ranges, shown):
    assert describe_ranges(ranges) == shown


@pytest.mark.parametrize(
    ("encoding", "body", "text"),
    [
        ("iso-8859-1", "déjà vu".encode("latin-1"), "déjà vu"),
        (None, "déjà vu".encode(), "déjà vu"),
        ("no-such-charset", "déjà vu".encode(), "déjà vu"),
        (None, b"caf\xe9", "caf\ufffd"),
    ],
    ids=["declared-latin-1", "utf-8-default", "unknown-charset", "bad-bytes"],
)
def test_body_is_decoded_with_its_declared_charset(encoding, body, text):
    assert body_text(Attempt(body=body, encoding=encoding)) == text


def test_latin_1_body_meets_a_body_expectation():
    seen = answer(body="Café crème".encode("latin-1"), encoding="iso-8859-1")
    assert failed_expectations(endpoint(body_contains="Café"), seen) == []
