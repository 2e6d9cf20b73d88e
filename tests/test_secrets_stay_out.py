"""Secrets from the config never reach the report, the terminal, storage or log."""

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MAIN = Path(__file__).resolve().parent.parent / "main.py"
RUN_TIMEOUT_S = 90

HEADER_SECRET = "hdr-7Hq2xV9pLm4sZ1"
PASSWORD_SECRET = "pw-Rk8dN3wQa6Tj0y"
BODY_SECRET = "body-Uf5cE2bY9gKs4o"
SECRETS = (HEADER_SECRET, PASSWORD_SECRET, BODY_SECRET)

pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S + 30)


@pytest.fixture
def finished_run(tmp_path, app_server, refused_port):
    """main.py run once over endpoints that carry every kind of secret."""
    origin = app_server.url("").rstrip("/").removeprefix("http://")
    refused = f"127.0.0.1:{refused_port}"
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            defaults:
              headers:
                X-Api-Key: "${{SECRET_TOKEN}}"
              retries: 2
            endpoints:
              - name: echoes-headers
                url: http://ops:{PASSWORD_SECRET}@{origin}/headers
                expect: {{body_contains: "never there"}}
              - name: posts-a-body
                url: http://{origin}/method
                method: POST
                body: {BODY_SECRET}
                expect: {{json: {{method: GET}}}}
              - name: fails-and-retries
                url: http://ops:{PASSWORD_SECRET}@{origin}/status/503
                json: {{token: {BODY_SECRET}}}
              - name: redirected
                url: http://ops:{PASSWORD_SECRET}@{origin}/redirect/1
              - url: http://ops:{PASSWORD_SECRET}@{refused}/down
            """
        )
    )
    env = {**os.environ, "SECRET_TOKEN": HEADER_SECRET}
    finished = subprocess.run(
        [
            sys.executable,
            str(MAIN),
            "--config",
            str(config),
            "--storage",
            str(tmp_path / "storage"),
            "--output",
            str(tmp_path / "out" / "health_report.json"),
        ],
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
    )
    return finished, tmp_path, app_server


def test_the_run_really_sent_the_secrets(finished_run):
    finished, _, server = finished_run

    assert finished.returncode == 0, finished.stderr.decode()
    sent = server.received_headers("/headers")[0]
    assert sent["X-Api-Key"] == HEADER_SECRET
    assert sent["Authorization"].startswith("Basic ")


def test_no_secret_in_any_output(finished_run):
    finished, tmp_path, _ = finished_run
    outputs = {"stdout": finished.stdout, "stderr": finished.stderr}
    for path in (tmp_path / "storage").rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes()
    for path in (tmp_path / "out").rglob("*"):
        outputs[str(path)] = path.read_bytes()

    leaks = [
        f"{secret} in {where}"
        for where, data in outputs.items()
        for secret in SECRETS
        if any(form in data for form in _forms(secret))
    ]

    assert any("flow.log" in where for where in outputs)
    assert any(where.endswith("health_report.json") for where in outputs)
    assert leaks == []


def test_report_shows_masked_urls(finished_run):
    _, tmp_path, _ = finished_run
    report = json.loads((tmp_path / "out" / "health_report.json").read_text())
    rows = {row["name"]: row for row in report["results"]}

    redirected = rows["redirected"]
    assert redirected["url"].startswith("http://ops:***@")
    assert redirected["final_url"].endswith("/ok")
    assert "***" in next(name for name in rows if name.endswith("/down"))
    assert rows["fails-and-retries"]["attempts"] == 2


def _forms(secret: str) -> list[bytes]:
    """The secret as text, and as it would look inside any base64 run.

    A retried check carries its row base64-encoded through dotflow, so a
    plain grep alone could miss a leak there. Each of the three alignments
    gives a run of characters that only the secret's bytes determine.
    """
    raw = secret.encode()
    forms = [raw]
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw)
            forms.append(encoded[4:-4])
    return forms
