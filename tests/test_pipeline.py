"""The two workflows end to end, and dotflow 1.0.1's edges that they work around."""

import json
import subprocess
import sys
import threading
import time

import pytest
from dotflow import DotFlow, action
from dotflow.providers import StorageFile

from health_check import config, pipeline, steps

from helpers import ROOT, file_size_limit, read_report, run_in_process, run_main


def test_default_endpoints_are_the_six_github_repositories():
    endpoints = config.load_endpoints([], None)

    assert [endpoint.url for endpoint in endpoints] == [
        "https://api.github.com/repos/python/cpython",
        "https://api.github.com/repos/django/django",
        "https://api.github.com/repos/pallets/flask",
        "https://api.github.com/repos/psf/requests",
        "https://api.github.com/repos/pydantic/pydantic",
        "https://api.github.com/repos/dotflow-io/dotflow",
    ]


def test_all_down_still_writes_the_report_and_exits_1(
    app_server, refused_port, tmp_path
):
    urls = [app_server.url("/status/500"), f"http://127.0.0.1:{refused_port}/"]

    code, report = run_in_process(tmp_path, *urls)

    assert code == 1
    assert report["summary"]["ok_count"] == 0
    assert report["summary"]["avg_response_time_ms"] is None
    assert report["validation"] == {
        "passed": False,
        "problems": ["no endpoint succeeded"],
    }


def test_results_keep_configured_order_and_summary_counts(app_server, tmp_path):
    urls = [app_server.url(path) for path in ("/delay/200", "/status/404", "/ok")]

    code, report = run_in_process(tmp_path, *urls)

    assert code == 0
    assert [row["url"] for row in report["results"]] == urls
    summary = report["summary"]
    assert (summary["total"], summary["ok_count"], summary["fail_count"]) == (3, 2, 1)
    times = sorted(row["response_time_ms"] for row in report["results"] if row["ok"])
    assert summary["min_response_time_ms"] == times[0]
    assert summary["max_response_time_ms"] == times[-1]
    assert summary["avg_response_time_ms"] == round(sum(times) / 2, 1)


def test_strict_fails_the_run_when_any_endpoint_failed(app_server, tmp_path):
    urls = [app_server.url("/ok"), app_server.url("/status/404")]

    code, _ = run_in_process(tmp_path, "--strict", *urls)

    assert code == 1


def test_each_context_is_stored_twice_after_a_parallel_run(app_server, tmp_path):
    storage_dir = tmp_path / "storage"
    dotflow_config = pipeline.make_config(str(storage_dir))
    endpoints = config.load_endpoints([app_server.url("/ok")], None)

    rows = pipeline.run_checks(endpoints, dotflow_config)

    (task_file,) = (storage_dir / "tasks").glob("*.json")
    entries = json.loads(task_file.read_text())
    assert len(entries) == 2 and entries[0] == entries[1]
    assert len(rows) == 1 and rows[0]["status_code"] == 200


def test_a_failed_task_carries_its_row_through_the_error_message(app_server, tmp_path):
    dotflow_config = pipeline.make_config(str(tmp_path / "storage"))
    endpoints = config.load_endpoints([app_server.url("/status/503")], None)

    (row,) = pipeline.run_checks(endpoints, dotflow_config)

    assert row["status_code"] == 503
    assert row["response_time_ms"] is not None
    stored = StorageFile(path=str(tmp_path / "storage")).path
    assert all(
        json.loads(f.read_text()) == ["null", "null"] for f in stored.glob("*.json")
    )


def test_row_survives_the_error_message_round_trip():
    row = {
        "error_kind": "http_status",
        "status_code": 503,
        "name": "ünï initial_context",
    }

    message = str(steps.TransientCheckFailure(row))

    assert "initial_context" not in message
    assert steps.row_from_error_message(message) == row
    assert steps.row_from_error_message("some other error") is None


