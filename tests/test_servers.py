"""The loopback test servers do what servers.py says, seen from plain clients."""

import contextlib
import datetime
import gzip
import http.client
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography import x509

from servers import (
    CLOSE_MIDWAY_DECLARED_BYTES,
    EXPIRING_SOON_DAYS,
    HOST,
    HUGE_BODY_DEFAULT_BYTES,
    LATIN1_TEXT,
    RETRY_AFTER_S,
    SHORT_BODY_DECLARED_BYTES,
    SHORT_BODY_SENT_BYTES,
    TLS_KINDS,
    TRICKLE_BODY_DECLARED_BYTES,
    WRONG_HOSTNAME,
    AppServer,
    RawServer,
    TlsServers,
    WebhookServer,
    live_server_threads,
)

pytestmark = [
    pytest.mark.usefixtures("no_leftover_server_threads"),
    pytest.mark.timeout(15),
]

CLIENT_TIMEOUT_S = 5.0
GET_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

# OpenSSL's verify codes; their wording changes between versions, not these.
X509_CERT_HAS_EXPIRED = 10
X509_DEPTH_ZERO_SELF_SIGNED = 18
X509_UNABLE_TO_GET_ISSUER_LOCALLY = 20
X509_IP_ADDRESS_MISMATCH = 64


# --- the application server ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "header", "value"),
    [
        ("GET", "/", 200, "Content-Type", "application/json"),
        ("GET", "/ok", 200, "Content-Type", "application/json"),
        ("GET", "/status/503", 503, None, None),
        ("HEAD", "/status/503", 503, None, None),
        ("POST", "/status/201", 201, None, None),
        ("DELETE", "/status/418", 418, None, None),
        ("GET", "/status/204", 204, "Content-Length", None),
        ("GET", "/status/99", 404, None, None),
        ("GET", "/redirect/2", 301, "Location", "/redirect/1"),
        ("GET", "/redirect/1", 301, "Location", "/ok"),
        ("GET", "/redirect/0", 200, None, None),
        (
            "GET",
            "/redirect-to?url=http://x.invalid/a",
            301,
            "Location",
            "http://x.invalid/a",
        ),
        ("GET", "/redirect-to?url=/ok&status=302", 302, "Location", "/ok"),
        ("GET", "/redirect-to", 400, None, None),
        ("GET", "/loop", 301, "Location", "/loop"),
        ("GET", "/ratelimit", 429, "Retry-After", str(RETRY_AFTER_S)),
        ("GET", "/github-ratelimit", 403, "X-RateLimit-Remaining", "0"),
        ("GET", "/gzip", 200, "Content-Encoding", "gzip"),
        ("GET", "/charset", 200, "Content-Type", "text/plain; charset=iso-8859-1"),
        ("GET", "/maintenance", 200, "Content-Type", "text/html"),
        ("HEAD", "/head405", 405, "Allow", "GET"),
        ("GET", "/head405", 200, None, None),
        ("GET", "/json?body=[1]&status=422", 422, "Content-Type", "application/json"),
        ("GET", "/no/such/route", 404, None, None),
    ],
)
def test_route_answers_status_and_header(
    app_server, method, path, status, header, value
):
    answer_status, headers, _ = _exchange(app_server, method, path)

    assert answer_status == status
    if header:
        assert headers.get(header) == value


@pytest.mark.parametrize(
    ("path", "document"),
    [
        ("/ok", {"status": "ok"}),
        ("/json?body=%7B%22a%22%3A%5B1%2C2%5D%7D", {"a": [1, 2]}),
        ("/gzip", {"status": "ok", "compressed": True}),
        ("/delay/50", {"status": "ok", "delay_ms": 50}),
        ("/ratelimit", {"message": "slow down"}),
        ("/fail-once/body", {"status": "unavailable", "attempt": 1}),
    ],
)
def test_route_answers_json(app_server, path, document):
    answer = requests.get(app_server.url(path), timeout=CLIENT_TIMEOUT_S)

    assert answer.json() == document


