"""Run the pipeline as a user would, in-process or as a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import main  # noqa: E402


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
    return int(code), json.loads(report_path.read_text(encoding="utf-8"))


def run_main(
    *args: str, cwd: Path, timeout_s: float = 120
) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in cwd, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def result_for(report: dict, name: str) -> dict:
    return next(row for row in report["results"] if row["name"] == name)
