"""Misbehaving servers end as one honest result row, inside the time budget."""

import contextlib
import json
import os
import socket
import threading
import time

import psutil
import pytest

from health_check.config import Endpoint
from health_check.probe import BODY_CAP_BYTES, attempt

from helpers import result_for, run_in_process, run_main, write_config
from servers import HOST

TIMEOUT_S = 1.0
ATTEMPTS = 2
RETRY_DELAY_S = 1  # dotflow's default retry_delay
SLACK_S = 2.0
# The run-wide bound the README promises, for endpoints with `timeout: 1`.
RUN_BUDGET_S = ATTEMPTS * TIMEOUT_S + (ATTEMPTS - 1) * RETRY_DELAY_S + SLACK_S
# One attempt may overrun its deadline only by the time to notice and unwind.
ATTEMPT_BUDGET_S = TIMEOUT_S + 0.5

# name: (raw-server behaviour, its options, expected status_code, error_kind)
FAILING = {
    "silent": ("silent", {}, None, "timeout"),
    "trickle_headers": ("trickle_headers", {}, None, "timeout"),
    "trickle_body": ("trickle_body", {}, 200, "timeout"),
    "close_midway": ("close_midway", {}, 200, "invalid_response"),
    "short_body": ("short_body", {}, 200, "invalid_response"),
    "garbage": ("garbage", {}, None, "invalid_response"),
    # Endless, and too slow to reach the cap before the deadline.
    "slow_chunked": (
        "endless_chunked",
        {"chunk_bytes": 1000, "interval_s": 0.01},
        200,
        "timeout",
    ),
}
# name: (raw-server behaviour, its options); a 200 whose body never ends.
TRUNCATED = {
    "huge_body": ("huge_body", {}),
    "endless_chunked": ("endless_chunked", {}),
}
# Stock dotflow Parallel joins its workers before it reads their results, so a
# run stalls once queued results pass the 64 KiB pipe buffer; a failed task
# queues about 7 KB of tracebacks. Each run here stays well below that.
RUN_GROUPS = [
    ["silent", "trickle_headers", "trickle_body", "slow_chunked"],
    ["close_midway", "short_body", "garbage", "huge_body", "endless_chunked"],
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("behaviour", "options", "status", "kind"), FAILING.values())
def test_one_attempt_fails_within_its_deadline(
    raw_server, behaviour, options, status, kind
):
    server = raw_server(behaviour, **options)

    seen, elapsed_s = timed_attempt(server.url("/"))

    assert (seen.status_code, seen.error_kind) == (status, kind)
    assert_one_line(seen.error)
    assert elapsed_s < ATTEMPT_BUDGET_S
    assert sockets_open_to(server.port) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("behaviour", "options"), TRUNCATED.values())
def test_endless_bodies_are_cut_at_the_cap(raw_server, behaviour, options):
    server = raw_server(behaviour, **options)

    seen, elapsed_s = timed_attempt(server.url("/"))

    assert seen.status_code == 200 and seen.error_kind is None
    assert seen.body_truncated is True
    assert seen.body_bytes_read == BODY_CAP_BYTES
    assert len(seen.body) == BODY_CAP_BYTES
    assert elapsed_s < ATTEMPT_BUDGET_S
    assert sockets_open_to(server.port) == []


@pytest.mark.timeout(30)
def test_redirect_loop_is_too_many_redirects(app_server):
    seen, elapsed_s = timed_attempt(app_server.url("/loop"))

    assert seen.error_kind == "too_many_redirects"
    assert_one_line(seen.error)
    assert elapsed_s < ATTEMPT_BUDGET_S


@pytest.mark.timeout(30)
def test_a_trickled_tls_handshake_is_cut_at_the_deadline():
    with trickled_tls_handshake() as port:
        seen, elapsed_s = timed_attempt(f"https://{HOST}:{port}/")

    assert seen.error_kind == "timeout"
    assert seen.status_code is None
    assert elapsed_s < ATTEMPT_BUDGET_S