def test_head_sends_headers_of_the_get_but_no_body(app_server):
    _, get_headers, get_body = _exchange(app_server, "GET", "/ok")
    status, head_headers, head_body = _exchange(app_server, "HEAD", "/ok")

    assert status == 200
    assert head_body == b""
    assert head_headers["Content-Length"] == str(len(get_body))
    assert get_headers["Content-Length"] == str(len(get_body))


def test_gzip_body_is_compressed_on_the_wire(app_server):
    _, _, raw_body = _exchange(app_server, "GET", "/gzip")

    assert raw_body.startswith(b"\x1f\x8b")
    assert json.loads(gzip.decompress(raw_body)) == {"status": "ok", "compressed": True}


def test_charset_body_is_latin1(app_server):
    _, _, raw_body = _exchange(app_server, "GET", "/charset")
    answer = requests.get(app_server.url("/charset"), timeout=CLIENT_TIMEOUT_S)

    assert raw_body == LATIN1_TEXT.encode("latin-1")
    assert answer.encoding == "iso-8859-1"
    assert answer.text == LATIN1_TEXT


def test_maintenance_page_says_so(app_server):
    answer = requests.get(app_server.url("/maintenance"), timeout=CLIENT_TIMEOUT_S)

    assert "down for maintenance" in answer.text


def test_redirect_chain_takes_n_hops_to_ok(app_server):
    answer = requests.get(app_server.url("/redirect/3"), timeout=CLIENT_TIMEOUT_S)

    assert answer.status_code == 200
    assert answer.url == app_server.url("/ok")
    assert [hop.status_code for hop in answer.history] == [301, 301, 301]
    for path in ("/redirect/3", "/redirect/2", "/redirect/1", "/ok"):
        assert app_server.count(path) == 1


def test_loop_redirects_until_the_client_gives_up(app_server):
    with requests.Session() as session:
        session.max_redirects = 4
        with pytest.raises(requests.TooManyRedirects):
            session.get(app_server.url("/loop"), timeout=CLIENT_TIMEOUT_S)

    assert app_server.count("/loop") == 5


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/fail-once/a", [503, 200, 200]),
        ("/fail-times/2/a", [503, 503, 200, 200]),
        ("/fail-times/0/a", [200]),
    ],
)
def test_failing_routes_recover_after_n_failures(app_server, path, statuses):
    seen = [_exchange(app_server, "GET", path)[0] for _ in statuses]

    assert seen == statuses


def test_failing_keys_count_separately(app_server):
    first_of_a = _exchange(app_server, "GET", "/fail-once/a")[0]
    first_of_b = _exchange(app_server, "GET", "/fail-once/b")[0]
    second_of_a = _exchange(app_server, "GET", "/fail-once/a")[0]

    assert (first_of_a, first_of_b, second_of_a) == (503, 503, 200)


def test_delay_holds_the_answer(app_server):
    with pytest.raises(requests.ReadTimeout):
        requests.get(app_server.url("/delay/2000"), timeout=0.2)

    assert app_server.count("/delay/2000") == 1


def test_counts_every_request_from_many_threads(app_server):
    def fetch_ten(_) -> None:
        with requests.Session() as session:
            for _ in range(10):
                session.get(app_server.url("/ok?n=1"), timeout=CLIENT_TIMEOUT_S)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fetch_ten, range(8)))

    assert app_server.count("/ok") == 80
    assert app_server.count("/ok?n=1") == 0


def test_records_the_headers_each_request_sent(app_server):
    sent = {"Authorization": "Bearer test-token", "User-Agent": "probe/1.0"}
    requests.get(app_server.url("/ok"), headers=sent, timeout=CLIENT_TIMEOUT_S)
    requests.get(app_server.url("/ok"), timeout=CLIENT_TIMEOUT_S)

    first, second = app_server.received_headers("/ok")
    assert first["authorization"] == "Bearer test-token"
    assert first["User-Agent"] == "probe/1.0"
    assert second["Authorization"] is None
    assert app_server.received_headers("/never") == []


