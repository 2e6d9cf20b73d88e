"""Pytest fixtures that start the loopback servers of servers.py and stop them."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from servers import (
    RAW_LIFETIME_S,
    AppServer,
    RawServer,
    TlsIdentity,
    TlsServers,
    WebhookServer,
    closed_port,
    issue_tls_identities,
    live_server_threads,
)


@pytest.fixture
def app_server() -> Iterator[AppServer]:
    """The routed application server over plain http, fresh for each test."""
    with AppServer() as server:
        yield server


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """A webhook receiver answering 200 until told otherwise."""
    with WebhookServer() as server:
        yield server


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """Start misbehaving servers: ``raw_server("silent")``, with options."""
    started: list[RawServer] = []

    def start(
        behaviour: str, lifetime_s: float = RAW_LIFETIME_S, **options
    ) -> RawServer:
        server = RawServer(behaviour, lifetime_s=lifetime_s, **options).start()
        started.append(server)
        return server

    yield start

    for server in started:
        server.stop()


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 where connecting is refused."""
    return closed_port()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """The test certificate authority that the valid certificates chain to."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_ca_bundle(tls_ca, tmp_path_factory) -> Path:
    """The test CA's certificate as a PEM file, for ``verify=``."""
    bundle_path = tmp_path_factory.mktemp("tls") / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(bundle_path)
    return bundle_path


@pytest.fixture(scope="session")
def tls_identities(tls_ca) -> dict[str, TlsIdentity]:
    """One key and certificate chain per kind in TLS_KINDS, made once."""
    return issue_tls_identities(tls_ca)


@pytest.fixture
def tls_servers(tls_identities) -> Iterator[TlsServers]:
    """``tls_servers[kind]`` is an https AppServer, started on first use."""
    with TlsServers(tls_identities) as servers:
        yield servers


@pytest.fixture
def no_leftover_server_threads() -> Iterator[None]:
    """Fail a test whose servers outlive it; request it before server fixtures."""
    threads_before = set(live_server_threads())
    yield
    leftovers = set(live_server_threads()) - threads_before
    names = sorted(thread.name for thread in leftovers)
    assert not leftovers, f"server threads outlived the test: {names}"
