"""Real loopback servers, well-behaved and misbehaving, for the tests to aim at.

Every server listens on 127.0.0.1 on an ephemeral port, serves from daemon
threads named ``test-server-*``, and on ``stop()`` (or leaving its ``with``
block) closes its sockets and joins its threads. Every server has
``url(path="/")``. The fixtures in conftest.py wrap them.

AppServer (fixture ``app_server``; also behind every TLS certificate)

=============================  ================================================
path (any method)              answer
=============================  ================================================
/ and /ok                      200, small JSON body {"status": "ok"}
/status/<code>                 <code> (200-599), HEAD included
/delay/<ms>                    waits <ms> milliseconds, then 200 JSON
/redirect/<n>                  301 chain of n hops ending at /ok
/redirect-to?url=U[&status=S]  301 (or S) with Location: U
/loop                          301 to itself, forever
/fail-once/<key>               503 on the first request for <key>, then 200
/fail-times/<n>/<key>          503 on the first n requests for <key>, then 200
/ratelimit                     429 with Retry-After: 7
/github-ratelimit              403 with X-RateLimit-Remaining: 0
/json?body=T[&status=S]        200 (or S) with the text T as JSON body
/gzip                          gzip-compressed JSON, Content-Encoding: gzip
/charset                       latin-1 text labelled charset=iso-8859-1
/headers                       the received request headers as a JSON object
/method                        {"method": ..., "body": ...} of the request
/maintenance                   200 HTML page saying "down for maintenance"
/head405                       405 to HEAD, 200 to GET
anything else                  404
=============================  ================================================

RawServer behaviours (fixture ``raw_server(name, **options)``); each
connection first has its request head read, then:

==================  ===========================================================
name                what the connection gets
==================  ===========================================================
silent              nothing, until the server stops
trickle_headers     a status line and headers, one byte per ``interval_s``
                    (1 s), never finishing the head
trickle_body        a head with Content-Length: 1000000, then one body byte
                    per ``interval_s`` (1 s)
close_midway        Content-Length: 1000, 500 body bytes, then a close
short_body          Content-Length: 100, 10 body bytes, then a close
garbage             bytes that are not HTTP, then a close
huge_body           Content-Length: ``size_bytes`` (1 GiB), streamed zeros
endless_chunked     Transfer-Encoding: chunked, ``chunk_bytes`` (16 KiB) chunks
                    every ``interval_s`` (0 s), never a last chunk
canned              the bytes ``answer`` exactly as given, then a close
==================  ===========================================================

TLS certificates (fixtures ``tls_servers[kind]``, ``tls_ca_bundle``); each kind
is an AppServer over https:

==================  ===========================================================
kind                certificate presented
==================  ===========================================================
valid               for 127.0.0.1 and localhost, signed by the test CA
self_signed         for 127.0.0.1 and localhost, signed by itself
unknown_ca          for 127.0.0.1 and localhost, signed by a CA nobody trusts
expired             for 127.0.0.1 and localhost, test CA, expired a day ago
expiring_soon       for 127.0.0.1 and localhost, test CA, expires in 3 days
wrong_host          for wrong.example only, signed by the test CA
==================  ===========================================================

WebhookServer (fixture ``webhook_server``) records every POST (path, headers,
body, parsed JSON) and answers 200, or what ``answer_with(status, delay_ms)``
says.
"""

import contextlib
import datetime
import functools
import gzip
import ipaddress
import itertools
import json
import re
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
THREAD_PREFIX = "test-server"

# How often idle loops look at the stop flag: the bound on how long stop() takes.
POLL_INTERVAL_S = 0.05

# A client that goes quiet this long loses its connection, so no handler
# thread can wait forever even if nobody calls stop().
CONNECTION_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 5.0

RAW_LIFETIME_S = 60.0
REQUEST_HEAD_LIMIT_BYTES = 65536
REQUEST_HEAD_WAIT_S = 5.0

CLOSE_MIDWAY_DECLARED_BYTES = 1000
SHORT_BODY_DECLARED_BYTES = 100
SHORT_BODY_SENT_BYTES = 10
TRICKLE_BODY_DECLARED_BYTES = 1_000_000
HUGE_BODY_DEFAULT_BYTES = 1 << 30