def test_headers_route_echoes_the_request_headers(app_server):
    answer = requests.get(
        app_server.url("/headers"), headers={"X-Probe": "42"}, timeout=CLIENT_TIMEOUT_S
    )

    assert answer.json()["X-Probe"] == "42"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method_route_echoes_method_and_body(app_server, method):
    answer = requests.request(
        method, app_server.url("/method"), data=b"hello", timeout=CLIENT_TIMEOUT_S
    )

    assert answer.json() == {"method": method, "body": "hello"}


# --- misbehaving raw servers ----------------------------------------------------


def test_silent_server_accepts_but_never_answers(raw_server):
    server = raw_server("silent")

    with (
        _raw_connection(server, timeout_s=0.3) as connection,
        pytest.raises(TimeoutError),
    ):
        connection.recv(1)


def test_trickle_headers_sends_one_byte_then_waits(raw_server):
    server = raw_server("trickle_headers")

    with _raw_connection(server, timeout_s=CLIENT_TIMEOUT_S) as connection:
        first = connection.recv(100)
        connection.settimeout(0.3)
        with pytest.raises(TimeoutError):
            connection.recv(100)

    assert first == b"H"


def test_trickle_headers_never_finishes_the_head(raw_server):
    server = raw_server("trickle_headers", interval_s=0.01)

    with _raw_connection(server, timeout_s=CLIENT_TIMEOUT_S) as connection:
        pieces = [connection.recv(100) for _ in range(60)]

    received = b"".join(pieces)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\n" not in received
    assert all(len(piece) <= 2 for piece in pieces)


def test_trickle_body_declares_a_large_body_and_drips_it(raw_server):
    server = raw_server("trickle_body", interval_s=0.01)

    with _raw_connection(server, timeout_s=CLIENT_TIMEOUT_S) as connection:
        head, body_start = _read_head(connection)
        body_start += b"".join(connection.recv(100) for _ in range(3))

    assert f"Content-Length: {TRICKLE_BODY_DECLARED_BYTES}".encode() in head
    assert 3 <= len(body_start) < 20
    assert set(body_start) == {ord("x")}


@pytest.mark.parametrize(
    ("behaviour", "declared_bytes", "sent_bytes"),
    [
        ("close_midway", CLOSE_MIDWAY_DECLARED_BYTES, CLOSE_MIDWAY_DECLARED_BYTES // 2),
        ("short_body", SHORT_BODY_DECLARED_BYTES, SHORT_BODY_SENT_BYTES),
    ],
)
def test_truncated_bodies_end_early(raw_server, behaviour, declared_bytes, sent_bytes):
    server = raw_server(behaviour)

    with _http_response(server) as response:
        declared = int(response.headers["Content-Length"])
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()

    assert declared == declared_bytes
    assert len(cut.value.partial) == sent_bytes


def test_garbage_is_not_http(raw_server):
    server = raw_server("garbage")

    with pytest.raises(http.client.BadStatusLine), _http_response(server):
        pass


def test_huge_body_streams_zeros_of_the_declared_size(raw_server):
    size_bytes = 3 * 65536 + 5
    server = raw_server("huge_body", size_bytes=size_bytes)

    with _http_response(server) as response:
        body = response.read()

    assert int(response.headers["Content-Length"]) == size_bytes
    assert body == bytes(size_bytes)


def test_huge_body_defaults_to_a_gibibyte_and_can_be_abandoned(raw_server):
    server = raw_server("huge_body")

    with _http_response(server) as response:
        start = response.read(8 << 20)

    assert int(response.headers["Content-Length"]) == HUGE_BODY_DEFAULT_BYTES
    assert start == bytes(8 << 20)


def test_endless_chunked_keeps_sending(raw_server):
    server = raw_server("endless_chunked")

    with _http_response(server) as response:
        start = response.read(4 << 20)

    assert response.chunked
    assert len(start) == 4 << 20


def test_raw_server_closes_everything_after_its_lifetime(raw_server):
    server = raw_server("silent", lifetime_s=0.3)

    with _raw_connection(server, timeout_s=CLIENT_TIMEOUT_S) as connection:
        assert connection.recv(1) == b""

    assert _refused_within(server.port, timeout_s=2.0)


def test_refused_port_refuses(refused_port):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, refused_port), timeout=CLIENT_TIMEOUT_S)

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{HOST}:{refused_port}/", timeout=CLIENT_TIMEOUT_S)


