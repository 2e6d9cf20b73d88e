"""One HTTP attempt at one endpoint, under a hard deadline; no dotflow here."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from health_check import __version__
from health_check.config import Endpoint, mask_url

USER_AGENT = f"health-check-flow/{__version__} (+requests/{requests.__version__})"
MAX_REDIRECTS = 10
BODY_CAP_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024

# OpenSSL's X509_V_ERR_* codes, which ssl.SSLCertVerificationError carries.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


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
    encoding: str | None = None

    @property
    def answered(self) -> bool:
        return self.status_code is not None and self.error_kind is None

    @property
    def transient(self) -> bool:
        """Worth another attempt: no answer, a broken one, 5xx or 429."""
        if self.status_code is None or self.error_kind is not None:
            return True
        return self.status_code >= 500 or self.status_code == 429


def attempt(endpoint: Endpoint) -> Attempt:
    """Make one request; every failure comes back as an Attempt, never raised."""
    deadline = _Deadline(endpoint.timeout_s)
    result = Attempt()
    started = time.perf_counter()

    try:
        with _session(endpoint) as session, deadline:
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
    if any(isinstance(item, requests.TooManyRedirects) for item in chain):
        return "too_many_redirects", f"more than {MAX_REDIRECTS} redirects"
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return _tls_kind(item)
    if any(
        isinstance(item, (ssl.SSLError, requests.exceptions.SSLError)) for item in chain
    ):
        return "tls", "TLS handshake failed"
    if any(isinstance(item, urllib3.exceptions.NameResolutionError) for item in chain):
        return "dns", f"cannot resolve host {_host(endpoint)}"
    if any(isinstance(item, (requests.Timeout, socket.timeout)) for item in chain):
        return "timeout", f"no answer within {limit}"
    if any(isinstance(item, urllib3.exceptions.NewConnectionError) for item in chain):
        return "connect", f"cannot connect to {_host(endpoint)}: {_errno_text(chain)}"
    if any(_is_not_http(item) for item in chain):
        return "invalid_response", "not an HTTP response"
    if any(isinstance(item, _BROKEN_RESPONSE) for item in chain):
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

    def __enter__(self) -> _Deadline:
        _Deadline.local.current = self
        self._timer.start()
        return self

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


class _WatchedSocket:
    """Registers each new TCP connection with the attempt's deadline."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_current(sock)
        return sock


class _WatchedHTTPConnection(_WatchedSocket, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedSocket, HTTPSConnection):
    pass


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
    result.encoding = response.encoding


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
    if error.verify_code == _HOSTNAME_MISMATCH:
        return "tls_hostname", f"certificate does not match the host ({reason})"
    return "tls_untrusted", f"certificate is not trusted ({reason})"


def _errno_text(chain: list[BaseException]) -> str:
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return item.strerror.lower()
    return "connection failed"


def _host(endpoint: Endpoint) -> str:
    return urlsplit(endpoint.url).hostname or "?"


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
