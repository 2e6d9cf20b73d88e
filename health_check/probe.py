"""One HTTP attempt at one endpoint, under a hard deadline; no dotflow here."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from health_check import TOOL_NAME, __version__
from health_check.certificates import certificate_facts, fetch_unverified
from health_check.config import Endpoint, mask_url
from health_check.server_text import printable

USER_AGENT = f"{TOOL_NAME}/{__version__} (+requests/{requests.__version__})"
MAX_REDIRECTS = 10
BODY_CAP_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
URL_SHOWN_CHARS = 2000
HOST_SHOWN_CHARS = 253  # the longest DNS name

# verify: false is the user's explicit choice, and the row says tls.verified
# false; urllib3's per-request warning would only repeat it on stderr.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

# OpenSSL's X509_V_ERR_* codes, which ssl.SSLCertVerificationError carries.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
_CERTIFICATE_KINDS = ("tls_untrusted", "tls_expired", "tls_hostname")


_DEFINITE_ERRORS = {*_CERTIFICATE_KINDS, "too_many_redirects"}

# A final answer's status (RFC 9110 s15); a 1xx is only ever interim.
_FINAL_STATUSES = range(200, 600)
# Every status RFC 9110 defines; report_schema.json allows exactly these.
_REPORTABLE_STATUSES = range(100, 600)


@dataclass
class Attempt:
    """What one HTTP attempt saw. `response_time_ms` covers send to last body byte."""

    status_code: int | None = None
    reason: str = ""
    response_time_ms: float | None = None
    error_kind: str | None = None
    error: str | None = None
    final_url: str | None = None
    redirects: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_bytes_read: int = 0
    body_truncated: bool = False
    encoding: str | None = None  # the charset the Content-Type declared, if any
    tls: dict[str, Any] | None = None  # the monitored host's leaf certificate
    definite: bool = False  # a failure another attempt would only repeat

    @property
    def transient(self) -> bool:
        """Worth another attempt: no answer, a broken one, 5xx or 429.

        A certificate that fails verification or a redirect loop will not
        change in a second, so those are definite, like a 404.
        """
        if self.definite or self.error_kind in _DEFINITE_ERRORS:
            return False
        if self.status_code is None or self.error_kind is not None:
            return True
        return self.status_code >= 500 or self.status_code == 429


def attempt(endpoint: Endpoint) -> Attempt:
    """Make one request; every failure comes back as an Attempt, never raised."""
    deadline = _Deadline(endpoint.timeout_s)
    certificate = _FirstCertificate(enabled=_is_https(endpoint.url))
    exchange = _Exchange(endpoint.follow_redirects)
    result = Attempt()

    try:
        with _session(exchange) as session, deadline, certificate:
            response = session.request(
                endpoint.method,
                endpoint.url,
                headers=endpoint.request_headers(),
                data=endpoint.body,
                json=endpoint.json_body,
                timeout=(endpoint.timeout_s, endpoint.timeout_s),
                allow_redirects=endpoint.follow_redirects,
                stream=True,
                verify=_verify(endpoint),
                hooks={"response": exchange.on_response},
            )
            exchange.following_redirect = False
            with response:
                _record_response(result, response)
                _read_body(result, response, deadline)
            exchange.finish()
    except Exception as error:  # translated below, in one place
        exchange.finish()
        failure = classify(error, deadline, endpoint, exchange)
        result.error_kind, result.error, result.definite = failure

    result.response_time_ms = exchange.elapsed_ms()
    result.tls = _tls_facts(endpoint, result, certificate, deadline)
    if result.status_code is None and result.error_kind is None:
        result.error_kind, result.error = "invalid_response", "no HTTP answer"
    return result


def classify(
    error: BaseException,
    deadline: _Deadline,
    endpoint: Endpoint,
    exchange: _Exchange,
) -> tuple[str, str, bool]:
    """Translate a transport exception into (error_kind, one-line error, definite).

    The line is built from fixed phrases, host names and errno text only.
    Exception text from requests and urllib3 may quote the request's URL or
    headers, secrets included, so it never reaches the row.
    """
    limit = f"{endpoint.timeout_s:g} s"
    if deadline.expired:
        return "timeout", f"no complete answer within the {limit} deadline", False
    if isinstance(error, _NotFinal):
        return "invalid_response", error.line, False

    chain = list(_causes(error))

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(item, kinds) for item in chain)

    if caused_by(requests.TooManyRedirects):
        return "too_many_redirects", f"more than {MAX_REDIRECTS} redirects", True
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return (*_tls_kind(item), True)
    if caused_by(ssl.SSLError, requests.exceptions.SSLError):
        return "tls", "TLS handshake failed", False
    if caused_by(urllib3.exceptions.NameResolutionError):
        return "dns", f"cannot resolve host {_failed_host(chain, endpoint)}", False
    if caused_by(requests.Timeout, socket.timeout):
        return "timeout", f"no answer within {limit}", False
    if caused_by(urllib3.exceptions.NewConnectionError):
        where = _failed_address(chain, endpoint)
        return "connect", f"cannot connect to {where}: {_errno_text(chain)}", False
    return _answer_failure(error, chain, exchange)


def _answer_failure(
    error: BaseException, chain: list[BaseException], exchange: _Exchange
) -> tuple[str, str, bool]:
    """A connection was made, or meant to be: what went wrong with the answer.

    A redirect's Location the server chose (file://, a bad port, bytes that
    are not UTF-8) breaks requests in many ways; none of them is our bug.
    """
    if any(_is_not_http(item) for item in chain):
        return "invalid_response", "not an HTTP response", False
    broken = _broken_text(chain)
    if broken is not None:
        return "invalid_response", broken, False
    if exchange.following_redirect:
        text = "redirect to an unsupported or malformed URL"
        return "invalid_response", text, True
    if exchange.sent and any(isinstance(item, _EXCHANGE_ERRORS) for item in chain):
        return "invalid_response", f"broken HTTP response ({_kind_name(chain)})", False
    return "internal", f"{type(error).__name__}: unexpected error in the check", False


# An answer broken on the way, most specific first, each with a fixed phrase.
_BROKEN_ANSWERS: list[tuple[tuple[type[BaseException], ...], str]] = [
    ((http.client.RemoteDisconnected,), "connection closed without an answer"),
    (
        (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead),
        "answer cut off before its end",
    ),
    ((urllib3.exceptions.InvalidChunkLength,), "malformed chunked body"),
    (
        (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError),
        "body does not match its Content-Encoding",
    ),
    ((ConnectionResetError,), "connection reset mid-answer"),
    (
        (
            urllib3.exceptions.ProtocolError,
            requests.exceptions.ChunkedEncodingError,
            requests.ConnectionError,
        ),
        "connection broken mid-answer",
    ),
]
# Anything else requests, urllib3 or http.client raise once the request is out.
_EXCHANGE_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
)


class _Exchange:
    """One request's way through requests: when it went out, where it stands.

    Timing starts in the adapter, right before the first request is sent, so
    building the session, starting the deadline and requests' own settings
    lookups are not counted; it ends at the last body byte.
    """

    def __init__(self, follow_redirects: bool) -> None:
        self.follow_redirects = follow_redirects
        self.following_redirect = False
        self.sent_at: float | None = None
        self.finished_at: float | None = None
        self._created_at = time.perf_counter()

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    def sending(self) -> None:
        if self.sent_at is None:
            self.sent_at = time.perf_counter()

    def finish(self) -> None:
        if self.finished_at is None:
            self.finished_at = time.perf_counter()

    def elapsed_ms(self) -> float:
        started = self.sent_at or self._created_at
        finished = self.finished_at or time.perf_counter()
        return round((finished - started) * 1000, 1)

    def on_response(self, response: requests.Response, **_: Any) -> None:
        """Close a redirect's connection instead of letting requests read its body.

        requests reads each redirect's whole body before following it; a 301
        with an endless body would then be read without limit. Whatever fails
        from here until requests hands back a response is the redirect's doing.
        """
        if response.is_redirect:
            response.raw.close()
            self.following_redirect = self.follow_redirects


class _Deadline:
    """Shuts every connection of the attempt down once its time is up.

    requests' timeout bounds each socket operation, so a server that sends a
    byte a second never trips it. Shutting the socket down from a timer thread
    wakes the blocked read at once, and the attempt ends within its deadline.
    """

    local = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._ends_at = 0.0

    def __enter__(self) -> _Deadline:
        self._ends_at = time.monotonic() + self.seconds
        _Deadline.local.current = self
        self._timer.start()
        return self

    @property
    def remaining_s(self) -> float:
        """Time left, for work after the request such as a certificate fetch."""
        return self._ends_at - time.monotonic()

    def __exit__(self, *exc_info: Any) -> None:
        _Deadline.local.current = None
        self._timer.cancel()
        self._timer.join()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor, because wrapping a socket in TLS detaches
        # the original object before the handshake starts. shutdown() through
        # any descriptor ends the one connection they share, handshake or not.
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                _shut(self._sockets[-1])

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch_current(sock: socket.socket) -> None:
    deadline = getattr(_Deadline.local, "current", None)
    if deadline is not None:
        deadline.watch(sock)


class _FirstCertificate:
    """Keeps the leaf certificate of the attempt's first TLS connection.

    The first connection always goes to the monitored host, so a redirect
    target's certificate never stands in for the endpoint's own.
    """

    local = threading.local()

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.der: bytes | None = None
        self.verified = False

    def __enter__(self) -> _FirstCertificate:
        _FirstCertificate.local.current = self
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _FirstCertificate.local.current = None

    @staticmethod
    def catch_current(connection: HTTPSConnection) -> None:
        catcher = getattr(_FirstCertificate.local, "current", None)
        if catcher is None or not catcher.enabled or catcher.der is not None:
            return
        catcher.der = connection.sock.getpeercert(binary_form=True)
        catcher.verified = bool(connection.is_verified)


def _tls_facts(
    endpoint: Endpoint,
    result: Attempt,
    certificate: _FirstCertificate,
    deadline: _Deadline,
) -> dict[str, Any] | None:
    """The monitored host's certificate facts, even when the check failed.

    A failed verification leaves no certificate behind, so only then is it
    fetched again with a second, non-verifying handshake in the time left.
    """
    if certificate.der is None and result.error_kind in _CERTIFICATE_KINDS:
        certificate.der = _fetch_unverified(endpoint, deadline.remaining_s)
    if certificate.der is None:
        return None
    try:
        return certificate_facts(certificate.der, verified=certificate.verified)
    except ValueError:
        # A certificate cryptography cannot parse leaves nothing to report;
        # the attempt itself must still never raise.
        return None


def _fetch_unverified(endpoint: Endpoint, remaining_s: float) -> bytes | None:
    if remaining_s <= 0:
        return None
    parts = urlsplit(endpoint.url)
    with _Deadline(remaining_s) as deadline:
        return fetch_unverified(
            parts.hostname, parts.port or 443, remaining_s, watch=deadline.watch
        )


class _WatchedSocket:
    """Registers each new TCP connection with the attempt's deadline."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_current(sock)
        return sock


