"""The command line: options, the terminal summary, exit codes, and error lines."""

from __future__ import annotations

import argparse
import enum
import os
import re
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from health_check import __version__, parallel, pipeline
from health_check.alerts import Delivery, mask_webhook_url
from health_check.config import ConfigError

PROGRAM = "health-check"
WEBHOOK_ENV = "HEALTH_CHECK_WEBHOOK_URL"

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
        "--output",
        type=_report_path,
        default="health_report.json",
        metavar="PATH",
        help="the JSON report (default %(default)s)",
    )
    parser.add_argument(
        "--markdown", type=_report_path, metavar="PATH", help="also write Markdown"
    )
    parser.add_argument(
        "--prometheus",
        type=_report_path,
        metavar="PATH",
        help="also write Prometheus text format",
    )
    parser.add_argument(
        "--html", type=_report_path, metavar="PATH", help="also write an HTML page"
    )
    parser.add_argument(
        "--previous",
        metavar="PATH",
        help="report to compare with (default: the --output file before this run)",
    )
    parser.add_argument(
        "--storage", default=".output", metavar="DIR", help="dotflow StorageFile folder"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=parallel.DEFAULT_MAX_IN_FLIGHT,
        metavar="N",
        help="checks in flight at once (default %(default)s)",
    )
    parser.add_argument(
        "--keep-runs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="keep the task files of the last N runs in DIR (default 1)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any endpoint failed"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--version", action="version", version=f"{PROGRAM} {__version__}"
    )
    _add_unattended_options(parser)

    options = parser.parse_args(argv)
    if options.urls and options.config:
        parser.error("give URLs or --config, not both")
    if options.realert_s is not None and not options.webhook:
        parser.error(f"--realert needs --webhook or {WEBHOOK_ENV}")
    problem = _path_problem(options)
    if problem:
        fail(problem, ExitCode.BAD_INPUT)
    return options


def exit_code(report: dict[str, Any], strict: bool) -> ExitCode:
    if not report["validation"]["passed"]:
        return ExitCode.UNHEALTHY
    if strict and report["summary"]["fail_count"]:
        return ExitCode.UNHEALTHY
    return ExitCode.OK


def report_outputs(options: argparse.Namespace) -> dict[str, str | None]:
    """Where each report format goes; None means not written."""
    return {
        "json": options.output,
        "markdown": options.markdown,
        "prometheus": options.prometheus,
        "html": options.html,
        "previous": options.previous,
    }


def show_summary(report: dict[str, Any], output_path: str) -> None:
    """Changes first, then one row per endpoint, then the totals, on stdout."""
    # Imported here: rich costs some 60 ms of start-up that --quiet runs,
    # and every scheduled run's one-line summary, never need.
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    for line in _change_lines(report.get("changes")):
        console.print(line, markup=False)

    table = Table(title="Endpoint health", title_justify="left")
    for column in ("", "name", "status", "time (ms)", "tries", "reason"):
        table.add_column(column, overflow="fold")
    for row in report["results"]:
        # Names and reasons come from configs and servers: a "[/]" in them
        # would be read as rich markup, and a stray one raises.
        table.add_row(
            "[green]UP[/]" if row["ok"] else "[red]DOWN[/]",
            escape(row["name"]),
            _text(row["status_code"]),
            _text(row["response_time_ms"]),
            str(row["attempts"]),
            escape(row["error"] or ""),
        )

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


def show_run_line(report: dict[str, Any], run_number: int, output_path: str) -> None:
    """One line per scheduled run, so that a log shows the history at a glance."""
    summary = report["summary"]
    changes = report.get("changes") or {}
    parts = [
        f"{report['generated_at']} run {run_number}:",
        f"{summary['ok_count']}/{summary['total']} up,",
        f"{summary['fail_count']} down;",
        f"p95 {_text(summary['p95_response_time_ms'])} ms;",
        f"{summary['duration_s']} s;",
    ]
    for label in ("went_down", "recovered"):
        if changes.get(label):
            parts.append(f"{label.replace('_', ' ')}: {', '.join(changes[label])};")
    if not report["validation"]["passed"]:
        parts.append(f"invalid: {'; '.join(report['validation']['problems'])};")
    parts.append(f"report: {output_path}")
    print(" ".join(parts), flush=True)


def show_schedule_stopped(runs_done: int) -> None:
    plural = "run" if runs_done == 1 else "runs"
    print(f"schedule stopped after {runs_done} {plural}", flush=True)


def show_failed_run(run_number: int, error: Exception) -> None:
    print(f"{PROGRAM}: error: run {run_number} failed: {error}", file=sys.stderr)


def show_delivery(delivery: Delivery, quiet: bool) -> None:
    """One line per alert sent; one warning line when the receiver failed."""
    if not quiet:
        for item in delivery.sent:
            print(
                f"alert {item.alert.event} for {item.alert.row['name']!r} sent to "
                f"{delivery.receiver} (HTTP {item.status_code}, "
                f"{_attempts(item.attempts)})",
                flush=True,
            )
    if delivery.failed:
        first, waiting = delivery.failed[0], len(delivery.failed) - 1
        later = f"; {waiting} more alert(s) wait for the next run" if waiting else ""
        print(
            f"{PROGRAM}: warning: alert {first.event} for {first.row['name']!r} "
            f"not sent to {delivery.receiver}: {delivery.reason} "
            f"({_attempts(delivery.attempts)}){later}",
            file=sys.stderr,
            flush=True,
        )


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
    except pipeline.ReportStepFailed as error:
        # The plain JSON report is written, but the run is not what was
        # asked for: never silent, even with --quiet.
        fail(str(error), ExitCode.INTERNAL_ERROR)
    except Stopped as stop:
        handle_stop_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut it short
        stop_workers()
        fail(stop.message, stop.code)
    except OSError as error:
        # Typically a report path we may not write; the checks already ran.
        where = f" {error.filename}" if error.filename else ""
        fail(f"cannot write{where}: {error.strerror or error}", ExitCode.INTERNAL_ERROR)


