"""Order and words shared by the reports people read (Markdown and HTML)."""

EMPTY = "—"


def format_ms(value: float) -> str:
    """Write a duration in milliseconds."""
    return f"{value:.1f} ms"


# (label, summary key, how to write a value that is present)
SUMMARY_FIGURES = [
    ("Total", "total", str),
    ("Up", "ok_count", str),
    ("Down", "fail_count", str),
    ("Flaky", "flaky_count", str),
    ("Average", "avg_response_time_ms", format_ms),
    ("p50", "p50_response_time_ms", format_ms),
    ("p95", "p95_response_time_ms", format_ms),
    ("Slowest", "max_response_time_ms", format_ms),
    ("Run took", "duration_s", lambda seconds: f"{seconds:.1f} s"),
]


def failures_first(results: list[dict]) -> list[dict]:
    """Return the rows with failing endpoints first, each group in configured order."""
    return sorted(results, key=lambda row: bool(row.get("ok")))


def headline(summary: dict) -> str:
    """Say the run's overall state in a few words: all up, or how many down."""
    total = summary.get("total", 0)
    down = summary.get("fail_count", 0)
    if total == 0:
        return "No endpoints checked"
    if total == 1:
        return "The endpoint is down" if down else "The endpoint is up"
    if down == 0:
        return f"All {total} endpoints up"
    if down == total:
        return f"All {total} endpoints down"
    return f"{down} of {total} endpoints down"


def state_word(result: dict) -> str:
    """Return 'up' for a healthy endpoint and 'down' otherwise."""
    return "up" if result.get("ok") else "down"


def reason(result: dict) -> str:
    """Say why an endpoint is down: its error plus any unmet expectations."""
    if result.get("ok"):
        return ""

    error = result.get("error") or ""
    unmet = [
        line for line in result.get("failed_expectations") or [] if line not in error
    ]
    return "; ".join(part for part in [error, *unmet] if part) or "unhealthy"


def details(result: dict) -> str:
    """Say what else a reader may want: retries, certificate expiry, truncation."""
    parts = []
    attempts = result.get("attempts", 1)
    if attempts > 1:
        flaky = " (flaky)" if result.get("flaky") else ""
        parts.append(f"{attempts} attempts{flaky}")

    tls = result.get("tls")
    if tls:
        parts.append(
            f"certificate expires {_date(tls.get('not_after'))} ({_days(tls)})"
        )

    if result.get("body_truncated"):
        parts.append("body cut at the size cap")
    return " · ".join(parts)


def summary_figures(summary: dict) -> list[tuple[str, str]]:
    """Return (label, text) for each figure the summary holds; null is a dash."""
    return [
        (label, EMPTY if summary[key] is None else write(summary[key]))
        for label, key, write in SUMMARY_FIGURES
        if key in summary
    ]


def format_optional_ms(value: float | None) -> str:
    """Write a duration in milliseconds, or a dash when there is none."""
    return EMPTY if value is None else format_ms(value)


def change_groups(changes: dict | None) -> list[tuple[str, list[str]]]:
    """Return (heading, lines) for each non-empty kind of change."""
    if not changes:
        return []

    slower = [
        f"{entry['name']}: {entry['previous_ms']:.1f} ms → {entry['current_ms']:.1f} ms"
        for entry in changes.get("slower", [])
    ]
    groups = [
        ("Went down", list(changes.get("went_down", []))),
        ("Recovered", list(changes.get("recovered", []))),
        ("Slower", slower),
    ]
    return [(heading, lines) for heading, lines in groups if lines]


def change_intro(changes: dict | None) -> str:
    """Say what the changes compare against, or why nothing was compared."""
    if not changes:
        return "No comparison with a previous run."
    if changes.get("note"):
        return f"Not compared: {changes['note']}."
    since = changes.get("previous_generated_at") or "the previous run"
    if not change_groups(changes):
        return f"No changes since {since}."
    return f"Since {since}:"


def change_tags(changes: dict | None) -> dict[str, str]:
    """Map endpoint name to a short tag saying how it changed since last run."""
    if not changes:
        return {}

    tags = {name: "went down" for name in changes.get("went_down", [])}
    tags.update({name: "recovered" for name in changes.get("recovered", [])})
    tags.update({entry["name"]: "slower" for entry in changes.get("slower", [])})
    return tags


def _days(tls: dict) -> str:
    days_left = tls.get("days_left")
    if days_left is None:
        return "days left unknown"
    if days_left < 0:
        return f"expired {-days_left:.0f} days ago"
    return f"{days_left:.0f} days left"


def _date(utc_timestamp: str | None) -> str:
    # The time of day of an expiry only clutters a table; the date is enough.
    return utc_timestamp[:10] if utc_timestamp else "on an unknown date"
