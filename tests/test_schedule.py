"""--cron: a short schedule, bounded runs, failing runs, and stopping by signal."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, file_size_limit, run_main

pytestmark = [
    pytest.mark.usefixtures("no_leftover_server_threads"),
    pytest.mark.timeout(60),
]

EVERY_SECOND = "* * * * * *"  # croniter's sixth field is seconds
RUN_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC run (\d+): ")
SLOW_CHECK_MS = 1500
WAIT_S = 15


@pytest.mark.parametrize("cron", ["61 * * * *", "bogus", "* * *", "*/0 * * * *"])
def test_an_invalid_cron_is_one_line_exit_2(tmp_path, cron):
    run = run_main("--cron", cron, "http://127.0.0.1:9/", cwd=tmp_path)

    assert run.returncode == 2
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()
    prefix = f"health-check: error: --cron {cron!r} is not a usable cron expression: "
    assert line.startswith(prefix)
    assert len(line) > len(prefix)  # croniter's reason follows
    assert not (tmp_path / "health_report.json").exists()


def test_runs_on_schedule_with_one_line_per_run(app_server, tmp_path):
    run = _run_schedule(tmp_path, 3, app_server.url("/ok"))

    assert run.returncode == 0
    *lines, closing = run.stdout.splitlines()
    assert [RUN_LINE.match(line)[1] for line in lines] == ["1", "2", "3"]
    assert closing == "schedule stopped after 3 runs"
    assert all("1/1 up, 0 down" in line for line in lines)
    assert app_server.count("/ok") == 3
    report = json.loads((tmp_path / "health_report.json").read_text())
    assert report["summary"]["ok_count"] == 1


def test_an_invalid_run_does_not_stop_the_schedule(app_server, tmp_path):
    run = _run_schedule(tmp_path, 2, app_server.url("/status/500"))

    assert run.returncode == 0
    *lines, closing = run.stdout.splitlines()
    assert (len(lines), closing) == (2, "schedule stopped after 2 runs")
    assert all("invalid: no endpoint succeeded;" in line for line in lines)


def test_a_failing_run_does_not_stop_the_schedule(app_server, tmp_path):
    # Files may grow to 4 KiB only: every run fails to write its HTML page
    # (about 6 KiB), as on a full disk. Path mistakes are refused up front.
    run = run_main(
        "--cron", EVERY_SECOND, "--max-runs", "2",
        "--html", "report.html", app_server.url("/ok"),
        cwd=tmp_path, preexec_fn=file_size_limit(4096),
    )  # fmt: skip

    assert run.returncode == 0
    errors = run.stderr.splitlines()
    assert [line.split(" failed:")[0] for line in errors] == [
        "health-check: error: run 1",
        "health-check: error: run 2",
    ]
    assert app_server.count("/ok") == 2


def test_storage_holds_only_the_last_run(app_server, tmp_path):
    once, thrice = tmp_path / "once", tmp_path / "thrice"
    once.mkdir()
    thrice.mkdir()

    _run_schedule(once, 1, app_server.url("/ok"))
    _run_schedule(thrice, 3, app_server.url("/ok"))

    stored_once = list((once / ".output" / "tasks").iterdir())
    stored_thrice = list((thrice / ".output" / "tasks").iterdir())
    assert stored_once and len(stored_thrice) == len(stored_once)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_run_in_flight(app_server, tmp_path, signum):
    slow_url = app_server.url(f"/delay/{SLOW_CHECK_MS}")
    process = _start_schedule(tmp_path, slow_url)
    try:
        _wait_for_request(app_server, f"/delay/{SLOW_CHECK_MS}")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()

    assert process.returncode == 0
    assert stderr == ""
    line, closing = stdout.splitlines()
    assert closing == "schedule stopped after 1 run"
    assert RUN_LINE.match(line)[1] == "1"
    assert "1/1 up, 0 down" in line
    assert json.loads((tmp_path / "health_report.json").read_text())


def test_a_second_signal_stops_at_once(app_server, tmp_path):
    slow_url = app_server.url("/delay/5000")
    process = _start_schedule(tmp_path, slow_url)
    try:
        _wait_for_request(app_server, "/delay/5000")
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()

    assert process.returncode == 128 + signal.SIGTERM
    assert stdout == ""
    assert stderr.splitlines() == ["health-check: error: stopped at once by SIGTERM"]
    assert not (tmp_path / "health_report.json").exists()


def test_ctrl_c_to_the_process_group_lets_the_checks_finish(app_server, tmp_path):
    # A terminal's Ctrl-C reaches every process of the group, the forked
    # check workers included; they must finish their check, not fail it.
    urls = [app_server.url(f"/delay/{SLOW_CHECK_MS}"), app_server.url("/ok")]
    process = _start_schedule(tmp_path, *urls, new_session=True)
    try:
        _wait_for_request(app_server, f"/delay/{SLOW_CHECK_MS}")
        os.killpg(process.pid, signal.SIGINT)
        stdout, _ = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()

    assert process.returncode == 0
    assert "2/2 up, 0 down" in stdout


def test_a_single_run_stops_at_once_on_sigterm(app_server, tmp_path):
    # One-shot mode too: as PID 1 in a container, Python would ignore SIGTERM.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), app_server.url("/delay/5000")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_request(app_server, "/delay/5000")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()

    assert process.returncode == 128 + signal.SIGTERM
    assert stderr.splitlines() == ["health-check: error: terminated"]


def _run_schedule(tmp_path: Path, max_runs: int, *args: str):
    """Every second, until max_runs runs are done."""
    return run_main(
        "--cron", EVERY_SECOND, "--max-runs", str(max_runs), *args, cwd=tmp_path
    )


def _start_schedule(
    tmp_path: Path, *urls: str, new_session: bool = False
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--cron", EVERY_SECOND, *urls],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def _wait_for_request(app_server, path: str) -> None:
    """Until the check is in flight: its request has reached the server."""
    deadline = time.monotonic() + WAIT_S
    while app_server.count(path) == 0:
        assert time.monotonic() < deadline, f"no request for {path} arrived"
        time.sleep(0.05)
