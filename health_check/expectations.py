"""An endpoint's expectations against one answer: the list of reasons it failed."""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from health_check.config import Endpoint, Expectations
from health_check.probe import Attempt
from health_check.server_text import printable

_MISSING = object()


def failed_expectations(endpoint: Endpoint, seen: Attempt) -> list[str]:
    """Short human reasons, one per expectation that did not hold.

    An attempt that got no HTTP answer fails no expectation: its transport
    error already says what went wrong.
    """
    expect = endpoint.expect
    if seen.status_code is None:
        return []

    reasons = _status_failures(expect, seen.status_code)
    reasons += _time_failures(expect, seen.response_time_ms)
    reasons += _header_failures(expect, seen.headers)
    if expect.body_contains is not None or expect.json_values:
        text = body_text(seen)
        reasons += _body_failures(expect, text, seen.body_truncated)
        reasons += _json_failures(expect, text, seen.body_truncated)
    return reasons


def status_expected(expect: Expectations, status_code: int) -> bool:
    """True when the status falls in one of the expected ranges."""
    ranges = expect.status or []
    return any(low <= status_code <= high for low, high in ranges)


def body_text(seen: Attempt) -> str:
    """The body decoded with its declared charset, else UTF-8; never raises."""
    encoding = seen.encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return seen.body.decode(encoding, errors="replace")


def describe_ranges(ranges: list[tuple[int, int]]) -> str:
    """[(200, 200), (300, 399)] -> "[200, 3xx]": ranges the way a user writes them."""
    return "[" + ", ".join(_describe_range(low, high) for low, high in ranges) + "]"


def _status_failures(expect: Expectations, status_code: int) -> list[str]:
    if expect.status is None or status_expected(expect, status_code):
        return []
    return [f"status {status_code} not in {describe_ranges(expect.status)}"]


def _time_failures(expect: Expectations, response_time_ms: float | None) -> list[str]:
    limit_ms = expect.max_response_time_ms
    if limit_ms is None or response_time_ms is None or response_time_ms <= limit_ms:
        return []
    # Rounded up, so the shown time is never equal to or below the limit.
    return [f"took {math.ceil(response_time_ms)} ms, limit {limit_ms:g} ms"]


def _header_failures(expect: Expectations, headers: dict[str, str]) -> list[str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    reasons = []
    for name, wanted in (expect.headers or {}).items():
        actual = lowered.get(name.lower())
        if actual is None:
            reasons.append(f'header {name} is missing, expected "{wanted}"')
        elif not _header_matches(actual, wanted):
            shown = printable(actual)
            reasons.append(f'header {name} is "{shown}", expected "{wanted}"')
    return reasons


def _header_matches(actual: str, wanted: str) -> bool:
    """Equal, or equal up to parameters: "application/json; charset=utf-8"."""
    actual = actual.strip()
    return actual == wanted or actual.split(";", 1)[0].strip() == wanted


def _body_failures(expect: Expectations, text: str, truncated: bool) -> list[str]:
    wanted = expect.body_contains
    if wanted is None or wanted in text:
        return []
    return [f"body does not contain {json.dumps(wanted)}{_cut_note(truncated)}"]


def _json_failures(expect: Expectations, text: str, truncated: bool) -> list[str]:
    if not expect.json_values:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return [f"body is not valid JSON{_cut_note(truncated)}"]
    except RecursionError:
        # A body of half a million "[" exhausts the parser's stack, not ours.
        return ["body JSON is nested too deeply"]

    reasons = []
    for path, wanted in expect.json_values.items():
        actual = _lookup(document, path)
        if actual is _MISSING:
            reasons.append(f"json {path} is missing, expected {_shown(wanted)}")
        elif not _same_value(actual, wanted):
            reasons.append(
                f"json {path} is {_shown(actual)}, expected {_shown(wanted)}"
            )
    return reasons


def _lookup(document: Any, dotted_path: str) -> Any:
    """Follow a.b.0.c through objects and arrays; _MISSING when a step is absent."""
    current = document
    for step in dotted_path.split("."):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return _MISSING
    return current


def _same_value(actual: Any, wanted: Any) -> bool:
    # Python says True == 1; a health check should not.
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    return actual == wanted


def _shown(value: Any) -> str:
    """A JSON value as the body had it, short and printable."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        return "a value nested too deeply to show"
    return printable(text, 77)


def _describe_range(low: int, high: int) -> str:
    if low == high:
        return str(low)
    if low % 100 == 0 and high == low + 99:
        return f"{low // 100}xx"
    return f"{low}-{high}"


def _cut_note(truncated: bool) -> str:
    return " (body was cut at the size cap)" if truncated else ""