class _InterimSkippingResponse(http.client.HTTPResponse):
    """http.client skips a 100 Continue, but takes 102 or 103 for the answer.

    RFC 9110 s15.2: a 1xx is interim and the final answer follows, so a
    server that sends 103 Early Hints and then 200 is up, not a broken 103.
    """

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()
            if status not in _SKIPPED_INTERIM_STATUSES:
                return version, status, reason
            http.client._read_headers(self.fp)  # the interim answer's headers


# 100 is skipped by http.client itself; 101 switches protocols and ends HTTP.
_SKIPPED_INTERIM_STATUSES = (102, 103)


class _WatchedHTTPConnection(_WatchedSocket, HTTPConnection):
    response_class = _InterimSkippingResponse


class _WatchedHTTPSConnection(_WatchedSocket, HTTPSConnection):
    response_class = _InterimSkippingResponse

    def connect(self) -> None:
        super().connect()
        _FirstCertificate.catch_current(self)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections register their sockets with the deadline."""

    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange
        super().__init__(max_retries=0)

    def send(self, request: requests.PreparedRequest, **kwargs: Any):
        self.exchange.sending()
        return super().send(request, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Checks through HTTP(S)_PROXY get pools of the proxy manager's own,
        # which would escape the deadline without the same swap.
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def _session(exchange: _Exchange) -> requests.Session:
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = USER_AGENT
    adapter = _DeadlineAdapter(exchange)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _verify(endpoint: Endpoint) -> bool | str:
    if not endpoint.tls.verify:
        return False
    return endpoint.tls.ca_bundle or True


def _record_response(result: Attempt, response: requests.Response) -> None:
    """Note the answer; raise _NotFinal for a status no final answer may have."""
    status = response.status_code
    result.status_code = status if status in _REPORTABLE_STATUSES else None
    result.reason = printable(response.reason) or ""
    result.final_url = printable(mask_url(response.url), URL_SHOWN_CHARS)
    result.redirects = len(response.history)
    result.headers = dict(response.headers)
    result.encoding = _declared_charset(response.headers.get("Content-Type"))
    if status not in _FINAL_STATUSES:
        raise _NotFinal(status)


class _NotFinal(Exception):
    """An answer whose status is informational (1xx) or not a status at all.

    http.client skips only 100 Continue, so a 103 Early Hints or a 101 arrives
    here as if it were the answer; the real one may still be in the socket.
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status

    @property
    def line(self) -> str:
        if self.status in _REPORTABLE_STATUSES:
            return f"informational status {self.status} where a final answer was due"
        return f"status {self.status} is not an HTTP status (100-599)"