@pytest.mark.timeout(60)
@pytest.mark.parametrize("group", RUN_GROUPS, ids=["slow", "broken"])
def test_hostile_endpoints_leave_the_rest_of_the_run_alone(
    raw_server, app_server, tmp_path, group
):
    urls = {name: start_hostile(raw_server, name).url("/") for name in group}
    urls["loop"] = app_server.url("/loop")
    urls["ok"], urls["slow"] = app_server.url("/ok"), app_server.url("/delay/200")
    entries = [{"name": name, "url": url} for name, url in urls.items()]
    config_path = write_config(tmp_path, entries, timeout_s=TIMEOUT_S)

    started = time.monotonic()
    _, report = run_in_process(tmp_path, "--config", str(config_path))
    elapsed_s = time.monotonic() - started

    assert elapsed_s < RUN_BUDGET_S
    for name in ("ok", "slow"):
        row = result_for(report, name)
        assert row["ok"] is True and row["attempts"] == 1, row
    assert result_for(report, "loop")["error_kind"] == "too_many_redirects"
    for name in group:
        assert_row_as_expected(result_for(report, name), name)


def start_hostile(raw_server, name):
    behaviour, options, *_ = FAILING.get(name) or TRUNCATED[name]
    return raw_server(behaviour, **options)


def assert_row_as_expected(row, name):
    if name in TRUNCATED:
        assert row["ok"] is True and row["body_truncated"] is True, row
        assert row["body_bytes_read"] == BODY_CAP_BYTES
        return
    *_, status, kind = FAILING[name]
    assert (row["ok"], row["status_code"], row["error_kind"]) == (False, status, kind)
    assert_one_line(row["error"])


def timed_attempt(url):
    started = time.monotonic()
    seen = attempt(Endpoint(url=url, timeout=TIMEOUT_S))
    return seen, time.monotonic() - started


def sockets_open_to(port):
    """This process's sockets still connected to `port` on the loopback."""
    return [
        connection
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    ]


def assert_one_line(error):
    assert error and "\n" not in error and error.isprintable(), repr(error)


@contextlib.contextmanager
def trickled_tls_handshake(interval_s=0.2):
    """A server that answers a ClientHello one byte at a time, forever.

    Each byte arrives well inside any socket timeout, so only a deadline on
    the whole attempt can end the handshake.
    """
    stopping = threading.Event()
    listener = socket.create_server((HOST, 0))

    def serve():
        client, _ = listener.accept()
        with client:
            client.recv(65536)
            # A TLS handshake record header announcing 16 KiB that never come.
            for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 16384:
                if stopping.wait(interval_s):
                    return
                with contextlib.suppress(OSError):
                    client.send(bytes([byte]))

    thread = threading.Thread(target=serve, name="test-server-tls-trickle")
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        with contextlib.suppress(OSError):
            socket.create_connection(listener.getsockname(), timeout=1).close()
        thread.join(5)
        listener.close()


def test_the_deadline_also_covers_checks_through_a_proxy(raw_server, tmp_path):
    # The proxy trickles its answer a byte at a time, forever: only the
    # attempt's own deadline can end the check.
    proxy = raw_server("trickle_headers", interval_s=0.2)
    config = tmp_path / "endpoints.yaml"
    config.write_text("- url: http://proxied.invalid/\n  timeout: 1\n  retries: 1\n")
    env = {**os.environ, "HTTP_PROXY": proxy.url(), "NO_PROXY": ""}

    started = time.monotonic()
    result = run_main(
        "--config", str(config), "--quiet", cwd=tmp_path, timeout_s=30, env=env
    )
    elapsed_s = time.monotonic() - started

    report = json.loads((tmp_path / "health_report.json").read_text())
    (row,) = report["results"]
    assert row["error_kind"] == "timeout", result.stderr
    assert elapsed_s < 10
