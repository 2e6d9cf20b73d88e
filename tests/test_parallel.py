"""BoundedParallel: dotflow's parallel mode without the deadlock, within limits."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path

import dotflow.core.workflow as dotflow_workflow
import psutil
import pytest
from dotflow import Config, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageFile

from health_check.parallel import bounded_parallel

CHILD_SCRIPT = Path(__file__).with_name("parallel_child.py")
PADDING = "x" * 2000

# Shared with the forked workers: they inherit these through fork.
_fork = get_context("fork")
_tasks_running = _fork.Value("i", 0)
_most_tasks_running = _fork.Value("i", 0)
_most_workers_alive = _fork.Value("i", 0)


@action
def padded_step(initial_context):
    return {"index": initial_context.storage, "padding": PADDING}


@action
def counting_step(initial_context):
    _note_start()
    time.sleep(0.02)
    with _tasks_running.get_lock():
        _tasks_running.value -= 1
    return initial_context.storage


@action
def failing_step(initial_context):
    raise ValueError(f"endpoint {initial_context.storage} is down")


@action
def asserting_step(initial_context):
    raise AssertionError("expectation failed")


@action
def dying_step(initial_context):
    os._exit(3)


@action
def unpicklable_step(initial_context):
    return threading.Lock()


@action
def sleeping_step(initial_context):
    time.sleep(initial_context.storage)
    return time.monotonic()


def test_400_padded_tasks_finish_in_order():
    workflow = _workflow(padded_step, range(400))

    with bounded_parallel(max_processes=4, max_in_flight=16):
        workflow.start(mode="parallel")

    assert _statuses(workflow) == [TypeStatus.COMPLETED] * 400
    assert [storage["index"] for storage in workflow.result_storage()] == list(
        range(400)
    )


def test_stock_dotflow_hangs_on_the_same_400_tasks(tmp_path):
    # Proves the workaround is needed: every step has run, yet the run never
    # ends, because the children wait on a full pipe while the parent joins.
    child = _start_child("stock", 400, tmp_path, step_s=0)
    try:
        _wait_for_markers(tmp_path, 400, child)
        time.sleep(3)

        assert child.poll() is None, "stock dotflow finished; is the bug fixed?"
    finally:
        _kill_group(child)


def test_limits_hold_for_processes_and_tasks_in_flight():
    for counter in (_tasks_running, _most_tasks_running, _most_workers_alive):
        counter.value = 0
    workflow = _workflow(counting_step, range(200))

    with bounded_parallel(max_processes=3, max_in_flight=6):
        workflow.start(mode="parallel")

    assert _statuses(workflow) == [TypeStatus.COMPLETED] * 200
    assert _most_workers_alive.value == 3
    assert _most_tasks_running.value == 6


def test_a_slow_task_delays_only_itself():
    workflow = _workflow(sleeping_step, [3.0] + [0.01] * 50)

    with bounded_parallel(max_processes=2, max_in_flight=2):
        workflow.start(mode="parallel")

    slow_finished, *fast_finished = workflow.result_storage()
    assert max(fast_finished) < slow_finished


def test_outcomes_come_back_in_task_order():
    steps = [padded_step, failing_step, padded_step, asserting_step, padded_step]
    workflow = DotFlow()
    for index, step in enumerate(steps):
        workflow.task.add(step=step, initial_context=index)

    with bounded_parallel(max_processes=2, max_in_flight=4):
        workflow.start(mode="parallel", keep_going=True)

    tasks = workflow.task.queue
    assert _statuses(workflow) == [
        TypeStatus.COMPLETED,
        TypeStatus.FAILED,
        TypeStatus.COMPLETED,
        TypeStatus.FAILED,
        TypeStatus.COMPLETED,
    ]
    assert tasks[1].errors[-1].message == "endpoint 1 is down"
    assert tasks[3].errors[-1].message == "expectation failed"
    assert [tasks[index].current_context.storage["index"] for index in (0, 2, 4)] == [
        0,
        2,
        4,
    ]


def test_a_worker_that_dies_fails_its_task_clearly():
    steps = [padded_step, dying_step, padded_step, padded_step]
    workflow = DotFlow()
    for index, step in enumerate(steps):
        workflow.task.add(step=step, initial_context=index)

    # One task per process, so the death takes no neighbour with it.
    with bounded_parallel(max_processes=2, max_in_flight=2):
        workflow.start(mode="parallel", keep_going=True)

    dead = workflow.task.queue[1]
    assert _statuses(workflow) == [
        TypeStatus.COMPLETED,
        TypeStatus.FAILED,
        TypeStatus.COMPLETED,
        TypeStatus.COMPLETED,
    ]
    assert dead.errors[-1].exception == "RuntimeError"
    assert dead.errors[-1].message.startswith("Worker process ")
    assert dead.errors[-1].message.endswith(
        " exited with code 3 without reporting a result"
    )


def test_an_outcome_that_will_not_pickle_fails_with_the_reason():
    workflow = DotFlow()
    workflow.task.add(step=unpicklable_step)
    workflow.task.add(step=padded_step, initial_context=1)

    with bounded_parallel(max_processes=1, max_in_flight=2):
        workflow.start(mode="parallel", keep_going=True)

    unpicklable, fine = workflow.task.queue
    assert (unpicklable.status, fine.status) == (
        TypeStatus.FAILED,
        TypeStatus.COMPLETED,
    )
    assert unpicklable.errors[-1].message == "cannot pickle '_thread.lock' object"
    assert unpicklable.current_context.storage is None


def test_storage_file_holds_each_context_twice(tmp_path):
    config = Config(storage=StorageFile(path=str(tmp_path)))
    workflow = _workflow(padded_step, range(5), config=config)

    with bounded_parallel(max_processes=2, max_in_flight=4):
        workflow.start(mode="parallel")

    for index, task in enumerate(workflow.task.queue):
        key = config.storage.key(task=task)
        stored = json.loads(Path(tmp_path, "tasks", key).read_text())
        expected = json.dumps({"index": index, "padding": PADDING})
        assert stored == [expected, expected]


def test_the_installer_puts_dotflows_parallel_back():
    original = dotflow_workflow.Parallel

    with pytest.raises(KeyError), bounded_parallel():
        assert dotflow_workflow.Parallel is not original
        raise KeyError("leaving by an error")

    assert dotflow_workflow.Parallel is original


@pytest.mark.parametrize(
    "limits", [{"max_processes": 0}, {"max_in_flight": 0}, {"max_processes": -2}]
)
def test_the_installer_refuses_limits_below_one(limits):
    with pytest.raises(ValueError, match="must be at least 1"):
        bounded_parallel(**limits).__enter__()


@pytest.mark.parametrize(
    ("signal_sent", "extra_arguments", "expected_return_code"),
    [
        (signal.SIGINT, [], -signal.SIGINT),
        (signal.SIGTERM, ["terminate-on-sigterm"], 0),
        (signal.SIGKILL, [], -signal.SIGKILL),
    ],
)
def test_no_worker_outlives_a_signalled_parent(
    tmp_path, signal_sent, extra_arguments, expected_return_code
):
    child = _start_child("bounded", 8, tmp_path, 60, *extra_arguments)
    try:
        # Two workers with two tasks each: four steps start, then all wait.
        _wait_for_markers(tmp_path, 4, child)
        worker_pids = {int(marker.name.split("-")[0]) for marker in tmp_path.iterdir()}

        child.send_signal(signal_sent)
        child.wait(timeout=30)
        _wait_until_gone(worker_pids, timeout_s=30)
    finally:
        _kill_group(child)

    assert child.returncode == expected_return_code


def test_terminated_workers_leave_their_tasks_failed(tmp_path):
    child = _start_child("bounded", 8, tmp_path, 60, "terminate-on-sigterm")
    try:
        _wait_for_markers(tmp_path, 4, child)
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)
    finally:
        _kill_group(child)

    messages = [message for status, message in json.loads(output)]
    assert {status for status, _ in json.loads(output)} == {TypeStatus.FAILED}
    assert sum("was killed by SIGTERM" in message for message in messages) == 4
    assert messages.count("not started: the run was stopped") == 4


# Helpers.


def _workflow(step, contexts, config=None):
    workflow = DotFlow(config=config)
    for context in contexts:
        workflow.task.add(step=step, initial_context=context)
    return workflow


def _statuses(workflow):
    return [task.status for task in workflow.task.queue]


def _note_start():
    workers_alive = len(psutil.Process(os.getppid()).children())

    with _tasks_running.get_lock():
        _tasks_running.value += 1
        _most_tasks_running.value = max(_most_tasks_running.value, _tasks_running.value)
        _most_workers_alive.value = max(_most_workers_alive.value, workers_alive)


def _start_child(flavour, task_count, marker_dir, step_s, *extra):
    # A session of its own, so one killpg removes the child and its workers.
    return subprocess.Popen(
        [sys.executable, str(CHILD_SCRIPT), flavour, str(task_count)]
        + [str(marker_dir), str(step_s), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _wait_for_markers(marker_dir, count, child):
    while len(list(marker_dir.iterdir())) < count:
        assert child.poll() is None, "the child run ended early"
        time.sleep(0.05)


def _wait_until_gone(pids, timeout_s):
    deadline_s = time.monotonic() + timeout_s
    while any(_is_running(pid) for pid in pids):
        assert time.monotonic() < deadline_s, f"workers still alive: {pids}"
        time.sleep(0.1)


def _is_running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_group(child):
    # Stock dotflow's stuck children would otherwise stay for ever.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