def _declared_charset(content_type: str | None) -> str | None:
    """The charset parameter itself; requests would guess ISO-8859-1 for text/*."""
    if not content_type:
        return None
    message = Message()
    message["Content-Type"] = content_type
    return message.get_content_charset()


def _read_body(
    result: Attempt, response: requests.Response, deadline: _Deadline
) -> None:
    """Read the decoded body up to the cap, then stop and drop the connection."""
    chunks: list[bytes] = []
    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=True):
        room = BODY_CAP_BYTES - result.body_bytes_read
        chunks.append(chunk[:room])
        result.body_bytes_read += min(len(chunk), room)
        if len(chunk) > room:
            result.body_truncated = True
            break
        if deadline.expired:
            break
    result.body = b"".join(chunks)
    if deadline.expired:
        raise TimeoutError("deadline passed while reading the body")


def _causes(error: BaseException):
    """The exception, its causes, and urllib3's wrapped reasons, outermost first."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        item = pending.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending.append(
            getattr(item, "reason", None)
            if isinstance(getattr(item, "reason", None), BaseException)
            else None
        )
        pending.extend(arg for arg in item.args if isinstance(arg, BaseException))
        pending.extend([item.__cause__, item.__context__])


def _tls_kind(error: ssl.SSLCertVerificationError) -> tuple[str, str]:
    reason = error.verify_message or "certificate verification failed"
    if error.verify_code == _CERT_EXPIRED:
        return "tls_expired", f"certificate has expired ({reason})"
    if error.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return "tls_hostname", f"certificate does not match the host ({reason})"
    return "tls_untrusted", f"certificate is not trusted ({reason})"


def _errno_text(chain: list[BaseException]) -> str:
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return item.strerror.lower()
    return "connection failed"


def _failed_host(chain: list[BaseException], endpoint: Endpoint) -> str:
    """The host whose name did not resolve: a redirect's, perhaps, not ours."""
    for item in chain:
        host = getattr(item, "_host", None) or getattr(
            getattr(item, "conn", None), "host", None
        )
        if isinstance(host, str):
            return _shown_host(host)
    return _request_address(chain, endpoint)[0]


