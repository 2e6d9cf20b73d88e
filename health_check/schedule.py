"""Run the whole pipeline on a cron schedule, and stop cleanly on a signal."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from croniter import CroniterError, croniter
from dotflow.core.types.overlap import TypeOverlap
from dotflow.providers import SchedulerCron

from health_check import cli
from health_check.config import ConfigError


def make_scheduler(cron: str) -> SchedulerCron:
    """dotflow's cron scheduler; a slow run makes the next one skip, not queue."""
    try:
        scheduler = SchedulerCron(cron=cron, overlap=TypeOverlap.SKIP)
        # An expression such as "0 0 30 2 *" parses but never fires;
        # croniter only says so when asked for the next time.
        croniter(cron, datetime.now()).get_next(datetime)
    except (ValueError, CroniterError) as error:
        reason = str(error.__cause__ or error).replace("\n", " ")
        raise ConfigError(
            f"--cron {cron!r} is not a usable cron expression: {reason}"
        ) from None
    return scheduler


def run_on_schedule(
    scheduler: SchedulerCron,
    run: Callable[[int], Any],
    max_runs: int | None = None,
) -> int:
    """Call run(run_number) at every tick until a signal or max_runs; runs done.

    SchedulerCron takes SIGINT and SIGTERM while it runs: the first one stops
    the loop and waits for the run in flight. It then puts back the handlers
    it found, which are ours, so a second signal stops at once.
    """
    runs = _Runs(scheduler, run, max_runs)
    cli.handle_stop_signals(stop_at_once)
    os.register_at_fork(after_in_child=_ignore_stop_signals)

    scheduler.start(workflow=runs)
    # The loop has ended; wait for a run still finishing, then put our
    # handlers back in place for the rest of the exit.
    scheduler.stop()
    return runs.done


def stop_at_once(signum: int, frame: Any) -> None:
    """Leave now: end the check workers and exit 128 + the signal number.

    Reports are written atomically, so a run cut short leaves the previous
    report whole rather than half a new one.
    """
    for worker in multiprocessing.active_children():
        worker.kill()
    name = signal.Signals(signum).name
    print(f"{cli.PROGRAM}: error: stopped at once by {name}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


class _Runs:
    """The callable the scheduler runs at each tick: one whole pipeline run."""

    def __init__(
        self,
        scheduler: SchedulerCron,
        run: Callable[[int], Any],
        max_runs: int | None,
    ) -> None:
        self.scheduler = scheduler
        self.run = run
        self.max_runs = max_runs
        self.done = 0

    def __call__(self) -> None:
        # A tick can still be dispatched while the last allowed run ends.
        if self.max_runs is not None and self.done >= self.max_runs:
            return

        # A failed run is reported and the schedule goes on; SchedulerCron
        # would only have logged it to dotflow's log file.
        try:
            self.run(self.done + 1)
        except Exception as error:
            cli.show_failed_run(self.done + 1, error)
        finally:
            self.done += 1
            if self.max_runs is not None and self.done >= self.max_runs:
                # `running` is SchedulerCron's documented loop flag; stop()
                # itself would try to join this very thread.
                self.scheduler.running = False


def _ignore_stop_signals() -> None:
    """In forked check workers: let the run in flight finish.

    A Ctrl-C reaches the whole process group. Without this, each worker would
    run the scheduler's handler, which joins threads the worker does not own,
    and the checks in flight would fail instead of finishing.
    """
    cli.handle_stop_signals(signal.SIG_IGN)
