"""Benchmark: wall time and peak memory of main.py against its peer and the ideal.

    python bench/run.py [--sizes 6,100,1000,5000] [--repeats 3]

A local server answers every path after 200 ms. For each size the script runs
`main.py`, then the thread-pool peer, and prints medians. Peak memory is the
largest sum of PSS (proportional set size: shared pages split between the
processes sharing them) over the process and all its children, sampled every
20 ms. The ideal is the server's latency plus the interpreter's start-up with
dotflow and requests imported.
"""

import argparse
import contextlib
import json
import multiprocessing
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DELAY_S = 0.2
SAMPLE_S = 0.02


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        time.sleep(DELAY_S)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096


def serve(port_queue: multiprocessing.Queue) -> None:
    """Run in its own process, so the server never competes for our GIL."""
    server = _Server(("127.0.0.1", 0), _SlowHandler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak PSS in MiB of a command and all its children."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_bytes = 0
    while process.poll() is None:
        peak_bytes = max(peak_bytes, _tree_pss(process))
        time.sleep(SAMPLE_S)
    wall_s = time.perf_counter() - started

    if process.returncode not in (0, 1):
        raise SystemExit(f"{command[1]} failed: {process.stderr.read().decode()}")
    return wall_s, peak_bytes / 2**20


def _tree_pss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        # A worker may exit between listing and reading; skip it.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_full_info().pss
    return total


def startup_s(repeats: int) -> float:
    """Median start-up; at least 7 samples, since one slow start skews it."""
    command = [sys.executable, "-c", "import dotflow, requests"]
    return statistics.median(measure(command)[0] for _ in range(max(repeats, 7)))


def bench_size(port: int, size: int, repeats: int, workdir: Path) -> dict:
    urls = [f"http://127.0.0.1:{port}/endpoint/{index}" for index in range(size)]
    urls_file = workdir / f"urls-{size}.json"
    urls_file.write_text(json.dumps(urls))

    ours = [
        measure(
            [
                sys.executable,
                str(ROOT / "main.py"),
                "--config",
                str(urls_file),
                "--quiet",
                "--output",
                str(workdir / "report.json"),
                "--storage",
                str(workdir / "storage"),
            ]
        )
        for _ in range(repeats)
    ]
    peer = [
        measure(
            [
                sys.executable,
                str(ROOT / "bench" / "peer_threadpool.py"),
                str(urls_file),
                str(workdir / "peer.json"),
            ]
        )
        for _ in range(repeats)
    ]
    return {
        "size": size,
        "ours_s": statistics.median(wall for wall, _ in ours),
        "ours_mib": statistics.median(mib for _, mib in ours),
        "peer_s": statistics.median(wall for wall, _ in peer),
        "peer_mib": statistics.median(mib for _, mib in peer),
    }


def print_table(rows: list[dict], ideal_s: float) -> None:
    print(
        f"{date.today()} · {platform.machine()} · {psutil.cpu_count()} cores · "
        f"Python {platform.python_version()} · ideal {ideal_s:.2f} s "
        f"(200 ms + start-up)"
    )
    print()
    print(
        "| endpoints | ours (s) | ideal (s) | ours/ideal | peer (s) | ours/peer "
        "| ours peak (MiB) | peer peak (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['ours_s']:.2f} | {ideal_s:.2f} "
            f"| {row['ours_s'] / ideal_s:.2f} | {row['peer_s']:.2f} "
            f"| {row['ours_s'] / row['peer_s']:.2f} | {row['ours_mib']:.0f} "
            f"| {row['peer_mib']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,100,1000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()

    port_queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(port_queue,), daemon=True)
    server.start()
    port = port_queue.get(timeout=10)

    try:
        ideal_s = DELAY_S + startup_s(options.repeats)
        with tempfile.TemporaryDirectory() as workdir:
            rows = [
                bench_size(port, int(size), options.repeats, Path(workdir))
                for size in options.sizes.split(",")
            ]
    finally:
        server.terminate()
    print_table(rows, ideal_s)


if __name__ == "__main__":
    main()
