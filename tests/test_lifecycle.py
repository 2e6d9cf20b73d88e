"""A run as a process: bounded when everything hangs, clean when stopped."""

import json
import os
import signal
import time

import psutil
import pytest

from helpers import start_main, wait_for_workers, write_config

TIMEOUT_S = 1
ATTEMPTS = 2
RETRY_DELAY_S = 1  # dotflow's default retry_delay
# The README's bound: attempts x deadline + dotflow's retry delays + 2 s.
HANG_BOUND_S = ATTEMPTS * TIMEOUT_S + (ATTEMPTS - 1) * RETRY_DELAY_S + 2
# After a signal the run stops its workers, which get at most a second.
STOP_BOUND_S = 3
SILENT_ENDPOINTS = 3
# Writing the report is the last real work; pruning and exiting are quick.
EXIT_AFTER_REPORT_S = 1.0


@pytest.mark.timeout(60)
def test_a_run_where_everything_hangs_ends_within_the_bound(raw_server, tmp_path):
    urls = [raw_server("silent").url("/") for _ in range(SILENT_ENDPOINTS)]
    config_path = write_config(tmp_path, urls, timeout_s=TIMEOUT_S)

    started = time.monotonic()
    run = start_main(tmp_path, "--config", str(config_path))
    run.wait(timeout=30)
    elapsed_s = time.monotonic() - started
    exited_at = time.time()

    assert run.returncode == 1, run.stderr.read()
    assert elapsed_s < HANG_BOUND_S
    report_path = tmp_path / "health_report.json"
    # Nothing lingers after the report: no thread or worker holds the exit.
    assert exited_at - report_path.stat().st_mtime < EXIT_AFTER_REPORT_S
    report = json.loads(report_path.read_text())
    assert [row["error_kind"] for row in report["results"]] == ["timeout"] * 3
    assert [row["attempts"] for row in report["results"]] == [ATTEMPTS] * 3
    assert processes_left_in_session(run.pid) == []


STOPS = [
    ("sigterm", signal.SIGTERM, False, 143, "terminated"),
    ("sigint", signal.SIGINT, False, 130, "interrupted"),
    # Ctrl-C in a terminal signals the whole process group, workers included.
    ("ctrl_c", signal.SIGINT, True, 130, "interrupted"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("signum", "whole_group", "code", "word"),
    [stop[1:] for stop in STOPS],
    ids=[stop[0] for stop in STOPS],
)
def test_a_stopped_run_exits_cleanly_and_keeps_the_previous_report(
    raw_server, tmp_path, signum, whole_group, code, word
):
    urls = [raw_server("silent").url("/") for _ in range(SILENT_ENDPOINTS)]
    previous_report = '{"previous": true}\n'
    (tmp_path / "health_report.json").write_text(previous_report)

    run = start_main(tmp_path, *urls)
    wait_for_workers(run.pid, SILENT_ENDPOINTS)
    time.sleep(0.5)  # let the workers get into their checks
    stopped_at = time.monotonic()
    if whole_group:
        os.killpg(run.pid, signum)
    else:
        os.kill(run.pid, signum)
    run.wait(timeout=30)

    assert time.monotonic() - stopped_at < STOP_BOUND_S
    assert run.returncode == code
    assert run.stderr.read() == f"health-check: error: {word}\n"
    assert (tmp_path / "health_report.json").read_text() == previous_report
    files = [path.name for path in tmp_path.iterdir() if path.is_file()]
    assert files == ["health_report.json"]  # and no half-written temporary
    assert processes_left_in_session(run.pid) == []


def processes_left_in_session(session_id):
    """Live processes of the run's session, reparented orphans included."""
    left = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            in_session = os.getsid(process.pid) == session_id
        except OSError:
            continue  # gone meanwhile
        if in_session and process.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(process.info["pid"])
    return left