def fail(message: str, code: ExitCode) -> NoReturn:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    raise SystemExit(int(code))


def _change_lines(changes: dict[str, Any] | None) -> list[str]:
    if not changes:
        return []
    if changes.get("note"):
        return [f"changes: {changes['note']}"]
    lines = [f"went down: {name}" for name in changes["went_down"]]
    lines += [f"recovered: {name}" for name in changes["recovered"]]
    lines += [
        f"slower: {item['name']} ({item['previous_ms']} ms -> {item['current_ms']} ms)"
        for item in changes["slower"]
    ]
    return lines or ["changes: none since the previous report"]


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 up, got {text!r}"
        )
    return int(text)


def _path_problem(options: argparse.Namespace) -> str | None:
    """A mistake in the output paths, found before anything is checked.

    Each of these used to surface only after every check had run, or worse:
    an output named like --config overwrote the config file.
    """
    outputs = {
        f"--{option}": getattr(options, option)
        for option in ("output", "markdown", "prometheus", "html")
        if getattr(options, option) is not None
    }
    # realpath, unlike Path.resolve, never raises on a symlink loop.
    storage = Path(os.path.realpath(options.storage))
    problem = _kind_problem(Path(options.storage), stat.S_ISDIR, "not a folder")
    if problem:
        return f"--storage {options.storage}: {problem}"

    seen: dict[Path, str] = {}
    for option, text in outputs.items():
        path = Path(os.path.realpath(text))
        problem = _output_problem(text)
        if problem:
            return f"{option} {text}: {problem}"
        if path in seen:
            return f"{seen[path]} and {option} are the same file: {text}"
        if options.config and path == Path(os.path.realpath(options.config)):
            return f"{option} {text} would overwrite the --config file"
        if path == storage:
            return f"{option} {text} is also the --storage folder"
        if storage in path.parents:
            return f"{option} {text} is inside --storage {options.storage}"
        seen[path] = option
    return None


def _output_problem(text: str) -> str | None:
    """Why a report cannot be written at `text`, as far as can be told now."""
    path = Path(text)
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is not a folder"
            break
    # See files.refuse_non_regular: never a device, FIFO or socket.
    return _kind_problem(path, stat.S_ISREG, "not a regular file")


def _kind_problem(
    path: Path, is_kind: Callable[[int], bool], wrong_kind: str
) -> str | None:
    """`wrong_kind` when `path` exists as something else; None when it is
    of that kind or absent; the reason when it cannot even be looked at
    (a symlink loop, a name too long), since it cannot be written either.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return error.strerror or str(error)
    return None if is_kind(mode) else wrong_kind


def _report_path(text: str) -> str:
    """Refuse a folder up front, rather than after every check has run."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file name")
    return text


def handle_stop_signals(handler: Any) -> None:
    """Give SIGINT and SIGTERM one handler (a function, SIG_IGN or SIG_DFL)."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, handler)


def _stop_on_signals() -> None:
    handle_stop_signals(_raise_stopped)

    # Forked workers inherit these handlers; they must simply die when the
    # parent stops them, not raise Stopped inside dotflow's worker code.
    os.register_at_fork(after_in_child=lambda: handle_stop_signals(signal.SIG_DFL))


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _add_unattended_options(parser: argparse.ArgumentParser) -> None:
    """Options for running on a schedule and alerting on change."""
    parser.add_argument(
        "--cron",
        metavar="EXPR",
        help="run on this cron schedule until stopped (6th field: seconds)",
    )
    # Undocumented: ends a scheduled run after N runs, for tests.
    parser.add_argument("--max-runs", type=_positive_int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--webhook",
        metavar="URL",
        type=_webhook_url,
        default=os.environ.get(WEBHOOK_ENV) or None,
        help=f"POST an alert here when an endpoint goes down or recovers "
        f"(default: ${WEBHOOK_ENV})",
    )
    parser.add_argument(
        "--realert",
        metavar="DURATION",
        dest="realert_s",
        type=_duration_s,
        help="remind at most this often while an endpoint stays down (e.g. 30m)",
    )


def _webhook_url(text: str) -> str:
    # The URL is a secret: no message here may quote it, and argparse quotes
    # the whole value when a type function raises anything but this error.
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number up to 65535
        shown = mask_webhook_url(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the webhook URL (--webhook or ${WEBHOOK_ENV}) is malformed"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"webhook {shown} is not an http(s) URL with a host"
        )
    return text


def _duration_s(text: str) -> float:
    """'90s', '30m', '1h30m', '1d' → seconds."""
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    total_s = sum(int(count) * _SECONDS_PER_UNIT[unit] for count, unit in parts)
    if "".join(f"{count}{unit}" for count, unit in parts) != cleaned or not total_s:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90s, 30m, 1h30m or 1d"
        )
    return float(total_s)
