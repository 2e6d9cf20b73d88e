"""Time BoundedParallel on checks of a local endpoint that answers in 200 ms.

    python bench/parallel_bench.py [--tasks 100,1000,5000]
                                   [--max-processes N] [--max-in-flight N]

Each size runs in a fresh process; this one samples that process tree's
proportional set size (PSS, from /proc/<pid>/smaps_rollup) every 50 ms, so
pages the forked workers share with their parent are counted once.
"""

import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from health_check.parallel import (  # noqa: E402
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_PROCESSES,
)

ANSWER_DELAY_S = 0.2
SAMPLE_INTERVAL_S = 0.05


def main() -> None:
    arguments = _parse_arguments()
    server = _start_child("--serve")
    port = int(server.stdout.readline())

    try:
        for task_count in arguments.tasks:
            figures = _measure(task_count, port, arguments)
            print(json.dumps(figures), flush=True)
    finally:
        server.terminate()
        server.wait()


def _measure(task_count: int, port: int, arguments) -> dict:
    run = _start_child(
        "--run",
        str(task_count),
        str(port),
        str(arguments.max_processes),
        str(arguments.max_in_flight),
    )
    peak_pss_kb = _peak_pss_kb(run.pid)
    figures = json.loads(run.stdout.read())
    run.wait()

    figures["peak_pss_mb"] = round(peak_pss_kb / 1024)
    return figures


def _peak_pss_kb(pid: int) -> int:
    root = psutil.Process(pid)
    peak_kb = 0

    while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
        try:
            pids = [pid] + [child.pid for child in root.children(recursive=True)]
        except psutil.Error:
            break

        peak_kb = max(peak_kb, sum(_pss_kb(each) for each in pids))
        time.sleep(SAMPLE_INTERVAL_S)

    return peak_kb


def _pss_kb(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0

    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


# The two children: the slow endpoint and one measured run.


def _serve() -> None:
    class SlowHandler(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(ANSWER_DELAY_S)
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Server(ThreadingHTTPServer):
        # The default backlog of 5 makes bursts of connects wait a second.
        request_queue_size = 1024
        daemon_threads = True

    server = Server(("127.0.0.1", 0), SlowHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def _run(task_count: int, port: int, max_processes: int, max_in_flight: int):
    import requests
    from dotflow import DotFlow, action
    from dotflow.core.types import TypeStatus

    from health_check.parallel import bounded_parallel

    @action
    def check(initial_context):
        response = requests.get(initial_context.storage, timeout=10)
        return {"status_code": response.status_code}

    workflow = DotFlow()
    for index in range(task_count):
        url = f"http://127.0.0.1:{port}/endpoint-{index}"
        workflow.task.add(step=check, initial_context=url)

    started_s = time.perf_counter()
    with bounded_parallel(max_processes, max_in_flight):
        workflow.start(mode="parallel", keep_going=True)
    wall_s = time.perf_counter() - started_s

    completed = [task.status for task in workflow.task.queue].count(
        TypeStatus.COMPLETED
    )
    figures = {
        "tasks": task_count,
        "max_processes": max_processes,
        "max_in_flight": max_in_flight,
        "completed": completed,
        "wall_s": round(wall_s, 2),
        "tasks_per_s": round(task_count / wall_s),
    }
    print(json.dumps(figures), flush=True)


def _start_child(*arguments: str) -> subprocess.Popen:
    # dotflow logs every status change on stderr; the figures go to stdout.
    return subprocess.Popen(
        [sys.executable, __file__, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="100,1000,5000")
    parser.add_argument("--max-processes", type=int, default=DEFAULT_MAX_PROCESSES)
    parser.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT)
    arguments = parser.parse_args()
    arguments.tasks = [int(count) for count in arguments.tasks.split(",")]
    return arguments


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve()
    elif sys.argv[1:2] == ["--run"]:
        _run(*(int(value) for value in sys.argv[2:6]))
    else:
        main()
