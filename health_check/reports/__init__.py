"""Report writers: one report dict in, JSON, Markdown, Prometheus and HTML out."""

import os
from pathlib import Path

from health_check.files import write_atomic
from health_check.reports.changes import compute_changes, load_previous
from health_check.reports.html import render_html
from health_check.reports.json_report import render_json
from health_check.reports.markdown import append_step_summary, render_markdown
from health_check.reports.prometheus import render_prometheus

__all__ = [
    "append_step_summary",
    "compute_changes",
    "load_previous",
    "render_html",
    "render_json",
    "render_markdown",
    "render_prometheus",
    "write_all",
]


def write_all(
    report: dict,
    json_path: str | os.PathLike,
    markdown_path: str | os.PathLike | None = None,
    prometheus_path: str | os.PathLike | None = None,
    html_path: str | os.PathLike | None = None,
) -> list[Path]:
    """Write each requested format atomically; return the paths written.

    The report is not validated here: a schema slip must never cost the run
    its report. The tests validate every report they produce instead.
    """
    planned = [
        (json_path, render_json),
        (markdown_path, render_markdown),
        (prometheus_path, render_prometheus),
        (html_path, render_html),
    ]
    written = []
    for path, render in planned:
        if path is not None:
            write_atomic(path, render(report))
            written.append(Path(path))
    return written
