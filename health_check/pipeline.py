"""Build and run the two dotflow workflows, and hand results between them."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dotflow import Config, DotFlow
from dotflow.core.types import TypeStatus
from dotflow.providers import LogDefault, StorageFile

from health_check import judge, parallel, steps, summary
from health_check.config import Endpoint
from health_check.files import write_atomic
from health_check.probe import Attempt
from health_check.reports.json_report import render_json

# How long stopped workers get to exit on SIGTERM before they are killed.
WORKER_STOP_GRACE_S = 1.0

LOG_FILE_NAME = "flow.log"
# Checked at the start of every run: a run of 5,000 endpoints logs about
# 2.7 MB, so the log stays below this plus one run's lines, and one older
# file (flow.log.1) is kept.
MAX_LOG_BYTES = 8 * 1024 * 1024


class ReportStepFailed(Exception):
    """A report step broke; a plain JSON report was written instead."""


def make_config(storage_dir: str) -> Config:
    """One StorageFile for both workflows; dotflow's log lines go to its file."""
    log_path = Path(storage_dir, LOG_FILE_NAME)
    _quiet_dotflow_logger(log_path)
    return Config(
        storage=StorageFile(path=storage_dir),
        log=LogDefault(output="file", path=str(log_path)),
    )


def run_checks(
    endpoints: list[Endpoint],
    config: Config,
    concurrency: int = parallel.DEFAULT_MAX_IN_FLIGHT,
    record_workflow: Callable[[Any], None] = lambda workflow_id: None,
) -> list[dict[str, Any]]:
    """Workflow 1: one task per endpoint, run in parallel; rows in config order.

    At most `concurrency` checks are in flight, on at most twice as many
    worker processes as there are CPUs (see health_check/parallel.py).
    `record_workflow` learns the workflow id before any task file is written,
    so that pruning later finds every file of this run.
    """
    checks = DotFlow(config=config, name="checks")
    record_workflow(checks.workflow_id)
    for endpoint in endpoints:
        checks.task.add(step=steps.step_for(endpoint), initial_context=endpoint)

    with parallel.bounded_parallel(max_in_flight=concurrency):
        checks.start(mode="parallel", keep_going=True)
    return [read_result(task, config.storage) for task in checks.task.queue]


def run_report(
    endpoints: list[Endpoint],
    results: list[dict[str, Any]],
    duration_s: float,
    outputs: dict[str, str | None],
    config: Config,
    record_workflow: Callable[[Any], None] = lambda workflow_id: None,
) -> dict[str, Any]:
    """Workflow 2: aggregate, validate and report, in sequence."""
    run = {
        "endpoint_names": [endpoint.name for endpoint in endpoints],
        "results": results,
        "duration_s": duration_s,
        "outputs": outputs,
    }
    report = DotFlow(config=config, name="report")
    record_workflow(report.workflow_id)
    report.task.add(
        step=[steps.aggregate_results, steps.validate_results, steps.generate_report],
        initial_context=run,
    )
    report.start(mode="sequential")

    last = report.task.queue[-1]
    if last.status == TypeStatus.COMPLETED:
        return config.storage.get(key=config.storage.key(task=last)).storage
    _report_without_workflow(run, report.task.queue)


def rotate_log(storage_dir: str) -> None:
    """Start the log afresh when it is over MAX_LOG_BYTES, keeping one old copy.

    Copied and truncated rather than renamed: dotflow's handlers keep the file
    open in append mode, so after a truncation their next line lands at the
    start of the same file. A line logged during the copy may be lost.
    """
    log_path = Path(storage_dir, LOG_FILE_NAME)
    try:
        status = os.stat(log_path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(status.st_mode) and status.st_size > MAX_LOG_BYTES:
        shutil.copyfile(log_path, log_path.with_name(f"{LOG_FILE_NAME}.1"))
        os.truncate(log_path, 0)


def _report_without_workflow(run: dict[str, Any], tasks: list[Any]) -> None:
    """Write a plain JSON report when a report step broke, then raise.

    The checks that ran are never lost, but the run did not do what was
    asked (changes, other formats), so it must not pass for a normal one.
    """
    broken = next(task for task in tasks if task.status != TypeStatus.COMPLETED)
    step_name = broken.step.func.__name__
    problem = f"report step {step_name} failed: {_last_error_message(broken)}"

    report = summary.build_report(
        summary.summarize(run["results"], run["duration_s"]),
        {"passed": False, "problems": [problem]},
        run["results"],
    )
    json_path = run["outputs"]["json"]
    write_atomic(json_path, render_json(report))
    raise ReportStepFailed(f"{problem}; wrote a plain JSON report to {json_path}")


def stop_workers() -> None:
    """End every worker process of this run: SIGTERM, a short grace, SIGKILL.

    Stock dotflow Parallel keeps its processes inside a Manager that returns
    only when the run is over, out of reach of a signal handler. Every worker
    is a multiprocessing child of this process, though, so sweeping those
    stops them whatever flow started them.
    """
    parallel.terminate_live_workers()

    workers = multiprocessing.active_children()
    for worker in workers:
        worker.terminate()

    give_up_at = time.monotonic() + WORKER_STOP_GRACE_S
    for worker in workers:
        worker.join(max(give_up_at - time.monotonic(), 0))
        if worker.is_alive():
            worker.kill()
            worker.join()


def read_result(task: Any, storage: StorageFile) -> dict[str, Any]:
    """An endpoint's row, read back from storage or from the task's last error."""
    endpoint: Endpoint = task.initial_context.storage
    attempts = task.retry_count + 1

    if task.status == TypeStatus.COMPLETED:
        row = _stored_row(storage.get(key=storage.key(task=task)).storage)
    else:
        row = steps.row_from_error_message(_last_error_message(task))
    if row is None:
        row = judge.result_row(endpoint, _attempt_without_row(task))

    flaky = row["ok"] and attempts > 1
    return {**row, "attempts": attempts, "flaky": flaky}


def _stored_row(stored: Any) -> dict[str, Any] | None:
    """The row from a task's storage entry.

    After a parallel run, dotflow 1.0.1 stores each task's context twice, once
    from the worker process and once from the parent, and StorageFile then
    returns a list of both. Both entries are the same row; keep the last.
    """
    if isinstance(stored, list):
        rows = [item.storage for item in stored if isinstance(item.storage, dict)]
        return rows[-1] if rows else None
    return stored if isinstance(stored, dict) else None


def _attempt_without_row(task: Any) -> Attempt:
    """What we know when a task failed without carrying its row."""
    errors = task.errors
    exception = errors[-1].exception if errors else ""
    if exception == "TimeoutError":
        limit = task.step.timeout
        return Attempt(
            error_kind="timeout", error=f"dotflow task timed out after {limit} s"
        )
    message = _last_error_message(task) or "no result was reported"
    return Attempt(
        error_kind="internal", error=f"check failed: {exception} {message}".strip()
    )


def _last_error_message(task: Any) -> str:
    return task.errors[-1].message if task.errors else ""


def _quiet_dotflow_logger(log_path: Path) -> None:
    """dotflow attaches a stderr handler at import; send its lines to the file.

    A log line that cannot be written (a full disk) is dropped silently:
    otherwise logging prints a traceback to stderr for every line, thousands
    per run, and buries the one error line that names the unwritable path.
    """
    logging.raiseExceptions = False
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("dotflow")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    file_handler = logging.FileHandler(log_path)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    logger.addHandler(file_handler)
    logger.propagate = False
