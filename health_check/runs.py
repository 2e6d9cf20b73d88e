"""Each run's footprint in the storage folder, and pruning of old runs' task files.

dotflow's StorageFile names task files `<workflow_id>-<task_id>.json` and
never deletes them, so a run every minute would fill the disk. Every run
therefore keeps a manifest, `runs/<run_id>.json`, listing its workflow ids,
and holds an exclusive flock on it while it runs. Pruning deletes the task
files of all but the runs that finished last, and skips any run whose
manifest is locked: a run in flight, perhaps another process sharing the
folder, is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from health_check import TIMESTAMP_FORMAT

RUNS_FOLDER = "runs"
TASKS_FOLDER = "tasks"  # where dotflow's StorageFile keeps task files


class RunRecord:
    """The locked manifest of the current run; use it as a context manager."""

    def __init__(self, storage_dir: str | os.PathLike) -> None:
        self.runs_dir = Path(storage_dir, RUNS_FOLDER)
        started = datetime.now(UTC)
        self.run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.path = self.runs_dir / f"{self.run_id}.json"
        self._manifest: dict[str, Any] = {
            "run_id": self.run_id,
            "started_at": started.strftime(TIMESTAMP_FORMAT),
            "pid": os.getpid(),
            "workflow_ids": [],
            "finished_at": None,
        }
        self._handle: Any = None

    def __enter__(self) -> RunRecord:
        self.runs_dir.mkdir(parents=True, exist_ok=True)

        # Locked under a name that pruning ignores, then renamed: a pruner
        # can never see this manifest unlocked and take it for a dead run.
        hidden = self.runs_dir / f".{self.run_id}.json.new"
        self._handle = open(hidden, "w+", encoding="utf-8")  # noqa: SIM115
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        self._write()
        os.replace(hidden, self.path)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # The last write dates the manifest: pruning keeps the runs that
        # finished last, not the ones that started last.
        self._manifest["finished_at"] = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
        try:
            self._write()
        finally:
            # Closing releases the lock, even when the write failed: a lock
            # left held would make every later pruning spare this run.
            self._handle.close()

    def record_workflow(self, workflow_id: Any) -> None:
        """Note a workflow of this run; call it before the workflow starts."""
        self._manifest["workflow_ids"].append(str(workflow_id))
        self._write()

    def _write(self) -> None:
        try:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(json.dumps(self._manifest))
            self._handle.flush()
        except OSError as error:
            # A full disk fails the flush with no file name; name the manifest.
            raise OSError(error.errno, error.strerror, str(self.path)) from None


def prune_runs(storage_dir: str | os.PathLike, keep_runs: int) -> list[str]:
    """Delete the task files of all but the `keep_runs` runs that wrote last.

    Returns the ids of the runs deleted. Runs still holding their lock are
    skipped, whatever their age.
    """
    tasks_dir = Path(storage_dir, TASKS_FOLDER)
    newest_first = _newest_first(Path(storage_dir, RUNS_FOLDER))

    pruned = []
    for manifest_path in newest_first[keep_runs:]:
        if _prune_run(manifest_path, tasks_dir):
            pruned.append(manifest_path.stem)
    return pruned


def _newest_first(runs_dir: Path) -> list[Path]:
    dated = []
    for path in runs_dir.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
            dated.append((path.stat().st_mtime_ns, path.name, path))
    return [path for *_, path in sorted(dated, reverse=True)]


def _prune_run(manifest_path: Path, tasks_dir: Path) -> bool:
    try:
        handle = open(manifest_path, encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        return False  # another run pruned it a moment ago

    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # in flight

        for workflow_id in _workflow_ids(handle.read()):
            for task_file in tasks_dir.glob(f"{workflow_id}-*"):
                task_file.unlink(missing_ok=True)
        # Unlinked while still locked, so no other pruner reads it half-gone.
        manifest_path.unlink(missing_ok=True)
    return True


def _workflow_ids(text: str) -> list[str]:
    """The manifest's workflow ids; none when a crash left it unreadable."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        ids = json.loads(text).get("workflow_ids", [])
        # Only uuid-shaped ids: a damaged manifest must not widen the glob.
        return [str(uuid.UUID(str(workflow_id))) for workflow_id in ids]
    return []
