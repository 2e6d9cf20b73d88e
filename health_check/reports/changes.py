"""What changed since the previous report: endpoints down, recovered, slower."""

import json
import os
import stat
from pathlib import Path

# An endpoint counts as slower when its response time more than doubled AND
# grew by at least this much: doubling alone flags 2 ms -> 5 ms, which is noise.
# With one check per endpoint per run, the endpoint's p50 is its response time.
SLOWER_FACTOR = 2.0
SLOWER_MIN_INCREASE_MS = 100.0

NO_PREVIOUS_NOTE = "no previous report to compare with"

# A real report of 10,000 endpoints is about 6 MiB. The cap keeps a wrong
# --previous (a huge file, or /dev/zero behind a symlink) from eating memory.
MAX_PREVIOUS_BYTES = 64 * 1024 * 1024


def compute_changes(
    previous_report: dict | None,
    current_results: list[dict],
    *,
    note: str | None = None,
) -> dict:
    """Compare this run's result rows with the previous report, by endpoint name.

    Endpoints new in this run or gone since the last one are not changes.
    `note` says why there is no previous report (see load_previous).
    """
    if previous_report is None:
        return _changes(None, note or NO_PREVIOUS_NOTE, [], [], [])

    previous_by_name = {row["name"]: row for row in previous_report["results"]}
    pairs = [
        (previous_by_name[row["name"]], row)
        for row in current_results
        if row["name"] in previous_by_name
    ]

    went_down = [now["name"] for before, now in pairs if before["ok"] and not now["ok"]]
    recovered = [now["name"] for before, now in pairs if not before["ok"] and now["ok"]]
    slower = [
        _slower_entry(before, now) for before, now in pairs if _is_slower(before, now)
    ]
    return _changes(
        previous_report.get("generated_at"), note, went_down, recovered, slower
    )


def load_previous(path: str | Path) -> tuple[dict | None, str | None]:
    """Read the previous report; on any trouble return (None, one-line note).

    A broken previous report must never stop this run from reporting.
    """
    source = Path(path)
    try:
        text = _read_regular_file(source, MAX_PREVIOUS_BYTES)
    except FileNotFoundError:
        return None, f"no previous report at {source}"
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or _one_line(error)
        return None, f"previous report {source} is unreadable: {reason}"

    try:
        report = json.loads(text)
    except (ValueError, RecursionError) as error:
        return None, f"previous report {source} is not JSON: {_one_line(error)}"

    problem = _unusable(report)
    if problem:
        return None, f"previous report {source} is ignored: {problem}"
    return report, None


def _read_regular_file(source: Path, limit_bytes: int) -> str:
    """The file's text, if it is a regular file of at most `limit_bytes`.

    Checked before opening, since opening some devices has side effects, and
    again on the descriptor, opened without blocking, in case the path was
    swapped meanwhile: a FIFO would hang the run, /dev/zero never ends.
    """
    if not stat.S_ISREG(os.stat(source).st_mode):
        raise OSError("not a regular file")
    descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    with open(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError("not a regular file")
        data = stream.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise OSError(f"larger than {limit_bytes // (1024 * 1024)} MiB")
    return data.decode("utf-8")


def _unusable(report: object) -> str | None:
    """Why a previous report cannot be compared with, or None.

    Only what compute_changes reads is checked, so that a report from another
    version of this tool still counts; jsonschema stays a test-time tool.
    """
    if not isinstance(report, dict) or not isinstance(report.get("generated_at"), str):
        return "not a health report (no generated_at)"
    results = report.get("results")
    if not isinstance(results, list):
        return "its results are not a list"
    for position, row in enumerate(results):
        if not (
            isinstance(row, dict)
            and isinstance(row.get("name"), str)
            and isinstance(row.get("ok"), bool)
            and isinstance(row.get("response_time_ms"), int | float | None)
        ):
            return f"result {position} lacks a name, ok or response_time_ms"
    return None


def _is_slower(before: dict, now: dict) -> bool:
    # A failing check's time measures the failure, not the endpoint's speed.
    if not (before["ok"] and now["ok"]):
        return False

    previous_ms = before.get("response_time_ms")
    current_ms = now.get("response_time_ms")
    if previous_ms is None or current_ms is None:
        return False
    return (
        current_ms > SLOWER_FACTOR * previous_ms
        and current_ms - previous_ms >= SLOWER_MIN_INCREASE_MS
    )


def _slower_entry(before: dict, now: dict) -> dict:
    return {
        "name": now["name"],
        "previous_ms": before["response_time_ms"],
        "current_ms": now["response_time_ms"],
    }


def _changes(
    previous_generated_at: str | None,
    note: str | None,
    went_down: list[str],
    recovered: list[str],
    slower: list[dict],
) -> dict:
    return {
        "previous_generated_at": previous_generated_at,
        "note": note,
        "went_down": went_down,
        "recovered": recovered,
        "slower": slower,
    }


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
