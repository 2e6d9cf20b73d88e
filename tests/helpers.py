"""Run the pipeline as a user would, in-process or as a subprocess."""

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import main  # noqa: E402
from health_check.reports.schema import validate_report  # noqa: E402


def run_in_process(tmp_path: Path, *args: str) -> tuple[int, dict]:
    """main.main() with the report and storage under tmp_path."""
    report_path = tmp_path / "health_report.json"
    code = main.main(
        [
            *args,
            "--output",
            str(report_path),
            "--storage",
            str(tmp_path / ".output"),
            "--quiet",
        ]
    )
    return int(code), read_report(report_path)


def read_report(path: Path) -> dict:
    """The written report, which must always match the shipped schema."""
    report = json.loads(path.read_text(encoding="utf-8"))
    validate_report(report)
    return report


def run_main(
    *args: str, cwd: Path, timeout_s: float = 120, **options
) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in cwd, as a user runs it.

    `options` go to subprocess.run as they are, such as env or preexec_fn.
    """
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        **options,
    )


def file_size_limit(max_bytes: int):
    """A preexec_fn: writes past max_bytes fail with EFBIG, as a full disk does."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return limit


def result_for(report: dict, name: str) -> dict:
    return next(row for row in report["results"] if row["name"] == name)


def start_main(cwd: Path, *args: str) -> subprocess.Popen:
    """`python main.py --quiet ARGS` in its own session, left running.

    Its own session makes every process it leaves behind findable, even
    orphans that the system has handed to another parent.
    """
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--quiet", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_workers(pid: int, count: int, timeout_s: float = 20) -> None:
    """Wait until process `pid` has forked `count` workers."""
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        if len(psutil.Process(pid).children()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"main.py never started {count} workers")


def write_config(tmp_path: Path, endpoints: list, timeout_s: float) -> Path:
    """A YAML config of `endpoints` (URLs or mappings) with one timeout for all."""
    document = {"defaults": {"timeout": timeout_s}, "endpoints": endpoints}
    config_path = tmp_path / "endpoints.yaml"
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return config_path
