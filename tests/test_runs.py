"""Repeated and concurrent runs: task files pruned, results and reports unmixed."""

import fcntl
import json
import threading

import pytest

from health_check import runs
from health_check.files import write_atomic

from helpers import (
    run_in_process,
    run_main,
    start_main,
    wait_for_workers,
    write_config,
)

CHECK_TASKS = 1  # one endpoint per run below
REPORT_TASKS = 3  # aggregate, validate, generate


def test_only_the_last_run_keeps_its_task_files(app_server, tmp_path):
    for _ in range(3):
        run_in_process(tmp_path, app_server.url("/ok"))

    (manifest,) = manifests(tmp_path)
    assert task_workflow_ids(tmp_path) == set(manifest["workflow_ids"])
    assert len(task_files(tmp_path)) == CHECK_TASKS + REPORT_TASKS


def test_keep_runs_keeps_that_many(app_server, tmp_path):
    for _ in range(4):
        run_in_process(tmp_path, "--keep-runs", "2", app_server.url("/ok"))

    kept = manifests(tmp_path)
    assert len(kept) == 2
    assert task_workflow_ids(tmp_path) == {
        workflow_id for manifest in kept for workflow_id in manifest["workflow_ids"]
    }


def test_a_locked_run_is_never_pruned(app_server, tmp_path):
    run_in_process(tmp_path, app_server.url("/ok"))
    (first_path,) = manifest_paths(tmp_path)
    first_ids = set(json.loads(first_path.read_text())["workflow_ids"])

    # Holding the lock is what a run in flight does.
    with open(first_path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        run_in_process(tmp_path, app_server.url("/ok"))
        run_in_process(tmp_path, app_server.url("/ok"))
        assert first_path.exists()
        assert first_ids <= task_workflow_ids(tmp_path)

    run_in_process(tmp_path, app_server.url("/ok"))
    assert not first_path.exists()
    assert not first_ids & task_workflow_ids(tmp_path)


@pytest.mark.timeout(60)
def test_runs_sharing_a_storage_folder_keep_their_own_results(
    raw_server, app_server, tmp_path
):
    slow_urls = [raw_server("silent").url("/"), app_server.url("/ok")]
    slow_config = write_config(tmp_path, slow_urls, timeout_s=1)
    storage = str(tmp_path / "shared")

    slow_run = start_main(
        tmp_path, "--config", str(slow_config), "--storage", storage,
        "--output", "slow.json",
    )  # fmt: skip
    wait_for_workers(slow_run.pid, 1)  # the silent check is in flight
    for _ in range(2):
        quick = run_main(
            app_server.url("/status/404"),
            app_server.url("/delay/10"),
            "--storage", storage, "--output", "quick.json", "--quiet",
            cwd=tmp_path,
        )  # fmt: skip
        assert quick.returncode == 0, quick.stderr
    slow_run.wait(timeout=30)

    slow_report = json.loads((tmp_path / "slow.json").read_text())
    assert [row["url"] for row in slow_report["results"]] == slow_urls
    assert [row["error_kind"] for row in slow_report["results"]] == ["timeout", None]
    quick_report = json.loads((tmp_path / "quick.json").read_text())
    assert [row["status_code"] for row in quick_report["results"]] == [404, 200]
    # The slow run finished last, so its task state is the one kept.
    (kept,) = manifests(tmp_path, storage="shared")
    assert kept["pid"] == slow_run.pid
    assert task_workflow_ids(tmp_path, "shared") == set(kept["workflow_ids"])


@pytest.mark.timeout(60)
def test_two_runs_writing_one_report_leave_one_whole_report(app_server, tmp_path):
    url_sets = [
        [app_server.url(f"/json?body=run{run}&n={n}") for n in range(8)]
        for run in (1, 2)
    ]
    runs = [start_main(tmp_path, "--output", "report.json", *urls) for urls in url_sets]
    for run in runs:
        run.wait(timeout=30)

    assert [run.returncode for run in runs] == [0, 0]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["url"] for row in report["results"]] in url_sets
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == [
        "report.json"
    ]


@pytest.mark.timeout(60)
def test_readers_never_see_a_half_written_report(tmp_path):
    target = tmp_path / "report.json"
    documents = [json.dumps({"writer": n, "padding": "x" * 200_000}) for n in (1, 2)]
    write_atomic(target, documents[0])
    stop = threading.Event()

    def keep_writing(text):
        while not stop.is_set():
            write_atomic(target, text)

    writers = [threading.Thread(target=keep_writing, args=(d,)) for d in documents]
    for writer in writers:
        writer.start()
    try:
        seen = {json.loads(target.read_text())["writer"] for _ in range(300)}
    finally:
        stop.set()
        for writer in writers:
            writer.join()

    assert seen <= {1, 2}
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("value", ["0", "-1", "two", "²"])
def test_keep_runs_must_be_a_positive_number(tmp_path, value):
    result = run_main("--keep-runs", value, "http://127.0.0.1:9/", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("health-check: error: ")
    assert "--keep-runs" in result.stderr
    assert not (tmp_path / "health_report.json").exists()


def manifest_paths(tmp_path, storage=".output"):
    return sorted((tmp_path / storage / "runs").glob("*.json"))


def manifests(tmp_path, storage=".output"):
    paths = manifest_paths(tmp_path, storage)
    return [json.loads(path.read_text()) for path in paths]


def task_files(tmp_path, storage=".output"):
    return list((tmp_path / storage / "tasks").glob("*.json"))


def task_workflow_ids(tmp_path, storage=".output"):
    # File names are <workflow uuid>-<task id>.json; a uuid is 36 characters.
    return {path.name[:36] for path in task_files(tmp_path, storage)}


def test_a_failed_final_manifest_write_still_releases_the_lock(tmp_path, monkeypatch):
    record = runs.RunRecord(str(tmp_path))
    record.__enter__()

    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record, "_write", disk_full)
    with pytest.raises(OSError):
        record.__exit__(None, None, None)

    assert record._handle.closed
    with open(record.path, "a") as probe:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if held
