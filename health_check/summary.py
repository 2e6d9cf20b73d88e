"""Pure functions behind the report workflow: summarise, validate, assemble."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from health_check import TOOL_NAME, __version__

SCHEMA_VERSION = "1.0"


def summarize(results: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """Counts, plus response-time statistics over successful checks only."""
    times = sorted(
        row["response_time_ms"]
        for row in results
        if row["ok"] and row["response_time_ms"] is not None
    )
    ok_count = sum(1 for row in results if row["ok"])

    return {
        "total": len(results),
        "ok_count": ok_count,
        "fail_count": len(results) - ok_count,
        "flaky_count": sum(1 for row in results if row.get("flaky")),
        "avg_response_time_ms": round(sum(times) / len(times), 1) if times else None,
        "min_response_time_ms": times[0] if times else None,
        "p50_response_time_ms": _percentile(times, 50),
        "p95_response_time_ms": _percentile(times, 95),
        "max_response_time_ms": times[-1] if times else None,
        "duration_s": round(duration_s, 3),
    }


def validate(endpoint_names: list[str], results: list[dict[str, Any]]) -> list[str]:
    """Problems that make the run invalid; an empty list means it passed."""
    problems = []
    names = [row["name"] for row in results]

    for name in endpoint_names:
        count = names.count(name)
        if count != 1:
            problems.append(f"endpoint {name!r} has {count} results, expected 1")
    for name in sorted(set(names) - set(endpoint_names)):
        problems.append(f"result for unknown endpoint {name!r}")

    if not any(row["ok"] for row in results):
        problems.append("no endpoint succeeded")
    return problems


def build_report(
    summary: dict[str, Any],
    validation: dict[str, Any],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report document, in the shape report_schema.json describes."""
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "tool": {"name": TOOL_NAME, "version": __version__},
        "summary": summary,
        "validation": validation,
        "results": results,
    }


def _percentile(sorted_values: list[float], percent: int) -> float | None:
    """Nearest-rank percentile: always a value that was measured."""
    if not sorted_values:
        return None
    rank = math.ceil(percent / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]
