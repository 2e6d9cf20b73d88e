"""dotflow's parallel mode with a bounded pool of worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from uuid import UUID

import dotflow.core.workflow as dotflow_workflow
from dotflow.abc.flow import Flow
from dotflow.core.context import Context
from dotflow.core.engine import TaskEngine
from dotflow.core.task import Task, TaskError
from dotflow.core.types import TypeStatus

DEFAULT_MAX_PROCESSES = 2 * (os.cpu_count() or 1)
DEFAULT_MAX_IN_FLIGHT = 128

# How often a worker looks whether the process that forked it is still there.
_PARENT_CHECK_INTERVAL_S = 0.5
_TERMINATE_GRACE_S = 5.0

# Like dotflow, fork: a forked worker inherits the tasks, their steps and the
# storage, none of which need to be picklable.
_fork = get_context("fork")


class BoundedParallel(Flow):
    """Run every task on a few forked worker processes, several tasks per process.

    At most `max_processes` workers live at once, and each runs up to
    `max_in_flight // max_processes` tasks at a time in threads, each task
    through dotflow's own TaskEngine.  The parent hands a task to a worker as
    soon as it has a free slot, and reads the reports while the workers run,
    so no pipe ever fills.  A worker that ends while tasks wait is replaced.

    Threads, because a fork per task costs tens of milliseconds of CPU: with
    a fork per task, 1,000 checks of 200 ms took 36 s at 8 processes and 14 s
    even at 128 on two cores, against under 3 s here.
    """

    def __init__(
        self,
        tasks: list[Task],
        workflow_id: UUID,
        ignore: bool,
        groups: dict[str, list[Task]],
        resume: bool = False,
        *,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        _require_positive(max_processes=max_processes, max_in_flight=max_in_flight)

        self.max_processes = min(max_processes, max_in_flight)
        self.tasks_per_process = max_in_flight // self.max_processes

        super().__init__(tasks, workflow_id, ignore, groups, resume)

    def setup_queue(self) -> None:
        # The queue holds the ids of tasks no worker has been handed yet.
        self.queue = deque(task.task_id for task in self.tasks)
        self._tasks_by_id = {task.task_id: task for task in self.tasks}
        self._workers: list[_Worker] = []
        self._stopping = False

        # Set inside a worker only: where its threads send their reports.
        self._report_connection: Connection | None = None
        self._report_lock = threading.Lock()

    def get_tasks(self) -> list[Task]:
        for task_id in self.queue:
            _fail(self._tasks_by_id[task_id], "not started: the run was stopped")

        self.queue.clear()
        return self.tasks

    def _flow_callback(self, task: Task) -> None:
        report = {
            task.task_id: {
                "current_context": task.current_context,
                "duration": task.duration,
                "errors": task.errors,
                "retry_count": task.retry_count,
                "status": task.status,
            }
        }

        with self._report_lock:
            self._report_connection.send(report)

    def run(self) -> None:
        _running_flows.add(self)
        try:
            self._run_until_done()
        except BaseException:
            # Ctrl-C, or a signal handler that raised: leave no worker behind.
            self.terminate_all()
            self._wait_for_workers_to_exit()
            raise
        finally:
            _running_flows.discard(self)

    def terminate_all(self) -> None:
        """Stop handing out tasks and send SIGTERM to every live worker.

        Tasks the workers had in hand end FAILED; get_tasks() marks the ones
        never handed out FAILED too.  Safe to call from a signal handler.
        """
        self._stopping = True

        for worker in list(self._workers):
            worker.process.terminate()

    # The parent's side.

    def _run_until_done(self) -> None:
        while self._workers or (self.queue and not self._stopping):
            if self._stopping:
                self.terminate_all()
            else:
                self._start_workers()
                self._hand_out_tasks()

            self._receive_reports()

    def _start_workers(self) -> None:
        # No more workers than there are tasks left for them.
        wanted = min(self.max_processes, len(self.queue) + len(self._workers))

        while self.queue and len(self._workers) < wanted:
            parent_end, worker_end = _fork.Pipe()
            process = _fork.Process(target=self._serve, args=(worker_end, os.getpid()))
            process.start()

            # Close our copy at once, so the worker's death reads as end of
            # file here, and later workers don't inherit this end.
            worker_end.close()
            self._workers.append(_Worker(process=process, connection=parent_end))

    def _hand_out_tasks(self) -> None:
        while self.queue:
            worker = min(self._workers, key=lambda each: len(each.in_flight))
            if len(worker.in_flight) >= self.tasks_per_process:
                break

            task_id = self.queue.popleft()
            worker.in_flight.add(task_id)
            _send_quietly(worker.connection, task_id)

        if not self.queue:
            for worker in self._workers:
                worker.tell_to_stop()

    def _receive_reports(self) -> None:
        if not self._workers:
            return

        by_handle = {}
        for worker in self._workers:
            by_handle[worker.connection] = worker
            by_handle[worker.process.sentinel] = worker

        ready = wait(list(by_handle))
        for worker in {by_handle[handle] for handle in ready}:
            still_open = self._read_reports(worker)
            if not still_open or not worker.process.is_alive():
                self._retire(worker)

    def _read_reports(self, worker: _Worker) -> bool:
        """Apply every report the worker has sent; False once its end is closed."""
        try:
            while worker.connection.poll():
                self._apply_report(worker, worker.connection.recv())
        except (EOFError, OSError):
            return False

        return True

    def _apply_report(self, worker: _Worker, report: dict) -> None:
        # As dotflow does: copy the worker's outcome onto the parent's task.
        # Assigning current_context posts to storage again, so a StorageFile
        # ends up holding the context twice (once from each process).
        for task_id, outcome in report.items():
            worker.in_flight.discard(task_id)

            task = self._tasks_by_id[task_id]
            task.current_context = outcome["current_context"]
            task.duration = outcome["duration"]
            task.errors = outcome["errors"]
            task.retry_count = outcome["retry_count"]
            task.status = outcome["status"]

    def _retire(self, worker: _Worker) -> None:
        worker.process.join()
        self._read_reports(worker)
        worker.connection.close()
        self._workers.remove(worker)

        reason = _describe_exit(worker.process)
        for task_id in sorted(worker.in_flight):
            _fail(self._tasks_by_id[task_id], reason)

    def _wait_for_workers_to_exit(self) -> None:
        deadline_s = time.monotonic() + _TERMINATE_GRACE_S

        for worker in self._workers:
            worker.process.join(max(0.0, deadline_s - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()

    # The worker's side.

    def _serve(self, connection: Connection, parent_pid: int) -> None:
        _exit_with_parent(parent_pid)

        # Ctrl-C reaches the whole process group; only the parent should act
        # on it.  Drop any SIGTERM handler the parent's program installed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        self._report_connection = connection
        with ThreadPoolExecutor(max_workers=self.tasks_per_process) as pool:
            for task_id in _task_ids_from(connection):
                pool.submit(self._run_task, self._tasks_by_id[task_id])

    def _run_task(self, task: Task) -> None:
        try:
            self._execute(task)
        except BaseException as error:
            # TaskEngine lets AssertionError through, and a callback may raise:
            # report the task failed rather than lose it with its thread.
            _mark_failed(task, error)

        try:
            self._flow_callback(task=task)
        except Exception as error:
            # An outcome that won't pickle: report the task failed instead,
            # without a context, as TaskEngine does for a step that raised.
            task.current_context = None
            _mark_failed(task, error)
            self._flow_callback(task=task)

    def _execute(self, task: Task) -> None:
        engine = TaskEngine(
            task=task,
            workflow_id=self.workflow_id,
            previous_context=Context(workflow_id=self.workflow_id),
        )

        with engine.start():
            engine.execute_with_retry()

        task.callback(task=task)


@contextmanager
def bounded_parallel(
    max_processes: int = DEFAULT_MAX_PROCESSES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Iterator[None]:
    """Make `workflow.start(mode="parallel")` use BoundedParallel inside the block."""
    _require_positive(max_processes=max_processes, max_in_flight=max_in_flight)

    # dotflow's Parallel forks one process per task and joins them all before
    # it reads the result queue, so once the results fill the pipe (16 pages:
    # some 16 tasks of 2 KB each) the children block on put, the parent blocks
    # on join, and the run hangs for ever.
    original = dotflow_workflow.Parallel
    dotflow_workflow.Parallel = partial(
        BoundedParallel, max_processes=max_processes, max_in_flight=max_in_flight
    )
    try:
        yield
    finally:
        dotflow_workflow.Parallel = original


def terminate_live_workers() -> None:
    """Terminate the workers of every BoundedParallel run now in progress.

    Meant for a SIGTERM or SIGINT handler: the run then ends with the
    unfinished tasks FAILED.
    """
    for flow in list(_running_flows):
        flow.terminate_all()


# Private helpers.

_running_flows: set[BoundedParallel] = set()


@dataclass(eq=False)
class _Worker:
    """One worker process, as the parent sees it."""

    process: BaseProcess
    connection: Connection
    in_flight: set[str] = field(default_factory=set)
    told_to_stop: bool = False

    def tell_to_stop(self) -> None:
        if not self.told_to_stop:
            self.told_to_stop = True
            _send_quietly(self.connection, None)


def _task_ids_from(connection: Connection) -> Iterator[str]:
    """Task ids the parent hands this worker, until it says stop (None)."""
    while True:
        try:
            task_id = connection.recv()
        except EOFError:
            return

        if task_id is None:
            return

        yield task_id


def _send_quietly(connection: Connection, message: str | None) -> None:
    # A worker that already died cannot take the message; the parent finds
    # out when it reads the end of file, and fails what the worker held.
    with suppress(OSError):
        connection.send(message)


def _fail(task: Task, reason: str) -> None:
    _mark_failed(task, RuntimeError(reason))


def _mark_failed(task: Task, error: BaseException) -> None:
    # Errors first, so the log line the status setter writes shows the reason.
    task.errors = TaskError(error)
    task.status = TypeStatus.FAILED


def _describe_exit(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code}"

    return f"Worker process {process.pid} {how} without reporting a result"


def _exit_with_parent(parent_pid: int) -> None:
    """End this worker soon after its parent dies, however the parent died."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _require_positive(**limits: int) -> None:
    for name, value in limits.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
