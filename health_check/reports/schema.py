"""Check a report against report_schema.json: a test-time tool, unused at run time."""

import functools
import json
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "report_schema.json"

# A message from jsonschema can quote a whole results list; keep ours to a line.
MESSAGE_LIMIT_CHARS = 200


class ReportSchemaError(ValueError):
    """The report does not have the shape report_schema.json describes."""


def validate_report(report: dict) -> None:
    """Raise ReportSchemaError naming the first misplaced field, if any."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(report), key=_error_order)
    if not errors:
        return

    first = errors[0]
    others = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    raise ReportSchemaError(
        f"report does not match the schema at {_where(first)}: "
        f"{_one_line(first.message)}{others}"
    )


@functools.cache
def load_schema() -> dict:
    """Return the parsed report schema, read once per process."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _error_order(error: jsonschema.ValidationError) -> list[str]:
    return [str(part) for part in error.absolute_path]


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(part) for part in error.absolute_path]
    return "/".join(parts) if parts else "the top level"


def _one_line(message: str) -> str:
    flat = " ".join(message.split())
    if len(flat) <= MESSAGE_LIMIT_CHARS:
        return flat
    return flat[: MESSAGE_LIMIT_CHARS - 1] + "…"
