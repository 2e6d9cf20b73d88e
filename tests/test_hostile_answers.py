"""Answers a hostile server crafts: never a false UP, a leak, or an `internal`."""

from urllib.parse import quote

import pytest

from health_check.config import Endpoint
from health_check.judge import result_row
from health_check.probe import attempt

from helpers import run_in_process, run_main

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cr3t-token-value"
MALFORMED_REDIRECT = "redirect to an unsupported or malformed URL"


def raw_answer(status_line: str, *headers: str, body: bytes = b"") -> bytes:
    head = "".join(f"{line}\r\n" for line in (status_line, *headers))
    return (head + "\r\n").encode("latin-1") + body


def probe(url: str, **options) -> tuple[dict, bool]:
    """The result row of one attempt, and whether it would be retried."""
    endpoint = Endpoint.model_validate({"url": url, "timeout": 2, **options})
    seen = attempt(endpoint)
    return result_row(endpoint, seen), seen.transient


def assert_one_printable_line(text: str) -> None:
    assert text and text.isprintable(), repr(text)


# --- 1. a final 1xx, or a status that is no status --------------------------

INFORMATIONAL = {
    "101": raw_answer(
        "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"
    ),
}

EARLY_HINTS = raw_answer("HTTP/1.1 103 Early Hints", "Link: </style.css>; rel=preload")


@pytest.mark.parametrize(
    ("final", "ok", "status"),
    [
        (raw_answer("HTTP/1.1 200 OK", "Content-Length: 0"), True, 200),
        (
            raw_answer("HTTP/1.1 500 Internal Server Error", "Content-Length: 0"),
            False,
            500,
        ),
    ],
)
def test_interim_early_hints_are_skipped_for_the_final_answer(
    raw_server, final, ok, status
):
    server = raw_server("canned", answer=EARLY_HINTS + EARLY_HINTS + final)

    row, _ = probe(server.url())

    assert (row["ok"], row["status_code"]) == (ok, status)


def test_interim_answer_with_no_final_one_is_invalid(raw_server):
    server = raw_server("canned", answer=raw_answer("HTTP/1.1 102 Processing"))

    row, retried = probe(server.url())

    assert (row["ok"], row["status_code"]) == (False, None)
    assert row["error_kind"] == "invalid_response"
    assert retried


@pytest.mark.parametrize("answer", INFORMATIONAL.values(), ids=INFORMATIONAL)
def test_final_informational_status_is_never_up(raw_server, answer):
    server = raw_server("canned", answer=answer)

    row, retried = probe(server.url())

    status = int(answer.split()[1])
    assert (row["ok"], row["status_code"]) == (False, status)
    assert row["error_kind"] == "invalid_response"
    assert row["error"] == (
        f"informational status {status} where a final answer was due"
    )
    assert retried


@pytest.mark.parametrize("status", [600, 999])
def test_status_outside_100_to_599_is_not_recorded(raw_server, status):
    answer = raw_answer(f"HTTP/1.1 {status} Odd", "Content-Length: 0")
    server = raw_server("canned", answer=answer)

    row, retried = probe(server.url())

    assert (row["ok"], row["status_code"]) == (False, None)
    assert row["error_kind"] == "invalid_response"
    assert row["error"] == f"status {status} is not an HTTP status (100-599)"
    assert retried


def test_out_of_range_status_report_matches_the_schema(tmp_path, raw_server):
    answer = raw_answer("HTTP/1.1 999 Odd", "Content-Length: 0")
    server = raw_server("canned", answer=answer)

    # read_report validates the written report against the shipped schema.
    _, report = run_in_process(tmp_path, server.url())

    row = report["results"][0]
    assert (row["status_code"], row["error_kind"]) == (None, "invalid_response")


# --- 2. request data never reaches the row ----------------------------------


def test_unsendable_header_is_internal_without_its_value(app_server):
    # Config validation rejects such a header; this one slipped past it.
    endpoint = Endpoint(url=app_server.url("/ok"), timeout=2).model_copy(
        update={"headers": {"X-Token": f"{SECRET}\r\nX-Injected: 1"}}
    )

    row = result_row(endpoint, attempt(endpoint))

    assert row["error_kind"] == "internal"
    assert row["error"] == "InvalidHeader: unexpected error in the check"
    assert SECRET not in str(row)


@pytest.mark.parametrize(
    "location",
    [
        f"http://127.0.0.1:99999/?token={SECRET}",
        f"ftp://127.0.0.1/{SECRET}",
        f"http://[::1/{SECRET}",
    ],
)
def test_failed_redirect_does_not_quote_its_url(app_server, location):
    url = app_server.url(f"/redirect-to?url={quote(location, safe='')}")

    row, _ = probe(url)

    assert row["error_kind"] == "invalid_response"
    assert SECRET not in row["error"]


# --- 3. the server's doing is never `internal` ------------------------------

BAD_LOCATIONS = [
    "file:///etc/passwd",
    "ftp://127.0.0.1/file",
    "gopher://127.0.0.1/1",
    "http://[::1",
    "http://127.0.0.1:99999/",
    "mailto:ops@example.invalid",
]


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_redirect_to_unusable_url_is_a_definite_invalid_response(app_server, location):
    url = app_server.url(f"/redirect-to?url={quote(location, safe='')}")

    row, retried = probe(url)

    assert (row["ok"], row["error_kind"]) == (False, "invalid_response")
    assert row["error"] == MALFORMED_REDIRECT
    assert not retried  # a Location the server chose will not change in a second


