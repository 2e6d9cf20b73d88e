"""The config file's per-endpoint options: parsing, defaults, and bad input."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from health_check.config import ConfigError, Endpoint, load_config_file

MAIN = Path(__file__).resolve().parent.parent / "main.py"
RUN_TIMEOUT_S = 60


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def run_main(*args: str, env: dict[str, str] | None = None, cwd: Path):
    return subprocess.run(
        [sys.executable, str(MAIN), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
def full_endpoint(tmp_path, monkeypatch) -> Endpoint:
    """One endpoint using every option, with defaults to merge in."""
    monkeypatch.setenv("ORDERS_TOKEN", "token-from-env")
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_text("not parsed until a check runs\n")
    config = write_config(
        tmp_path,
        f"""
        defaults:
          timeout: 9
          headers:
            Accept: application/json
          expect:
            max_response_time_ms: 2000
        endpoints:
          - name: orders-api
            url: https://127.0.0.1:8443/health
            method: post
            headers:
              Authorization: "Bearer ${{ORDERS_TOKEN}}"
            json: {{deep: true}}
            timeout: 3
            retries: 4
            follow_redirects: false
            expect:
              status: [200, 2xx, 300-304]
              max_response_time_ms: 800
              body_contains: ok
              json:
                status: UP
                checks.database.status: UP
              headers:
                Content-Type: application/json
            tls:
              verify: true
              ca_bundle: {ca_bundle}
              min_days_valid: 14
        """,
    )
    [endpoint] = load_config_file(str(config))
    return endpoint


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (lambda e: e.name, "orders-api"),
        (lambda e: e.method, "POST"),
        (lambda e: e.json_body, {"deep": True}),
        (lambda e: e.body, None),
        (lambda e: e.timeout_s, 3.0),
        (lambda e: e.attempts, 4),
        (lambda e: e.follow_redirects, False),
        (lambda e: e.expect.status, [(200, 200), (200, 299), (300, 304)]),
        (lambda e: e.expect.max_response_time_ms, 800),
        (lambda e: e.expect.body_contains, "ok"),
        (
            lambda e: e.expect.json_values,
            {"status": "UP", "checks.database.status": "UP"},
        ),
        (lambda e: e.expect.headers, {"Content-Type": "application/json"}),
        (lambda e: e.tls.verify, True),
        (lambda e: e.tls.min_days_valid, 14),
        (
            lambda e: e.headers,
            {"Accept": "application/json", "Authorization": "Bearer token-from-env"},
        ),
    ],
    ids=[
        "name",
        "method-upper-cased",
        "json-body",
        "no-plain-body",
        "own-timeout-beats-default",
        "retries",
        "follow-redirects",
        "status-forms",
        "own-time-limit-beats-default",
        "body-contains",
        "json-paths",
        "expected-headers",
        "tls-verify",
        "tls-min-days",
        "headers-merge-with-defaults-and-env",
    ],
)
def test_each_option_parses(full_endpoint, read, value):
    assert read(full_endpoint) == value


def test_defaults_fill_what_an_endpoint_leaves_out(tmp_path):
    config = write_config(
        tmp_path,
        """
        defaults:
          timeout: 7
          retries: 3
          tls: {verify: false}
        endpoints:
          - http://127.0.0.1:1/a
          - url: http://127.0.0.1:1/b
            retries: 1
        """,
    )
    first, second = load_config_file(str(config))

    assert (first.timeout_s, first.attempts, first.tls.verify) == (7, 3, False)
    assert (second.timeout_s, second.attempts, second.tls.verify) == (7, 1, False)


def test_a_plain_list_of_urls_still_works(tmp_path):
    config = write_config(tmp_path, "- http://127.0.0.1:1/a\n- http://127.0.0.1:1/b\n")
    endpoints = load_config_file(str(config))
    assert [endpoint.name for endpoint in endpoints] == [
        "http://127.0.0.1:1/a",
        "http://127.0.0.1:1/b",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{name: orders, url: 'http://127.0.0.1:1/', expcet: {status: 200}}",
            "endpoint 'orders': expcet: unknown key",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', expect: {staus: 200}}",
            "endpoint 'orders': expect.staus: unknown key",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', tls: {verfy: false}}",
            "endpoint 'orders': tls.verfy: unknown key",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', expect: {status: 2xy}}",
            "endpoint 'orders': expect.status: '2xy' is not a status",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', retries: 0}",
            "endpoint 'orders': retries: Input should be greater than or equal to 1",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', headers: {X: '${UNSET_KEY}'}}",
            "endpoint 'orders': environment variable UNSET_KEY is not set",
        ),
        (
            "{name: orders, url: 'http://127.0.0.1:1/', body: x, json: {a: 1}}",
            "endpoint 'orders': give either body or json, not both",
        ),
    ],
    ids=[
        "misspelt-expect",
        "misspelt-status",
        "misspelt-verify",
        "bad-status",
        "zero-retries",
        "unset-variable",
        "body-and-json",
    ],
)
def test_bad_config_exits_2_naming_endpoint_and_field(tmp_path, entry, message):
    config = write_config(tmp_path, f"endpoints:\n  - {entry}\n")
    env = {"PATH": "/usr/bin:/bin"}  # UNSET_KEY is certainly not set

    finished = run_main("--config", str(config), env=env, cwd=tmp_path)

    assert finished.returncode == 2
    assert message in finished.stderr
    assert finished.stderr.startswith("health-check: error: ")
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "health_report.json").exists()


def test_unset_variable_is_an_error_in_process(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERS_TOKEN", raising=False)
    config = write_config(
        tmp_path,
        """
        endpoints:
          - url: http://127.0.0.1:1/
            headers: {Authorization: "Bearer ${ORDERS_TOKEN}"}
        """,
    )
    with pytest.raises(ConfigError, match="ORDERS_TOKEN is not set"):
        load_config_file(str(config))


GITHUB_URL = "https://api.github.com/repos/psf/requests"


@pytest.mark.parametrize(
    ("url", "headers", "authorization"),
    [
        (GITHUB_URL, {}, "Bearer gh-secret"),
        (GITHUB_URL, {"Authorization": "token mine"}, "token mine"),
        ("https://127.0.0.1:1/", {}, None),
        ("https://api.github.com.example.invalid/", {}, None),
        ("https://github.com/psf/requests", {}, None),
    ],
    ids=[
        "github-api-gets-token",
        "own-authorization-wins",
        "other-host",
        "look-alike-host",
        "github-web",
    ],
)
def test_github_token_goes_only_to_the_github_api(
    monkeypatch, url, headers, authorization
):
    monkeypatch.setenv("GITHUB_TOKEN", "gh-secret")
    endpoint = Endpoint(url=url, headers=headers)

    sent = endpoint.request_headers()

    assert sent.get("Authorization") == authorization
    assert "gh-secret" not in endpoint.headers.values()


def test_no_github_token_no_authorization(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert "Authorization" not in Endpoint(url=GITHUB_URL).request_headers()


def test_the_example_config_parses(tmp_path, monkeypatch):
    example = Path(__file__).resolve().parent.parent / "examples/full-config.yaml"
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs/internal-ca.pem").write_text("placeholder\n")
    monkeypatch.chdir(tmp_path)  # ca_bundle is relative to the working folder
    monkeypatch.setenv("ORDERS_TOKEN", "example-token")

    endpoints = load_config_file(str(example))

    assert [endpoint.name for endpoint in endpoints] == [
        "https://status.example.com/",
        "orders-api",
        "search-warmup",
        "legacy-redirect",
    ]
    assert endpoints[1].expect.status == [(200, 200), (204, 204)]
    assert endpoints[3].expect.status == [(301, 301)]
