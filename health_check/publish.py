"""Write the report in every format the run asked for."""

from __future__ import annotations

import json
from typing import Any

from health_check.files import write_atomic


def publish(report: dict[str, Any], outputs: dict[str, str | None]) -> dict[str, Any]:
    """Write each requested file atomically and return the report unchanged."""
    write_atomic(
        outputs["json"], json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    )
    return report
