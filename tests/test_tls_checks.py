"""HTTPS checks on loopback: trust, expiry, host names, and the certificate facts."""

import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from health_check.certificates import certificate_facts
from health_check.config import Endpoint
from health_check.judge import result_row
from health_check.probe import attempt

from helpers import run_in_process

pytestmark = pytest.mark.timeout(30)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def check(url: str, **options) -> dict:
    endpoint = Endpoint.model_validate({"url": url, "timeout": 5, **options})
    return result_row(endpoint, attempt(endpoint))


def trusting(bundle, **tls) -> dict:
    return {"tls": {"ca_bundle": str(bundle), **tls}}


def test_valid_certificate_under_the_test_ca(tls_servers, tls_ca_bundle):
    row = check(tls_servers["valid"].url("/ok"), **trusting(tls_ca_bundle))

    assert (row["ok"], row["error_kind"]) == (True, None)
    facts = row["tls"]
    assert facts["verified"] is True
    assert ISO_Z.match(facts["not_after"])
    assert facts["days_left"] > 14
    assert "trustme" in facts["issuer"]


@pytest.mark.parametrize(
    ("kind", "error_kind"),
    [
        ("self_signed", "tls_untrusted"),
        ("unknown_ca", "tls_untrusted"),
        ("expired", "tls_expired"),
        ("wrong_host", "tls_hostname"),
    ],
)
def test_certificate_failures_have_their_kind_and_facts(
    tls_servers, tls_ca_bundle, kind, error_kind
):
    row = check(tls_servers[kind].url("/ok"), **trusting(tls_ca_bundle))

    assert (row["ok"], row["status_code"]) == (False, None)
    assert row["error_kind"] == error_kind
    facts = row["tls"]
    assert facts["verified"] is False
    assert ISO_Z.match(facts["not_after"])
    assert facts["subject"] and facts["issuer"]


def test_expired_certificate_shows_negative_days(tls_servers, tls_ca_bundle):
    row = check(tls_servers["expired"].url("/ok"), **trusting(tls_ca_bundle))
    assert -1.1 <= row["tls"]["days_left"] <= -0.9


def test_self_signed_names_itself_as_issuer(tls_servers, tls_ca_bundle):
    row = check(tls_servers["self_signed"].url("/ok"), **trusting(tls_ca_bundle))
    assert row["tls"]["issuer"] == row["tls"]["subject"] == "CN=self-signed test"


def test_expiring_within_min_days_valid(tls_servers, tls_ca_bundle):
    url = tls_servers["expiring_soon"].url("/ok")

    row = check(url, **trusting(tls_ca_bundle, min_days_valid=14))

    assert (row["ok"], row["status_code"]) == (False, 200)
    assert row["error_kind"] == "tls_expiring"
    days_left = row["tls"]["days_left"]
    assert 2.9 <= days_left <= 3.0
    assert row["error"] == f"certificate expires in {days_left:.1f} days, minimum 14"


def test_expiring_is_fine_without_min_days_valid(tls_servers, tls_ca_bundle):
    row = check(tls_servers["expiring_soon"].url("/ok"), **trusting(tls_ca_bundle))
    assert (row["ok"], row["tls"]["verified"]) == (True, True)


@pytest.mark.parametrize("kind", ["self_signed", "expired", "wrong_host"])
def test_verify_false_checks_anyway_and_says_so(tls_servers, kind):
    row = check(tls_servers[kind].url("/ok"), tls={"verify": False})

    assert (row["ok"], row["status_code"]) == (True, 200)
    assert row["tls"]["verified"] is False


def test_facts_reported_when_the_check_fails_otherwise(tls_servers, tls_ca_bundle):
    row = check(tls_servers["valid"].url("/status/503"), **trusting(tls_ca_bundle))

    assert row["error_kind"] == "http_status"
    assert row["tls"]["verified"] is True


def test_facts_come_from_the_monitored_host_not_the_redirect_target(
    tls_servers, tls_ca_bundle
):
    target = tls_servers["expiring_soon"].url("/ok")
    url = tls_servers["valid"].url(f"/redirect-to?url={quote(target)}")

    row = check(url, **trusting(tls_ca_bundle, min_days_valid=14))

    assert (row["final_url"], row["redirects"]) == (target, 1)
    assert row["tls"]["days_left"] > 14
    assert (row["ok"], row["error_kind"]) == (True, None)


def test_untrusted_redirect_target_fails_but_keeps_the_host_facts(
    tls_servers, tls_ca_bundle
):
    target = tls_servers["self_signed"].url("/ok")
    url = tls_servers["valid"].url(f"/redirect-to?url={quote(target)}")

    row = check(url, **trusting(tls_ca_bundle))

    assert row["error_kind"] == "tls_untrusted"
    assert row["tls"]["verified"] is True
    assert row["tls"]["issuer"] != "CN=self-signed test"


def test_plain_http_to_https_redirect_has_no_tls_facts(
    app_server, tls_servers, tls_ca_bundle
):
    target = tls_servers["valid"].url("/ok")
    url = app_server.url(f"/redirect-to?url={quote(target)}")

    row = check(url, **trusting(tls_ca_bundle))

    assert (row["ok"], row["final_url"], row["tls"]) == (True, target, None)


def test_certificate_facts_read_a_der_certificate(tls_ca):
    leaf = tls_ca.issue_cert(
        "127.0.0.1",
        not_before=datetime(2030, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 3, 2, 12, tzinfo=UTC),
    )
    certificate = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    der = certificate.public_bytes(Encoding.DER)

    facts = certificate_facts(der, verified=True, now=datetime(2030, 3, 1, tzinfo=UTC))

    assert facts["not_after"] == "2030-03-02T12:00:00Z"
    assert facts["days_left"] == 1.5
    assert "trustme" in facts["issuer"]
    assert facts["verified"] is True


def test_unverified_expired_certificate_fails_min_days_valid(tls_servers):
    url = tls_servers["expired"].url("/ok")

    row = check(url, tls={"verify": False, "min_days_valid": 0})

    assert (row["ok"], row["status_code"]) == (False, 200)
    assert row["error_kind"] == "tls_expired"
    assert (
        row["error"] == f"certificate expired {-row['tls']['days_left']:.1f} days ago"
    )


@pytest.mark.parametrize("kind", ["self_signed", "expired", "wrong_host"])
def test_certificate_failures_are_definite_and_not_retried(
    tls_servers, tls_ca_bundle, tmp_path, kind
):
    config = tmp_path / "endpoints.yaml"
    url = tls_servers[kind].url("/ok")
    config.write_text(f"- url: {url}\n  tls: {{ca_bundle: {tls_ca_bundle}}}\n")

    _, report = run_in_process(tmp_path, "--config", str(config))

    (row,) = report["results"]
    assert row["error_kind"].startswith("tls_")
    assert row["attempts"] == 1
