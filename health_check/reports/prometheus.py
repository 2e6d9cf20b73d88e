"""The report as Prometheus text, for node_exporter's textfile collector."""

import math
from datetime import UTC, datetime

from health_check import TIMESTAMP_FORMAT

# (metric, help, how to read its value from one result row)
ENDPOINT_METRICS = [
    (
        "health_check_up",
        "1 when the endpoint answered and every expectation held, else 0.",
        lambda row: 1 if row.get("ok") else 0,
    ),
    (
        "health_check_response_time_seconds",
        "Duration of the last attempt's HTTP exchange in seconds.",
        lambda row: _seconds(row.get("response_time_ms")),
    ),
    (
        "health_check_status_code",
        "HTTP status code of the last answer.",
        lambda row: row.get("status_code"),
    ),
    (
        "health_check_attempts",
        "HTTP attempts made in this run.",
        lambda row: row.get("attempts"),
    ),
    (
        "health_check_tls_not_after_timestamp_seconds",
        "Expiry of the server certificate as a Unix timestamp.",
        lambda row: _timestamp(
            (row.get("tls") or {}).get("not_after"), TIMESTAMP_FORMAT
        ),
    ),
]
RUN_METRICS = [
    (
        "health_check_last_run_timestamp_seconds",
        "When the last health-check run wrote its report, as a Unix timestamp.",
        lambda report: _timestamp(report.get("generated_at"), "%Y-%m-%d %H:%M:%S UTC"),
    ),
    (
        "health_check_run_duration_seconds",
        "Wall-clock duration of the last health-check run in seconds.",
        lambda report: report.get("summary", {}).get("duration_s"),
    ),
]


def render_prometheus(report: dict) -> str:
    """Return gauges per endpoint (labelled by name and url) and for the run.

    A value the report lacks is left out rather than written as 0, which
    would read as a real status code, duration or expiry.
    """
    results = report.get("results", [])
    blocks = [
        _family(metric, help_text, [(_labels(row), value(row)) for row in results])
        for metric, help_text, value in ENDPOINT_METRICS
    ]
    blocks += [
        _family(metric, help_text, [("", value(report))])
        for metric, help_text, value in RUN_METRICS
    ]
    return "".join(blocks)


def escape_label_value(value: str) -> str:
    """Escape a label value as the text exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(metric: str, help_text: str, samples: list[tuple[str, object]]) -> str:
    lines = [
        f"{metric}{labels} {_number(value)}\n"
        for labels, value in samples
        if value is not None
    ]
    if not lines:
        return ""
    return f"# HELP {metric} {help_text}\n# TYPE {metric} gauge\n" + "".join(lines)


def _labels(row: dict) -> str:
    name = escape_label_value(str(row.get("name", "")))
    url = escape_label_value(str(row.get("url", "")))
    return f'{{name="{name}",url="{url}"}}'


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _seconds(milliseconds: float | None) -> float | None:
    # The report keeps tenths of a millisecond; rounding to that precision
    # keeps float noise such as 0.0050999999999999995 out of the file.
    return None if milliseconds is None else round(milliseconds / 1000, 4)


def _timestamp(text: str | None, layout: str) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text, layout).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp())