RETRY_AFTER_S = 7
EXPIRING_SOON_DAYS = 3
WRONG_HOSTNAME = "wrong.example"
SERVER_IDENTITIES = (HOST, "localhost")
TLS_KINDS = (
    "valid",
    "self_signed",
    "unknown_ca",
    "expired",
    "expiring_soon",
    "wrong_host",
)

LATIN1_TEXT = "Café crème, déjà vu, naïve façade.\n"
MAINTENANCE_PAGE = (
    "<!doctype html><html><head><title>Maintenance</title></head>"
    "<body><h1>Sorry, we are down for maintenance</h1></body></html>"
)

# One shared buffer streams any amount of zeros without allocating the body.
_ZEROS = memoryview(bytes(64 * 1024))


@dataclass
class Reply:
    """What one route answers; the handler adds Content-Length itself."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RouteRequest:
    """The parts of a request that a route may look at."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Message
    body: bytes
    times_seen: int
    stopping: threading.Event


@dataclass
class ReceivedWebhook:
    """One POST that reached the webhook receiver."""

    path: str
    headers: Message
    body: bytes
    json: object


@dataclass
class TlsIdentity:
    """A private key and certificate chain in one PEM, as a server loads it."""

    key_and_chain_pem: bytes


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP(S) server on 127.0.0.1 that stops without leaks."""

    def __init__(self, handler_class, tls_context: ssl.SSLContext | None = None):
        self.tls_context = tls_context
        self.stopping = threading.Event()
        self._connections_lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}

        super().__init__((HOST, 0), handler_class)

        self._serve_thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            name=f"{THREAD_PREFIX}-{type(self).__name__}",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls_context else "http"
        return f"{scheme}://{HOST}:{self.port}{path}"

    def start(self):
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._serve_thread.is_alive():
            self.shutdown()

        # Handlers may be parked on a keep-alive socket or a slow route;
        # cutting their sockets wakes them so they can be joined.
        for thread, connection in self._open_connections():
            _cut(connection)
            thread.join(JOIN_TIMEOUT_S)

        self.server_close()
        self._serve_thread.join(JOIN_TIMEOUT_S)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name; these
        # servers must look up no names, and they know theirs.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.port

    def process_request(self, request, client_address) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{THREAD_PREFIX}-{type(self).__name__}-connection",
            daemon=True,
        )
        self._track(thread, request)
        thread.start()

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def finish_request(self, request, client_address) -> None:
        request.settimeout(CONNECTION_TIMEOUT_S)
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return

        # The handshake runs here, in the connection's own thread, so a
        # client that never finishes it cannot stall the accept loop.
        tls_socket = self.tls_context.wrap_socket(
            request, server_side=True, do_handshake_on_connect=False
        )
        self._track(threading.current_thread(), tls_socket)
        with tls_socket:
            # stop() may have cut the plain socket just before it was wrapped.
            if self.stopping.is_set():
                return
            tls_socket.do_handshake()
            super().finish_request(tls_socket, client_address)

    def handle_error(self, request, client_address) -> None:
        # Clients hang up, time out and reject certificates on purpose in
        # these tests; only a bug in a handler deserves a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def _track(self, thread: threading.Thread, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections[thread] = connection

    def _open_connections(self) -> list[tuple[threading.Thread, socket.socket]]:
        with self._connections_lock:
            return list(self._connections.items())


class AppServer(LoopbackHTTPServer):
    """The routed application server; counts and records requests per path."""

    def __init__(self, tls_context: ssl.SSLContext | None = None):
        super().__init__(_AppHandler, tls_context)
        self._record_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._headers: defaultdict[str, list[Message]] = defaultdict(list)

    def count(self, path: str) -> int:
        """How many requests reached ``path`` (query string not included)."""
        with self._record_lock:
            return self._counts[path]

    def received_headers(self, path: str) -> list[Message]:
        """Headers of each request to ``path``, oldest first; names ignore case."""
        with self._record_lock:
            return list(self._headers[path])

    def record(self, path: str, headers: Message) -> int:
        """Note one request; returns how many ``path`` has had, this one included."""
        with self._record_lock:
            self._counts[path] += 1
            self._headers[path].append(headers)
            return self._counts[path]


class WebhookServer(LoopbackHTTPServer):
    """Receives webhook POSTs, records them, and answers as it is told."""

    def __init__(self):
        super().__init__(_WebhookHandler)
        self.status = 200
        self.delay_ms = 0
        self._arrived = threading.Condition()
        self._received: list[ReceivedWebhook] = []

    def answer_with(self, status: int = 200, delay_ms: int = 0) -> None:
        """Answer later POSTs with ``status`` after waiting ``delay_ms``."""
        self.status = status
        self.delay_ms = delay_ms

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._arrived:
            return list(self._received)

    @property
    def bodies(self) -> list[object]:
        """The parsed JSON of each POST (None where it was not JSON)."""
        return [webhook.json for webhook in self.received]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Wait until ``count`` POSTs have arrived; False if they did not."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: len(self._received) >= count, timeout_s
            )

    def record(self, webhook: ReceivedWebhook) -> None:
        with self._arrived:
            self._received.append(webhook)
            self._arrived.notify_all()


class RawServer:
    """A TCP server answering every connection with one misbehaviour.

    ``behaviour`` names a function in BEHAVIOURS; ``options`` go to it. After
    ``lifetime_s`` the server closes everything by itself, so nothing hangs.
    """

    def __init__(self, behaviour: str, lifetime_s: float = RAW_LIFETIME_S, **options):
        self.behaviour = behaviour
        self._serve_connection = functools.partial(BEHAVIOURS[behaviour], **options)
        self._lifetime_s = lifetime_s
        self._deadline = float("inf")  # set by start()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(POLL_INTERVAL_S)
        self.port = self._listener.getsockname()[1]

        self._accept_thread = self._thread(self._accept_loop, "accept")

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> "RawServer":
        self._deadline = time.monotonic() + self._lifetime_s
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._accept_thread.is_alive():
            self._accept_thread.join(JOIN_TIMEOUT_S)
        self._listener.close()

        # Connection threads poll the stop flag, so each ends promptly.
        for thread in list(self._threads):
            thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> "RawServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def finished(self) -> bool:
        return self._stopping.is_set() or time.monotonic() >= self._deadline

    def _accept_loop(self) -> None:
        with self._listener:
            while not self.finished():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                self._threads.append(self._thread(self._serve, "connection", client))
                self._threads[-1].start()

    def _serve(self, client: socket.socket) -> None:
        connection = RawConnection(client, self)
        with client:
            try:
                connection.read_request_head()
                self._serve_connection(connection)
            except OSError:
                pass  # the client hung up: that ends this connection's story

    def _thread(self, target, role: str, *args) -> threading.Thread:
        name = f"{THREAD_PREFIX}-raw-{self.behaviour}-{role}"
        return threading.Thread(target=target, args=args, name=name, daemon=True)


class RawConnection:
    """One accepted socket, with sends and pauses that give up on stop."""

    def __init__(self, client: socket.socket, server: RawServer):
        self._client = client
        self._server = server
        client.settimeout(POLL_INTERVAL_S)

    def read_request_head(self) -> bytes:
        """Read until the blank line ending the request head, within bounds."""
        head = b""
        give_up_at = time.monotonic() + REQUEST_HEAD_WAIT_S
        while b"\r\n\r\n" not in head and len(head) < REQUEST_HEAD_LIMIT_BYTES:
            if self._server.finished() or time.monotonic() > give_up_at:
                break
            try:
                chunk = self._client.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            head += chunk
        return head

    def send(self, data: bytes | memoryview) -> bool:
        """Send everything; False once the server stops or the client leaves."""
        view = memoryview(data)
        while view:
            if self._server.finished():
                return False
            try:
                sent = self._client.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            view = view[sent:]
        return True

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the server stopped meanwhile."""
        wake_at = time.monotonic() + seconds
        while time.monotonic() < wake_at:
            if self._server.finished():
                return False
            time.sleep(min(POLL_INTERVAL_S, max(wake_at - time.monotonic(), 0)))
        return not self._server.finished()


