"""The report as Markdown, for terminals, pull requests and GitHub step summaries."""

import errno
import os
import re

from health_check.reports import wording

# Characters that GitHub-flavoured Markdown would read as table, link, emphasis
# or HTML syntax inside a cell. A backslash before any of them makes it literal.
MARKDOWN_SPECIAL = re.compile(r"([\\|`*_\[\]<>~&])")
LINE_BREAK = re.compile(r"\r\n|\r|\n")

RESULT_HEADINGS = ["State", "Name", "URL", "HTTP", "Time", "Attempts", "Reason"]
STATE_MARKS = {"up": "✅ up", "down": "❌ down"}


def render_markdown(report: dict) -> str:
    """Return the summary table, the changes, then the results, failures first."""
    sections = [
        _heading(report),
        _summary_table(report.get("summary", {})),
        _changes_section(report.get("changes")),
        _validation_section(report.get("validation")),
        _results_section(report.get("results", [])),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def append_step_summary(text: str) -> bool:
    """Append to the GitHub Actions step summary, when running in a job.

    Returns whether anything was written. GitHub owns that file and other steps
    append to it too, so it is appended to rather than replaced atomically.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False

    # A FIFO would block the run until someone reads it; only a regular file
    # (or a new one, as GitHub's runner provides) is appended to.
    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(path, "a", encoding="utf-8") as summary:
        summary.write(text if text.endswith("\n") else text + "\n")
    return True


def escape_cell(value: object) -> str:
    """Make any text safe inside one Markdown table cell."""
    text = MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
    return LINE_BREAK.sub("<br>", text)


def _heading(report: dict) -> str:
    headline = wording.headline(report.get("summary", {}))
    when = report.get("generated_at", "unknown time")
    return f"## Health check: {headline}\n\nGenerated {escape_cell(when)}."


def _summary_table(summary: dict) -> str:
    figures = wording.summary_figures(summary)
    return _table([label for label, _ in figures], [[text for _, text in figures]])


def _changes_section(changes: dict | None) -> str:
    if changes is None:
        return ""

    lines = ["### Changes", "", escape_cell(wording.change_intro(changes))]
    for heading, entries in wording.change_groups(changes):
        listed = ", ".join(escape_cell(entry) for entry in entries)
        lines.append(f"- **{heading}:** {listed}")
    return "\n".join(lines)


def _validation_section(validation: dict | None) -> str:
    if not validation or validation.get("passed", True):
        return ""

    problems = [f"- {escape_cell(problem)}" for problem in validation["problems"]]
    return "\n".join(["### Validation problems", "", *problems])


def _results_section(results: list[dict]) -> str:
    if not results:
        return "### Results\n\nNo endpoints were checked."

    rows = [_result_cells(result) for result in wording.failures_first(results)]
    return "### Results\n\n" + _table(RESULT_HEADINGS, rows)


def _result_cells(result: dict) -> list[str]:
    status_code = result.get("status_code")
    explanation = wording.reason(result) or wording.details(result)
    return [
        STATE_MARKS[wording.state_word(result)],
        escape_cell(result.get("name", "")),
        escape_cell(result.get("url", "")),
        wording.EMPTY if status_code is None else str(status_code),
        wording.format_optional_ms(result.get("response_time_ms")),
        str(result.get("attempts", 1)),
        escape_cell(explanation) if explanation else wording.EMPTY,
    ]


def _table(headings: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "---|" * len(headings),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]
    return "\n".join(lines)
