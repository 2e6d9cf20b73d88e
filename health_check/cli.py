"""The command line: options, the terminal summary, exit codes, and error lines."""

from __future__ import annotations

import argparse
import enum
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from health_check import __version__
from health_check.config import ConfigError

PROGRAM = "health-check"


class ExitCode(enum.IntEnum):
    """Documented in the README; scripts and CI depend on these numbers."""

    OK = 0
    UNHEALTHY = 1
    BAD_INPUT = 2
    INTERNAL_ERROR = 3
    INTERRUPTED = 130
    TERMINATED = 143


# What each stopping signal means to the user, and the exit code it maps to.
_STOP_SIGNALS = {
    signal.SIGINT: ("interrupted", ExitCode.INTERRUPTED),
    signal.SIGTERM: ("terminated", ExitCode.TERMINATED),
}


class Stopped(BaseException):
    """A stopping signal arrived.

    A BaseException, like KeyboardInterrupt, so that no `except Exception`
    swallows it; dotflow's task engine has several.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.message, self.code = _STOP_SIGNALS[signum]


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are our one-line, exit-2 errors."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        fail(message, ExitCode.BAD_INPUT)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        prog="main.py",
        usage="%(prog)s [options] [URL ...]",
        description="Check HTTP endpoints in parallel and write a health report.",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="endpoints to check")
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON endpoint file")
    parser.add_argument(
        "--output", default="health_report.json", metavar="PATH", help="JSON report"
    )
    parser.add_argument(
        "--storage", default=".output", metavar="DIR", help="dotflow StorageFile folder"
    )
    parser.add_argument(
        "--keep-runs",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="keep the task files of the last N runs in DIR (default 1)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any endpoint failed"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )

    options = parser.parse_args(argv)
    if options.urls and options.config:
        parser.error("give URLs or --config, not both")
    return options


def exit_code(report: dict[str, Any], strict: bool) -> ExitCode:
    if not report["validation"]["passed"]:
        return ExitCode.UNHEALTHY
    if strict and report["summary"]["fail_count"]:
        return ExitCode.UNHEALTHY
    return ExitCode.OK


def show_summary(report: dict[str, Any], output_path: str) -> None:
    """One row per endpoint, then the totals, on stdout."""
    table = Table(title="Endpoint health", title_justify="left")
    for column in ("", "name", "status", "time (ms)", "tries", "reason"):
        table.add_column(column, overflow="fold")
    for row in report["results"]:
        table.add_row(
            "[green]UP[/]" if row["ok"] else "[red]DOWN[/]",
            row["name"],
            _text(row["status_code"]),
            _text(row["response_time_ms"]),
            str(row["attempts"]),
            row["error"] or "",
        )

    console = Console(highlight=False)
    console.print(table)
    summary = report["summary"]
    console.print(
        f"{summary['ok_count']}/{summary['total']} up, "
        f"{summary['fail_count']} down, {summary['flaky_count']} flaky; "
        f"avg {_text(summary['avg_response_time_ms'])} ms, "
        f"p95 {_text(summary['p95_response_time_ms'])} ms; "
        f"run {summary['duration_s']} s; report: {output_path}",
        markup=False,
    )
    for problem in report["validation"]["problems"]:
        console.print(f"validation: {problem}", markup=False)


def guard(main: Callable[[], int], stop_workers: Callable[[], None]) -> int:
    """Run main; bad input and stopping signals become one line and an exit code.

    On SIGINT or SIGTERM the workers are stopped too; the report is either
    complete or untouched, because every writer renames a finished file.
    """
    _stop_on_signals()
    try:
        return main()
    except ConfigError as error:
        fail(str(error), ExitCode.BAD_INPUT)
    except Stopped as stop:
        _ignore_signals()  # a second Ctrl-C must not cut the clean-up short
        stop_workers()
        fail(stop.message, stop.code)


def fail(message: str, code: ExitCode) -> NoReturn:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    raise SystemExit(int(code))


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of 1 or more, got {text!r}"
        )
    return number


def _stop_on_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)

    # Forked workers inherit these handlers; they must simply die when the
    # parent stops them, not raise Stopped inside dotflow's worker code.
    os.register_at_fork(after_in_child=_default_signals)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def _ignore_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _default_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