class TlsServers(Mapping):
    """One AppServer over https per certificate kind, started on first use."""

    def __init__(self, identities: Mapping[str, TlsIdentity]):
        self._identities = identities
        self._started: dict[str, AppServer] = {}

    def __getitem__(self, kind: str) -> AppServer:
        if kind not in self._started:
            context = server_tls_context(self._identities[kind])
            self._started[kind] = AppServer(tls_context=context).start()
        return self._started[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._identities)

    def __len__(self) -> int:
        return len(self._identities)

    def stop(self) -> None:
        for server in self._started.values():
            server.stop()

    def __enter__(self) -> "TlsServers":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def issue_tls_identities(ca: trustme.CA) -> dict[str, TlsIdentity]:
    """Make one server identity for each kind in TLS_KINDS."""
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)

    def by_ca(issuer: trustme.CA, *names: str, **dates) -> TlsIdentity:
        leaf = issuer.issue_cert(*names, **dates)
        return TlsIdentity(leaf.private_key_and_cert_chain_pem.bytes())

    return {
        "valid": by_ca(ca, *SERVER_IDENTITIES),
        "self_signed": _self_signed_identity(now),
        "unknown_ca": by_ca(trustme.CA(), *SERVER_IDENTITIES),
        "expired": by_ca(
            ca, *SERVER_IDENTITIES, not_before=now - 30 * day, not_after=now - day
        ),
        "expiring_soon": by_ca(
            ca,
            *SERVER_IDENTITIES,
            not_before=now - day,
            not_after=now + EXPIRING_SOON_DAYS * day,
        ),
        "wrong_host": by_ca(ca, WRONG_HOSTNAME),
    }


