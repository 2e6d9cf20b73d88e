"""Facts about a server's leaf certificate, and fetching it without verifying."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from health_check import TIMESTAMP_FORMAT
from health_check.server_text import printable

SECONDS_PER_DAY = 86400
NAME_CHARS = 500


def certificate_facts(
    der: bytes, verified: bool, now: datetime | None = None
) -> dict[str, Any]:
    """The report's `tls` object for a DER-encoded certificate."""
    certificate = x509.load_der_x509_certificate(der)
    not_after = certificate.not_valid_after_utc
    now = now or datetime.now(UTC)

    return {
        "not_after": not_after.strftime(TIMESTAMP_FORMAT),
        "days_left": round((not_after - now).total_seconds() / SECONDS_PER_DAY, 1),
        # Names are the server's own choice of text, like a reason phrase.
        "issuer": printable(certificate.issuer.rfc4514_string(), NAME_CHARS),
        "subject": printable(certificate.subject.rfc4514_string(), NAME_CHARS),
        "verified": verified,
    }


def fetch_unverified(
    host: str,
    port: int,
    timeout_s: float,
    watch: Callable[[socket.socket], None] = lambda sock: None,
) -> bytes | None:
    """The leaf certificate a server presents, trusted or not; None on failure.

    Used only after verification failed, so an untrusted, expired or
    mismatched certificate can still be described in the report. `watch`
    lets the caller's deadline close the socket.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            watch(raw)
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        # ssl.SSLError and timeouts are OSErrors too: no certificate to report.
        return None
