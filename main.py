"""health-check: check HTTP endpoints with two dotflow workflows, write a report.

endpoints ──▶ [checks: check_endpoint × N, parallel] ──▶ StorageFile
          ──▶ [report: aggregate → validate → generate, sequential]
          ──▶ health_report.json ──▶ exit code
"""

import sys
import time

from health_check import cli, pipeline, runs
from health_check.config import load_endpoints


def main(argv: list[str] | None = None) -> int:
    options = cli.parse_args(argv)
    endpoints = load_endpoints(options.urls, options.config)
    dotflow_config = pipeline.make_config(options.storage)

    with runs.RunRecord(options.storage) as run:
        started = time.monotonic()
        results = pipeline.run_checks(endpoints, dotflow_config, run.record_workflow)
        duration_s = time.monotonic() - started

        outputs = {"json": options.output}
        report = pipeline.run_report(
            endpoints, results, duration_s, outputs, dotflow_config, run.record_workflow
        )
    runs.prune_runs(options.storage, options.keep_runs)

    if not options.quiet:
        cli.show_summary(report, options.output)
    return cli.exit_code(report, options.strict)


if __name__ == "__main__":
    sys.exit(cli.guard(main, pipeline.stop_workers))