def server_tls_context(identity: TlsIdentity) -> ssl.SSLContext:
    """A server-side TLS context presenting ``identity``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    # ssl loads certificates only from files (bpo-16487).
    with tempfile.TemporaryDirectory() as folder:
        pem_path = Path(folder) / "identity.pem"
        pem_path.write_bytes(identity.key_and_chain_pem)
        context.load_cert_chain(pem_path)
    return context


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening, so connecting is refused."""
    # Bound but never listening, then closed: the kernel refuses connections.
    # A listening socket that never accepts would not be refused.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def live_server_threads() -> list[threading.Thread]:
    """The threads of these servers still running, to spot leaks."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


# --- raw-socket behaviours: each gets one RawConnection -----------------------


def silent(connection: RawConnection) -> None:
    while connection.pause(1.0):
        pass


def trickle_headers(connection: RawConnection, interval_s: float = 1.0) -> None:
    start = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: "
    for byte in itertools.chain(start, itertools.repeat(ord("a"))):
        if not (connection.send(bytes([byte])) and connection.pause(interval_s)):
            return


def trickle_body(connection: RawConnection, interval_s: float = 1.0) -> None:
    connection.send(_response_head({"Content-Length": TRICKLE_BODY_DECLARED_BYTES}))
    while connection.send(b"x") and connection.pause(interval_s):
        pass


def close_midway(connection: RawConnection) -> None:
    half_body = b"x" * (CLOSE_MIDWAY_DECLARED_BYTES // 2)
    head = _response_head({"Content-Length": CLOSE_MIDWAY_DECLARED_BYTES})
    connection.send(head + half_body)


def short_body(connection: RawConnection) -> None:
    head = _response_head({"Content-Length": SHORT_BODY_DECLARED_BYTES})
    connection.send(head + b"x" * SHORT_BODY_SENT_BYTES)


def garbage(connection: RawConnection) -> None:
    connection.send(b"\x00\x01\x02 this is no HTTP \xfe\xff\r\n\r\n")


def huge_body(
    connection: RawConnection, size_bytes: int = HUGE_BODY_DEFAULT_BYTES
) -> None:
    if not connection.send(_response_head({"Content-Length": size_bytes})):
        return

    left_bytes = size_bytes
    while left_bytes > 0:
        piece = _ZEROS[: min(left_bytes, len(_ZEROS))]
        if not connection.send(piece):
            return
        left_bytes -= len(piece)


def endless_chunked(
    connection: RawConnection, chunk_bytes: int = 16384, interval_s: float = 0.0
) -> None:
    connection.send(_response_head({"Transfer-Encoding": "chunked"}))

    chunk = f"{chunk_bytes:x}\r\n".encode() + b"x" * chunk_bytes + b"\r\n"
    while connection.send(chunk) and connection.pause(interval_s):
        pass


BEHAVIOURS: dict[str, Callable[..., None]] = {
    behaviour.__name__: behaviour
    for behaviour in (
        silent,
        trickle_headers,
        trickle_body,
        close_midway,
        short_body,
        garbage,
        huge_body,
        endless_chunked,
    )
}


# --- application routes: RouteRequest -> Reply --------------------------------


def _ok(request: RouteRequest) -> Reply:
    return _json_reply({"status": "ok"})


def _status(request: RouteRequest) -> Reply:
    code = int(request.params["code"])
    return Reply(code, f"status {code}\n".encode(), {"Content-Type": "text/plain"})


def _delay(request: RouteRequest) -> Reply:
    delay_ms = int(request.params["ms"])
    # Waiting on the stop flag, not sleeping, lets stop() cut a slow answer.
    request.stopping.wait(delay_ms / 1000)
    return _json_reply({"status": "ok", "delay_ms": delay_ms})


def _redirect(request: RouteRequest) -> Reply:
    hops_left = int(request.params["hops"])
    if hops_left == 0:
        return _ok(request)
    return _redirect_reply(f"/redirect/{hops_left - 1}" if hops_left > 1 else "/ok")


def _redirect_to(request: RouteRequest) -> Reply:
    if "url" not in request.query:
        return Reply(400, b"redirect-to needs ?url=\n", {"Content-Type": "text/plain"})
    status = int(request.query.get("status", 301))
    return _redirect_reply(request.query["url"], status)


def _loop(request: RouteRequest) -> Reply:
    return _redirect_reply("/loop")


def _fail_times(request: RouteRequest) -> Reply:
    # The path names the key, so the per-path count is the per-key count.
    failures = int(request.params.get("times") or 1)
    if request.times_seen <= failures:
        document = {"status": "unavailable", "attempt": request.times_seen}
        return _json_reply(document, 503)
    return _ok(request)


def _ratelimit(request: RouteRequest) -> Reply:
    reply = _json_reply({"message": "slow down"}, 429)
    reply.headers["Retry-After"] = str(RETRY_AFTER_S)
    return reply


def _github_ratelimit(request: RouteRequest) -> Reply:
    reset_at = int(time.time()) + 3600
    reply = _json_reply({"message": "API rate limit exceeded"}, 403)
    reply.headers["X-RateLimit-Limit"] = "60"
    reply.headers["X-RateLimit-Remaining"] = "0"
    reply.headers["X-RateLimit-Reset"] = str(reset_at)
    return reply


def _json(request: RouteRequest) -> Reply:
    status = int(request.query.get("status", 200))
    body = request.query.get("body", "").encode()
    return Reply(status, body, {"Content-Type": "application/json"})


def _gzip(request: RouteRequest) -> Reply:
    reply = _json_reply({"status": "ok", "compressed": True})
    reply.body = gzip.compress(reply.body)
    reply.headers["Content-Encoding"] = "gzip"
    return reply


def _charset(request: RouteRequest) -> Reply:
    content_type = "text/plain; charset=iso-8859-1"
    return Reply(200, LATIN1_TEXT.encode("latin-1"), {"Content-Type": content_type})


def _headers(request: RouteRequest) -> Reply:
    return _json_reply(dict(request.headers.items()))


def _method(request: RouteRequest) -> Reply:
    body = request.body.decode("utf-8", errors="replace")
    return _json_reply({"method": request.method, "body": body})


def _maintenance(request: RouteRequest) -> Reply:
    return Reply(200, MAINTENANCE_PAGE.encode(), {"Content-Type": "text/html"})


def _head405(request: RouteRequest) -> Reply:
    if request.method == "HEAD":
        return Reply(405, b"", {"Allow": "GET"})
    return _ok(request)


def _not_found(request: RouteRequest) -> Reply:
    return Reply(404, b"not found\n", {"Content-Type": "text/plain"})


ROUTES: list[tuple[re.Pattern, Callable[[RouteRequest], Reply]]] = [
    (re.compile(pattern), route)
    for pattern, route in [
        (r"/(ok)?", _ok),
        (r"/status/(?P<code>[2-5]\d\d)", _status),
        (r"/delay/(?P<ms>\d+)", _delay),
        (r"/redirect/(?P<hops>\d+)", _redirect),
        (r"/redirect-to", _redirect_to),
        (r"/loop", _loop),
        (r"/fail-once/[^/]+", _fail_times),
        (r"/fail-times/(?P<times>\d+)/[^/]+", _fail_times),
        (r"/ratelimit", _ratelimit),
        (r"/github-ratelimit", _github_ratelimit),
        (r"/json", _json),
        (r"/gzip", _gzip),
        (r"/charset", _charset),
        (r"/headers", _headers),
        (r"/method", _method),
        (r"/maintenance", _maintenance),
        (r"/head405", _head405),
    ]
]


# --- private helpers ------------------------------------------------------------


class _QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no access log, replies sized exactly."""

    protocol_version = "HTTP/1.1"
    server_version = "loopback-test-server"

    def log_message(self, format, *args) -> None:
        pass  # an access log per request would bury the test output

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def send_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)

        # RFC 9110 s8.6: no Content-Length on 204; 304 repeats a GET's headers.
        has_body = reply.status not in (204, 304)
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()

        if has_body and self.command != "HEAD":
            self.wfile.write(reply.body)


