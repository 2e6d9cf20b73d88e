"""Write the report in every format the run asked for, with changes since last run."""

from __future__ import annotations

import sys
from typing import Any

from health_check import reports


def publish(report: dict[str, Any], outputs: dict[str, str | None]) -> dict[str, Any]:
    """Add `changes`, write each requested file atomically, return the report.

    The previous report is read before anything is written, because the new
    JSON report usually replaces it at the same path.
    """
    previous, note = reports.load_previous(outputs.get("previous") or outputs["json"])
    report = {
        **report,
        "changes": reports.compute_changes(previous, report["results"], note=note),
    }

    reports.write_all(
        report,
        json_path=outputs["json"],
        markdown_path=outputs.get("markdown"),
        prometheus_path=outputs.get("prometheus"),
        html_path=outputs.get("html"),
    )
    _append_step_summary(report)
    return report


def _append_step_summary(report: dict[str, Any]) -> None:
    """A job summary that cannot be written costs a warning, never the report."""
    try:
        reports.append_step_summary(reports.render_markdown(report))
    except OSError as error:
        reason = error.strerror or str(error)
        print(
            f"health-check: warning: cannot append to $GITHUB_STEP_SUMMARY: {reason}",
            file=sys.stderr,
        )
