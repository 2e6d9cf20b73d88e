"""Bad input: one line on stderr, exit code 2, no traceback, nothing checked."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_main(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


CONFIG_CASES = {
    "malformed_yaml": ("bad.yaml", "endpoints:\n\t- http://a.invalid\n", "line 2"),
    "malformed_json": ("bad.json", '{"endpoints": [\n  "http://a",\n', "line 3"),
    "empty_list": ("empty.yaml", "[]\n", "empty"),
    "empty_endpoints": ("empty2.yaml", "endpoints: []\n", "empty"),
    "entry_without_url": ("nourl.yaml", "- name: api\n", "missing 'url'"),
    "no_scheme": ("noscheme.yaml", "- example.invalid/health\n", "scheme"),
    "ftp_scheme": ("ftp.yaml", "- ftp://example.invalid/\n", "scheme"),
    "no_host": ("nohost.yaml", "- http:///path\n", "no host"),
    "bad_port": ("port.yaml", "- http://127.0.0.1:99999/\n", "not valid"),
    "duplicate_name": (
        "dup.yaml",
        "- {url: 'http://127.0.0.1:1/a', name: api}\n"
        "- {url: 'http://127.0.0.1:1/b', name: api}\n",
        "duplicate endpoint name 'api'",
    ),
    "duplicate_url": (
        "dupurl.yaml",
        "- http://127.0.0.1:1/a\n- http://127.0.0.1:1/a\n",
        "duplicate endpoint name",
    ),
    "scalar_document": ("scalar.yaml", "42\n", "expected a list"),
    "unknown_top_key": (
        "top.yaml",
        "endpoints: [http://a.invalid]\nextra: 1\n",
        "extra",
    ),
    "unknown_endpoint_key": (
        "key.yaml",
        "- {url: 'http://127.0.0.1:1/', expcet: {status: 200}}\n",
        "expcet",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_file_is_one_line_and_exit_2(case, tmp_path):
    filename, content, expected = CONFIG_CASES[case]
    (tmp_path / filename).write_text(content, encoding="utf-8")

    result = run_main("--config", filename, cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, expected)
    assert result.stdout == ""
    assert not (tmp_path / "health_report.json").exists()
    assert not (tmp_path / ".output").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "missing.yaml"], "does not exist"),
        (["example.invalid"], "scheme"),
        (["mailto:ops@example.invalid"], "scheme"),
        (["https://"], "no host"),
        (["--config", "."], "cannot read"),
        (["--concurrency", "0", "http://127.0.0.1:1/"], "--concurrency"),
        (["--output", ".", "http://127.0.0.1:1/"], "is a folder"),
        (["--html", ".", "http://127.0.0.1:1/"], "is a folder"),
        (["--concurrency", "many", "http://127.0.0.1:1/"], "--concurrency"),
        (["http://127.0.0.1:1/", "--config", "x.yaml"], "not both"),
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(args, expected, tmp_path):
    result = run_main(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, expected)
    assert not (tmp_path / "health_report.json").exists()


def test_unknown_option_shows_usage_and_one_error_line(tmp_path):
    result = run_main("--frobnicate", cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("usage:")
    assert_one_error_line("\n".join(lines[1:]), "--frobnicate")


def assert_one_error_line(stderr: str, expected: str) -> None:
    # argparse may put its one-line usage above the error, and nothing more.
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage: main.py [options]"):
        lines = lines[1:]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("health-check: error: ")
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [("0 0 30 2 *", "never fires"), ("", "empty"), ("nonsense", "garbage")],
)
def test_unusable_cron_is_one_line_and_exit_2(cron, expected, tmp_path):
    result = run_main("--cron", cron, "http://127.0.0.1:1/", cwd=tmp_path)

    assert result.returncode == 2, expected
    assert_one_error_line(result.stderr, "is not a usable cron expression")


@pytest.mark.parametrize(
    "webhook", ["http://[::1/services/T000/SECRETTOKEN", "http://h:SECRETTOKEN/x"]
)
def test_a_malformed_webhook_url_is_never_quoted(webhook, tmp_path):
    result = run_main("--webhook", webhook, "http://127.0.0.1:1/", cwd=tmp_path)

    assert result.returncode == 2
    assert_one_error_line(result.stderr, "webhook URL")
    assert "SECRETTOKEN" not in result.stderr