def _failed_address(chain: list[BaseException], endpoint: Endpoint) -> str:
    """host:port of the connection that failed, from urllib3's own connection."""
    for item in chain:
        connection = getattr(item, "conn", None)
        host = getattr(connection, "host", None)
        port = getattr(connection, "port", None)
        if isinstance(host, str) and isinstance(port, int):
            return f"{_shown_host(host)}:{port}"
    return "{}:{}".format(*_request_address(chain, endpoint))


def _request_address(
    chain: list[BaseException], endpoint: Endpoint
) -> tuple[str, int | str]:
    """Host and port of the request requests was making, else the endpoint's."""
    url = endpoint.url
    for item in chain:
        request = getattr(item, "request", None)
        if isinstance(getattr(request, "url", None), str):
            url = request.url
            break
    try:
        parts = urlsplit(url)
        default_port = 443 if parts.scheme.lower() == "https" else 80
        host = _shown_host(parts.hostname or "?")
        return host, parts.port or default_port
    except ValueError:
        return "?", "?"


def _shown_host(host: str) -> str:
    """The host as the user wrote it: an IDN goes out as punycode, not shown so."""
    # Not punycode after all, or not ASCII: then it is shown as it came.
    with contextlib.suppress(UnicodeError):
        host = host.encode("ascii").decode("idna")
    return printable(host, HOST_SHOWN_CHARS)


def _broken_text(chain: list[BaseException]) -> str | None:
    for kinds, text in _BROKEN_ANSWERS:
        if any(isinstance(item, kinds) for item in chain):
            return text
    return None


def _kind_name(chain: list[BaseException]) -> str:
    """The innermost HTTP library error's type name: a hint, never its text."""
    names = [
        type(item).__name__ for item in chain if isinstance(item, _EXCHANGE_ERRORS)
    ]
    return names[-1] if names else type(chain[0]).__name__


def _is_https(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "https"


def _is_not_http(error: BaseException) -> bool:
    # RemoteDisconnected is a BadStatusLine too, but its own text says more.
    return isinstance(error, http.client.BadStatusLine) and not isinstance(
        error, http.client.RemoteDisconnected
    )