def test_non_utf8_location_is_a_malformed_redirect(raw_server):
    answer = raw_answer("HTTP/1.1 301 Moved", "Content-Length: 0")
    answer = answer.replace(b"\r\n\r\n", b"\r\nLocation: /caf\xe9\xff\r\n\r\n")
    server = raw_server("canned", answer=answer)

    row, _ = probe(server.url())

    assert (row["error_kind"], row["error"]) == ("invalid_response", MALFORMED_REDIRECT)


def test_bad_redirect_is_attempted_once(tmp_path, app_server):
    url = app_server.url("/redirect-to?url=" + quote("file:///etc/passwd", safe=""))

    _, report = run_in_process(tmp_path, url)

    assert report["results"][0]["attempts"] == 1
    assert app_server.count("/redirect-to") == 1


@pytest.mark.parametrize(
    "lengths",
    [("5", "7"), ("5, 7",)],
    ids=["two headers", "one list"],
)
def test_conflicting_content_length_is_invalid_response(raw_server, lengths):
    headers = [f"Content-Length: {value}" for value in lengths]
    server = raw_server("canned", answer=raw_answer("HTTP/1.1 200 OK", *headers))

    row, retried = probe(server.url())

    assert (row["ok"], row["error_kind"]) == (False, "invalid_response")
    assert_one_printable_line(row["error"])
    assert retried


def test_deeply_nested_json_fails_its_expectation(raw_server):
    body = b"[" * 500_000
    answer = raw_answer(
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        body=body,
    )
    server = raw_server("canned", answer=answer)

    row, _ = probe(server.url(), expect={"json": {"status": "UP"}})

    assert row["error_kind"] == "expectation"
    assert row["failed_expectations"] == ["body JSON is nested too deeply"]


# --- 4. the host that failed, not the endpoint's ----------------------------


def test_dns_failure_after_redirect_names_the_redirect_host(app_server):
    target = "http://nonexistent-host.invalid/"
    url = app_server.url(f"/redirect-to?url={quote(target, safe='')}")

    row, _ = probe(url)

    assert row["error_kind"] == "dns"
    assert row["error"] == "cannot resolve host nonexistent-host.invalid"


def test_refused_redirect_names_host_and_port(app_server, refused_port):
    target = f"http://127.0.0.1:{refused_port}/"
    url = app_server.url(f"/redirect-to?url={quote(target, safe='')}")

    row, _ = probe(url)

    assert row["error_kind"] == "connect"
    assert row["error"] == (
        f"cannot connect to 127.0.0.1:{refused_port}: connection refused"
    )


def test_refused_endpoint_names_host_and_port(refused_port):
    row, _ = probe(f"http://127.0.0.1:{refused_port}/health")

    assert row["error"] == (
        f"cannot connect to 127.0.0.1:{refused_port}: connection refused"
    )


# --- 5. server text is printable and bounded --------------------------------


def test_escape_sequences_in_reason_and_headers_are_neutralised(raw_server):
    answer = raw_answer(
        "HTTP/1.1 503 \x1b[2J\x1b[31mFAKE UP\x1b[0m",
        "Retry-After: \x1b[31m5",
        "X-Mode: \x1b]0;owned\x07",
        "Content-Length: 0",
    )
    server = raw_server("canned", answer=answer)

    row, _ = probe(server.url(), expect={"headers": {"X-Mode": "ok"}})

    assert row["error_kind"] == "http_status"
    assert row["error"].startswith("HTTP 503 ?[2J?[31mFAKE UP?[0m")
    assert row["retry_after"] == "?[31m5"
    for text in (row["error"], row["retry_after"], *row["failed_expectations"]):
        assert_one_printable_line(text)


def test_long_reason_phrase_is_cut(raw_server):
    answer = raw_answer("HTTP/1.1 503 " + "A" * 5000, "Content-Length: 0")
    server = raw_server("canned", answer=answer)

    row, _ = probe(server.url())

    assert row["error_kind"] == "http_status"
    assert row["error"].startswith("HTTP 503 AAAA")
    assert len(row["error"]) < 300


# --- 6. the time is the exchange's ------------------------------------------


def test_time_is_send_to_last_byte(app_server):
    row, _ = probe(app_server.url("/delay/300"))

    # The server waits 300 ms before answering; the report may add only the
    # loopback exchange itself, not the session or deadline set-up.
    assert row["ok"]
    assert 300 <= row["response_time_ms"] <= 300 * 1.10 + 15


def test_markup_in_a_reason_phrase_cannot_break_the_terminal_table(
    raw_server, tmp_path
):
    # rich reads "[/]" as a closing tag; unescaped, the summary raised.
    answer = b"HTTP/1.1 404 Gone [/] [bold]x\r\nContent-Length: 0\r\n\r\n"
    server = raw_server("canned", answer=answer)

    result = run_main(server.url("/"), cwd=tmp_path)

    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert "[/]" in result.stdout and "[bold]" in result.stdout