class _AppHandler(_QuietHandler):
    def answer(self) -> None:
        path, _, query_text = self.path.partition("?")
        times_seen = self.server.record(path, self.headers)
        route, params = _find_route(path)

        request = RouteRequest(
            method=self.command,
            path=path,
            params=params,
            query={name: values[-1] for name, values in parse_qs(query_text).items()},
            headers=self.headers,
            body=self.read_body(),
            times_seen=times_seen,
            stopping=self.server.stopping,
        )
        self.send_reply(route(request))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer
    do_OPTIONS = answer


class _WebhookHandler(_QuietHandler):
    def do_POST(self) -> None:
        body = self.read_body()
        webhook = ReceivedWebhook(
            path=urlsplit(self.path).path,
            headers=self.headers,
            body=body,
            json=_parse_json(body),
        )
        self.server.record(webhook)

        self.server.stopping.wait(self.server.delay_ms / 1000)
        self.send_reply(_json_reply({"received": True}, self.server.status))

    def do_GET(self) -> None:
        self.send_reply(Reply(405, b"", {"Allow": "POST"}))


def _find_route(path: str) -> tuple[Callable[[RouteRequest], Reply], dict]:
    for pattern, route in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return route, match.groupdict()
    return _not_found, {}


def _json_reply(document: object, status: int = 200) -> Reply:
    body = json.dumps(document).encode()
    return Reply(status, body, {"Content-Type": "application/json"})


def _redirect_reply(location: str, status: int = 301) -> Reply:
    return Reply(status, b"", {"Location": location})


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _response_head(headers: dict[str, object]) -> bytes:
    lines = ["HTTP/1.1 200 OK"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _cut(connection: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket's, which would also drop the TLS
    # state under a thread still reading it.
    # OSError: its own thread has closed it already.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


def _self_signed_identity(now: datetime.datetime) -> TlsIdentity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed test")])
    alt_names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return TlsIdentity(key_pem + certificate.public_bytes(serialization.Encoding.PEM))


# --- a raw answer given by the test -------------------------------------------


def canned(connection: RawConnection, answer: bytes = b"") -> None:
    """Send ``answer`` exactly as given, then close: any malformed reply."""
    connection.send(answer)


BEHAVIOURS[canned.__name__] = canned
