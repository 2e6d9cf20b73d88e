"""The report as JSON for tools."""

import json


def render_json(report: dict) -> str:
    """Return the report as indented UTF-8 JSON text ending in a newline."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