def test_end_to_end_as_a_subprocess(app_server, tmp_path):
    result = run_main(
        app_server.url("/ok"), app_server.url("/status/404"), cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "1/2 up" in result.stdout
    report = read_report(tmp_path / "health_report.json")
    assert report["summary"]["total"] == 2
    assert (tmp_path / ".output" / "flow.log").read_text().count("Completed") >= 2


def test_quiet_prints_nothing(app_server, tmp_path):
    result = run_main("--quiet", app_server.url("/ok"), cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.timeout(180)
def test_hundreds_of_endpoints_finish_in_parallel_mode(app_server, tmp_path):
    # Stock dotflow 1.0.1 hangs here: it joins its workers before it drains
    # their results, and the pipe fills long before 300 rows.
    urls = [app_server.url(f"/json?body=%22{index}%22") for index in range(300)]

    code, report = run_in_process(tmp_path, "--concurrency", "16", *urls)

    assert code == 0
    assert report["summary"]["ok_count"] == 300
    assert [row["url"] for row in report["results"]] == urls
    assert app_server.count("/json") == 300


# main.py run as a user would, but with the changes step broken on purpose.
_BROKEN_REPORT_STEP = """
import sys
sys.path.insert(0, sys.argv.pop(1))
from health_check import cli, pipeline, reports
def broken(*args, **kwargs):
    raise RuntimeError("changes exploded")
reports.compute_changes = broken
import main
sys.exit(cli.guard(main.main, pipeline.stop_workers))
"""


def test_a_broken_report_step_still_writes_the_report(app_server, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _BROKEN_REPORT_STEP, str(ROOT), "--quiet"]
        + [app_server.url("/ok"), "--output", "report.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Never silent, even with --quiet: one line, and an internal error.
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "health-check: error: report step generate_report failed: changes exploded"
    )
    assert "report.json" in line

    report = read_report(tmp_path / "report.json")
    assert report["results"][0]["ok"] is True
    assert report["validation"]["passed"] is False
    (problem,) = report["validation"]["problems"]
    assert problem == "report step generate_report failed: changes exploded"


def test_a_full_disk_is_one_line_naming_the_path_and_exit_3(app_server, tmp_path):
    urls = [app_server.url(f"/ok?n={number}") for number in range(30)]

    # Past 8 KiB a write fails as on a full disk: flow.log soon passes it,
    # the many-endpoint report does at once.
    result = run_main(
        *urls, "--output", "report.json", cwd=tmp_path, preexec_fn=file_size_limit(8192)
    )

    # No "--- Logging error ---" traceback for each line dotflow could not log.
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == "health-check: error: cannot write report.json: File too large"


def test_dotflow_timeout_is_not_retried_so_the_probe_ends_attempts_first(tmp_path):
    # The edge itself: a dotflow TimeoutError ends the task after one attempt
    # however large `retry` is, and leaves the step's thread running.
    attempts = []

    @action(retry=3, timeout=1)
    def sleepy():
        attempts.append(threading.current_thread().name)
        time.sleep(1.5)

    flow = DotFlow(config=pipeline.make_config(str(tmp_path / "storage")))
    flow.task.add(step=sleepy)
    flow.start()

    (task,) = flow.task.queue
    assert task.errors[-1].exception == "TimeoutError"
    assert len(attempts) == 1
    assert any(t.name == attempts[0] and t.is_alive() for t in threading.enumerate())


def test_a_hanging_endpoint_is_retried_because_the_probe_deadline_comes_first(
    raw_server, tmp_path
):
    config_file = tmp_path / "endpoints.yaml"
    config_file.write_text(f"- url: {raw_server('silent').url()}\n  timeout: 1\n")

    _, report = run_in_process(tmp_path, "--config", str(config_file))

    (row,) = report["results"]
    assert row["error_kind"] == "timeout"
    assert row["attempts"] == 2
    assert "deadline" in row["error"]


def test_check_endpoint_is_the_step_for_default_endpoints():
    (default,) = config.load_endpoints(["http://127.0.0.1:1/"], None)
    custom = default.model_copy(update={"attempts": 3})

    assert (steps.check_endpoint.retry, steps.check_endpoint.timeout) == (2, 6)
    assert steps.step_for(default) is steps.check_endpoint
    assert steps.step_for(custom).retry == 3