def test_unknown_behaviour_is_refused():
    with pytest.raises(KeyError):
        RawServer("polite")


# --- TLS ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["valid", "expiring_soon"])
def test_trusted_certificates_verify(tls_servers, tls_ca_bundle, kind):
    server = tls_servers[kind]

    answer = requests.get(
        server.url("/ok"), verify=str(tls_ca_bundle), timeout=CLIENT_TIMEOUT_S
    )

    assert answer.json() == {"status": "ok"}
    assert server.url("/ok").startswith("https://")
    assert server.count("/ok") == 1


@pytest.mark.parametrize(
    ("kind", "verify_code"),
    [
        ("self_signed", X509_DEPTH_ZERO_SELF_SIGNED),
        ("unknown_ca", X509_UNABLE_TO_GET_ISSUER_LOCALLY),
        ("expired", X509_CERT_HAS_EXPIRED),
        ("wrong_host", X509_IP_ADDRESS_MISMATCH),
    ],
)
def test_bad_certificates_fail_verification(
    tls_servers, tls_ca_bundle, kind, verify_code
):
    context = ssl.create_default_context(cafile=tls_ca_bundle)

    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        _tls_handshake(tls_servers[kind].port, context, HOST)

    assert failure.value.verify_code == verify_code


def test_wrong_host_certificate_names_only_the_wrong_host(tls_servers, tls_ca_bundle):
    context = ssl.create_default_context(cafile=tls_ca_bundle)

    certificate = _tls_handshake(
        tls_servers["wrong_host"].port, context, WRONG_HOSTNAME
    )

    assert certificate["subjectAltName"] == (("DNS", WRONG_HOSTNAME),)


@pytest.mark.parametrize(
    ("kind", "lowest_days_left", "highest_days_left"),
    [
        ("valid", 365, None),
        ("expiring_soon", EXPIRING_SOON_DAYS - 0.1, EXPIRING_SOON_DAYS),
        ("expired", -1.1, -0.9),
    ],
)
def test_certificate_expiry_dates(
    tls_servers, kind, lowest_days_left, highest_days_left
):
    days_left = _days_left(tls_servers[kind].port)

    assert days_left >= lowest_days_left
    if highest_days_left is not None:
        assert days_left <= highest_days_left


def test_tls_servers_offer_every_kind(tls_servers):
    assert tuple(tls_servers) == TLS_KINDS


# --- webhook receiver -----------------------------------------------------------


def test_webhook_records_posted_json(webhook_server):
    document = {"event": "down", "name": "api"}

    answer = requests.post(
        webhook_server.url("/hook"), json=document, timeout=CLIENT_TIMEOUT_S
    )

    assert answer.status_code == 200
    assert webhook_server.bodies == [document]
    assert webhook_server.received[0].path == "/hook"
    assert webhook_server.received[0].headers["content-type"] == "application/json"


def test_webhook_keeps_bodies_that_are_not_json(webhook_server):
    requests.post(webhook_server.url(), data=b"plain", timeout=CLIENT_TIMEOUT_S)

    assert webhook_server.bodies == [None]
    assert webhook_server.received[0].body == b"plain"


