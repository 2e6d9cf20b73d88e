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

from health_check import __version__
from health_check.certificates import certificate_facts, fetch_unverified
from health_check.config import Endpoint, mask_url

USER_AGENT = f"health-check-flow/{__version__} (+requests/{requests.__version__})"
MAX_REDIRECTS = 10
BODY_CAP_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024

# verify: false is the user's explicit choice, and the row says tls.verified
# false; urllib3's per-request warning would only repeat it on stderr.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

# OpenSSL's X509_V_ERR_* codes, which ssl.SSLCertVerificationError carries.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
_CERTIFICATE_KINDS = ("tls_untrusted", "tls_expired", "tls_hostname")


_DEFINITE_ERRORS = {
    "tls_untrusted",
    "tls_expired",
    "tls_hostname",
    "too_many_redirects",
}


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

    @property
    def answered(self) -> bool:
        return self.status_code is not None and self.error_kind is None

    @property
    def transient(self) -> bool:
        """Worth another attempt: no answer, a broken one, 5xx or 429.

        A certificate that fails verification or a redirect loop will not
        change in a second, so those are definite, like a 404.
        """
        if self.error_kind in _DEFINITE_ERRORS:
            return False
        if self.status_code is None or self.error_kind is not None:
            return True
        return self.status_code >= 500 or self.status_code == 429


def attempt(endpoint: Endpoint) -> Attempt:
    """Make one request; every failure comes back as an Attempt, never raised."""
    deadline = _Deadline(endpoint.timeout_s)
    certificate = _FirstCertificate(enabled=_is_https(endpoint.url))
    result = Attempt()
    started = time.perf_counter()

    try:
        with _session(endpoint) as session, deadline, certificate:
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
                hooks={"response": _drop_redirect_body},
            )
            with response:
                _record_response(result, response)
                _read_body(result, response, deadline)
    except Exception as error:  # translated below, in one place
        result.error_kind, result.error = classify(error, deadline, endpoint)

    result.response_time_ms = round((time.perf_counter() - started) * 1000, 1)
    result.tls = _tls_facts(endpoint, result, certificate, deadline)
    if result.status_code is not None and result.error_kind is None:
        return result
    if result.error_kind is None:
        result.error_kind, result.error = "invalid_response", "no HTTP answer"
    return result


def classify(
    error: BaseException, deadline: _Deadline, endpoint: Endpoint
) -> tuple[str, str]:
    """Translate a transport exception into (error_kind, one-line error)."""
    limit = f"{endpoint.timeout_s:g} s"
    if deadline.expired:
        return "timeout", f"no complete answer within the {limit} deadline"

    chain = list(_causes(error))

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(item, kinds) for item in chain)

    if caused_by(requests.TooManyRedirects):
        return "too_many_redirects", f"more than {MAX_REDIRECTS} redirects"
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return _tls_kind(item)
    if caused_by(ssl.SSLError, requests.exceptions.SSLError):
        return "tls", "TLS handshake failed"
    if caused_by(urllib3.exceptions.NameResolutionError):
        return "dns", f"cannot resolve host {_host(endpoint)}"
    if caused_by(requests.Timeout, socket.timeout):
        return "timeout", f"no answer within {limit}"
    if caused_by(urllib3.exceptions.NewConnectionError):
        return "connect", f"cannot connect to {_host(endpoint)}: {_errno_text(chain)}"
    if any(_is_not_http(item) for item in chain):
        return "invalid_response", "not an HTTP response"
    if caused_by(*_BROKEN_RESPONSE):
        return "invalid_response", f"broken HTTP response: {_first_line(chain[-1])}"
    return "internal", f"{type(error).__name__}: {_first_line(error)}"


_BROKEN_RESPONSE = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.ConnectionError,
)


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


class _WatchedHTTPConnection(_WatchedSocket, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedSocket, HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _FirstCertificate.catch_current(self)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections register their sockets with the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def _session(endpoint: Endpoint) -> requests.Session:
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = USER_AGENT
    adapter = _DeadlineAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _verify(endpoint: Endpoint) -> bool | str:
    if not endpoint.tls.verify:
        return False
    return endpoint.tls.ca_bundle or True


def _drop_redirect_body(response: requests.Response, **_: Any) -> None:
    """Close a redirect's connection instead of letting requests read its body.

    requests reads each redirect's whole body before following it; a 301 with
    an endless body would then be read without limit.
    """
    if response.is_redirect:
        response.raw.close()


def _record_response(result: Attempt, response: requests.Response) -> None:
    result.status_code = response.status_code
    result.reason = response.reason or ""
    result.final_url = mask_url(response.url)
    result.redirects = len(response.history)
    result.headers = dict(response.headers)
    result.encoding = _declared_charset(response.headers.get("Content-Type"))


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


def _host(endpoint: Endpoint) -> str:
    return urlsplit(endpoint.url).hostname or "?"


def _is_https(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "https"


def _is_not_http(error: BaseException) -> bool:
    # RemoteDisconnected is a BadStatusLine too, but its own text says more.
    return isinstance(error, http.client.BadStatusLine) and not isinstance(
        error, http.client.RemoteDisconnected
    )


def _first_line(error: BaseException) -> str:
    """The error's first line, cut short, with no control characters.

    Exception text may quote what a server sent, and the row's error must
    stay one printable line in every report format.
    """
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return "".join(ch if ch.isprintable() else "?" for ch in lines[0][:200])
