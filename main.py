"""health-check: check HTTP endpoints with two dotflow workflows, write a report.

endpoints ──▶ [checks: check_endpoint × N, parallel] ──▶ StorageFile
          ──▶ [report: aggregate → validate → generate, sequential]
          ──▶ health_report.json (+ Markdown, Prometheus, HTML)
          ──▶ alerts on change ──▶ exit code

With --cron, dotflow's SchedulerCron repeats that whole line at every tick.
"""

import functools
import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from dotflow import Config

from health_check import alerts, cli, pipeline, runs, schedule
from health_check.config import Endpoint, load_endpoints


def main(argv: list[str] | None = None) -> int:
    options = cli.parse_args(argv)
    scheduler = None if options.cron is None else schedule.make_scheduler(options.cron)
    endpoints = load_endpoints(options.urls, options.config)
    dotflow_config = pipeline.make_config(options.storage)
    run = functools.partial(run_once, options, endpoints, dotflow_config)

    if scheduler is not None:
        runs_done = schedule.run_on_schedule(scheduler, run, options.max_runs)
        if not options.quiet:
            cli.show_schedule_stopped(runs_done)
        return cli.ExitCode.OK

    report = run()
    if not options.quiet:
        cli.show_summary(report, options.output)
    return cli.exit_code(report, options.strict)


def run_once(
    options: Namespace,
    endpoints: list[Endpoint],
    dotflow_config: Config,
    run_number: int | None = None,
) -> dict[str, Any]:
    """One pass of the diagram: checks, report, alerts. Returns the report."""
    pipeline.rotate_log(options.storage)
    with runs.RunRecord(options.storage) as record:
        started = time.monotonic()
        results = pipeline.run_checks(
            endpoints, dotflow_config, options.concurrency, record.record_workflow
        )
        duration_s = time.monotonic() - started

        outputs = cli.report_outputs(options)
        report = pipeline.run_report(
            endpoints,
            results,
            duration_s,
            outputs,
            dotflow_config,
            record.record_workflow,
        )
    runs.prune_runs(options.storage, options.keep_runs)

    if run_number is not None and not options.quiet:
        cli.show_run_line(report, run_number, options.output)

    if options.webhook:
        # Kept out of the dotflow workflows on purpose: their contexts are
        # stored on disk, and the webhook URL is a secret.
        state_path = Path(options.storage, alerts.STATE_FILE_NAME)
        delivery = alerts.alert_on_changes(
            report["results"], options.webhook, state_path, options.realert_s
        )
        cli.show_delivery(delivery, options.quiet)
    return report


if __name__ == "__main__":
    sys.exit(cli.guard(main, pipeline.stop_workers))