def test_webhook_answers_the_status_it_is_told(webhook_server):
    webhook_server.answer_with(status=500)

    answer = requests.post(webhook_server.url(), json={}, timeout=CLIENT_TIMEOUT_S)

    assert answer.status_code == 500
    assert webhook_server.bodies == [{}]


def test_slow_webhook_still_records_what_timed_out(webhook_server):
    webhook_server.answer_with(delay_ms=5000)

    with pytest.raises(requests.ReadTimeout):
        requests.post(webhook_server.url(), json={"n": 1}, timeout=0.2)

    assert webhook_server.wait_for(1, timeout_s=1.0)
    assert webhook_server.bodies == [{"n": 1}]


def test_webhook_wait_for_gives_up(webhook_server):
    assert not webhook_server.wait_for(1, timeout_s=0.05)


# --- clean stops ------------------------------------------------------------------


def test_every_server_stops_without_leaving_threads(tls_identities):
    threads_before = set(threading.enumerate())

    # Each server is left mid-conversation, the hardest moment to stop it.
    with contextlib.ExitStack() as stack:
        for behaviour in ("silent", "huge_body", "trickle_headers", "endless_chunked"):
            server = stack.enter_context(RawServer(behaviour))
            stack.enter_context(_raw_connection(server, CLIENT_TIMEOUT_S))

        app = stack.enter_context(AppServer())
        kept_alive = stack.enter_context(requests.Session())
        kept_alive.get(app.url("/ok"), timeout=CLIENT_TIMEOUT_S)
        with pytest.raises(requests.ReadTimeout):
            requests.get(app.url("/delay/10000"), timeout=0.1)

        webhook = stack.enter_context(WebhookServer())
        webhook.answer_with(delay_ms=10000)
        with pytest.raises(requests.ReadTimeout):
            requests.post(webhook.url(), json={}, timeout=0.1)

        tls = stack.enter_context(TlsServers(tls_identities))
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(tls["self_signed"].url(), timeout=CLIENT_TIMEOUT_S)

        assert len(live_server_threads()) > 10

    assert live_server_threads() == []
    assert set(threading.enumerate()) <= threads_before


# --- helpers --------------------------------------------------------------------


def _exchange(server, method: str, path: str) -> tuple[int, dict, bytes]:
    """One request over http.client: no redirects followed, nothing decoded."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=CLIENT_TIMEOUT_S)
    with contextlib.closing(connection):
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()


@contextlib.contextmanager
def _http_response(server):
    connection = http.client.HTTPConnection(HOST, server.port, timeout=CLIENT_TIMEOUT_S)
    with contextlib.closing(connection):
        connection.request("GET", "/")
        yield connection.getresponse()


@contextlib.contextmanager
def _raw_connection(server, timeout_s: float):
    with socket.create_connection((HOST, server.port), timeout=timeout_s) as client:
        client.sendall(GET_REQUEST)
        yield client


def _read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(4096)
    head, _, body_start = received.partition(b"\r\n\r\n")
    return head, body_start


def _refused_within(port: int, timeout_s: float) -> bool:
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        try:
            socket.create_connection((HOST, port), timeout=timeout_s).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def _tls_handshake(port: int, context: ssl.SSLContext, hostname: str) -> dict:
    with (
        socket.create_connection((HOST, port), timeout=CLIENT_TIMEOUT_S) as plain,
        context.wrap_socket(plain, server_hostname=hostname) as tls,
    ):
        return tls.getpeercert()


def _days_left(port: int) -> float:
    # Verification is off so that even the expired certificate can be read.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((HOST, port), timeout=CLIENT_TIMEOUT_S) as plain,
        context.wrap_socket(plain) as tls,
    ):
        der = tls.getpeercert(binary_form=True)

    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    now = datetime.datetime.now(datetime.UTC)
    return (not_after - now) / datetime.timedelta(days=1)
