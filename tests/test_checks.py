"""One check per endpoint, against real servers on 127.0.0.1."""

import pytest

from helpers import run_in_process


def check_one(tmp_path, url):
    code, report = run_in_process(tmp_path, url)
    assert len(report["results"]) == 1
    return code, report["results"][0]


def test_ok_endpoint(app_server, tmp_path):
    code, row = check_one(tmp_path, app_server.url("/ok"))

    assert code == 0
    assert row["ok"] is True
    assert row["status_code"] == 200
    assert row["attempts"] == 1
    assert row["error"] is None and row["error_kind"] is None
    assert app_server.count("/ok") == 1


def test_503_is_retried_once_then_reported(app_server, tmp_path):
    code, row = check_one(tmp_path, app_server.url("/status/503"))

    assert code == 1
    assert app_server.count("/status/503") == 2
    assert row["attempts"] == 2
    assert row["ok"] is False
    assert row["status_code"] == 503
    assert row["error_kind"] == "http_status"
    assert row["response_time_ms"] is not None


def test_404_is_a_definite_answer_and_not_retried(app_server, tmp_path):
    _, row = check_one(tmp_path, app_server.url("/status/404"))

    assert app_server.count("/status/404") == 1
    assert row["attempts"] == 1
    assert row["status_code"] == 404
    assert row["error_kind"] == "http_status"


def test_failing_once_then_answering_is_ok_and_flaky(app_server, tmp_path):
    code, row = check_one(tmp_path, app_server.url("/fail-once/a"))

    assert code == 0
    assert row["ok"] is True
    assert row["attempts"] == 2
    assert row["flaky"] is True
    assert app_server.count("/fail-once/a") == 2


def test_refused_port(refused_port, tmp_path):
    _, row = check_one(tmp_path, f"http://127.0.0.1:{refused_port}/")

    assert row["ok"] is False
    assert row["error_kind"] == "connect"
    assert row["status_code"] is None
    assert row["attempts"] == 2
    assert "refused" in row["error"]


def test_unresolvable_name(tmp_path):
    _, row = check_one(tmp_path, "http://no-such-host.invalid/")

    assert row["error_kind"] == "dns"
    assert row["status_code"] is None
    assert "no-such-host.invalid" in row["error"]


def test_response_time_measures_the_http_exchange(app_server, tmp_path):
    _, row = check_one(tmp_path, app_server.url("/delay/300"))

    assert abs(row["response_time_ms"] - 300) <= 300 * 0.10 + 15


def test_redirects_are_followed(app_server, tmp_path):
    _, row = check_one(tmp_path, app_server.url("/redirect/2"))

    assert row["ok"] is True
    assert row["status_code"] == 200
    assert row["redirects"] == 2
    assert row["final_url"] == app_server.url("/ok")


def test_redirect_loop_is_too_many_redirects(app_server, tmp_path):
    _, row = check_one(tmp_path, app_server.url("/loop"))

    assert row["ok"] is False
    assert row["error_kind"] == "too_many_redirects"
    assert row["status_code"] is None
    # A loop will not untangle in a second: one attempt, eleven requests.
    assert row["attempts"] == 1
    assert app_server.count("/loop") == 11


def test_rate_limit_is_its_own_kind_with_retry_after(app_server, tmp_path):
    _, row = check_one(tmp_path, app_server.url("/ratelimit"))

    assert row["error_kind"] == "rate_limited"
    assert row["retry_after"] == "7"
    assert app_server.count("/ratelimit") == 2


def test_credentials_are_sent_and_masked(app_server, tmp_path):
    url = app_server.url("/headers").replace("http://", "http://ops:s3cr3t-pw@")
    _, row = check_one(tmp_path, url)

    sent = app_server.received_headers("/headers")[-1]
    assert sent["Authorization"].startswith("Basic ")
    assert "s3cr3t-pw" not in str(row)
    assert row["url"] == url.replace("s3cr3t-pw", "***")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert "s3cr3t-pw" not in path.read_text(errors="replace"), path


def test_user_agent_names_the_project(app_server, tmp_path):
    check_one(tmp_path, app_server.url("/headers"))

    sent = app_server.received_headers("/headers")[-1]
    assert sent["User-Agent"].startswith("health-check-flow/")


@pytest.mark.parametrize("marker", ["initial_context", "previous_context"])
def test_server_text_cannot_stop_retries(app_server, tmp_path, marker):
    # dotflow refuses to retry an error whose message contains these words.
    _, row = check_one(tmp_path, app_server.url(f"/status/503?{marker}=1"))

    assert row["attempts"] == 2
    assert app_server.count("/status/503") == 2
