"""Per-endpoint retries and deadlines, run through the real dotflow checks workflow."""

import pytest

from health_check import pipeline
from health_check.config import Endpoint

pytestmark = pytest.mark.timeout(60)


def run(tmp_path, *entries: dict) -> list[dict]:
    endpoints = [Endpoint.model_validate(entry) for entry in entries]
    config = pipeline.make_config(str(tmp_path / "storage"))
    return pipeline.run_checks(endpoints, config)


@pytest.mark.parametrize("retries", [1, 3])
def test_retries_is_the_number_of_attempts(tmp_path, app_server, retries):
    url = app_server.url("/status/503")

    [row] = run(tmp_path, {"url": url, "retries": retries})

    assert app_server.count("/status/503") == retries
    assert (row["ok"], row["attempts"], row["error_kind"]) == (
        False,
        retries,
        "http_status",
    )


def test_an_expected_503_is_healthy_and_not_retried(tmp_path, app_server):
    url = app_server.url("/status/503")

    [row] = run(tmp_path, {"url": url, "retries": 3, "expect": {"status": 503}})

    assert (row["ok"], row["attempts"], row["flaky"]) == (True, 1, False)
    assert app_server.count("/status/503") == 1


def test_failed_expectation_on_200_is_not_retried(tmp_path, app_server):
    url = app_server.url("/ok")

    [row] = run(tmp_path, {"url": url, "retries": 3, "expect": {"body_contains": "x"}})

    assert (row["error_kind"], row["attempts"]) == ("expectation", 1)
    assert app_server.count("/ok") == 1


def test_success_after_a_retry_is_flaky(tmp_path, app_server):
    url = app_server.url("/fail-once/flaky")

    [row] = run(tmp_path, {"url": url, "retries": 2})

    assert (row["ok"], row["attempts"], row["flaky"]) == (True, 2, True)


def test_each_endpoint_keeps_its_own_deadline(tmp_path, app_server):
    slow = app_server.url("/delay/2500")

    short, long = run(
        tmp_path,
        {"name": "short", "url": slow, "timeout": 1, "retries": 1},
        {"name": "long", "url": slow, "timeout": 5, "retries": 1},
    )

    assert (short["error_kind"], short["error"]) == (
        "timeout",
        "no complete answer within the 1 s deadline",
    )
    assert (long["ok"], long["status_code"]) == (True, 200)
