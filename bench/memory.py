"""Peak memory of a whole run (parent and every worker), by body size.

Runs main.py against a local server answering 200 with a body of each size,
next to a small and a slow endpoint, and reports two peaks per size:

- the largest sum of PSS over main.py's process tree, sampled. PSS shares
  pages fairly between forked workers, so the sum is what the run costs.
- the largest RSS of any one process in the tree, exact, from wait4().

Neither may grow with the body, because the probe stops reading at its cap.

    python bench/memory.py                 # 1 kB, 1 MB, 100 MB and 1 GB bodies
    python bench/memory.py --sizes-mb 1000 --repeat 5
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import AppServer, RawServer  # noqa: E402

SAMPLE_INTERVAL_S = 0.01
MB = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes-mb", type=float, nargs="+", default=[0.001, 1, 100, 1000]
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per size")
    options = parser.parse_args()

    print(f"# {options.repeat} runs per size; the largest figure of each is shown")
    print(f"{'huge body':>15}  {'tree PSS (MB)':>13}  {'max RSS (MB)':>12}  wall (s)")
    with AppServer() as app:
        for size_mb in options.sizes_mb:
            body_bytes = int(size_mb * MB)
            runs = [measure_run(app, body_bytes) for _ in range(options.repeat)]
            pss_mb, rss_mb, wall_s = (max(column) for column in zip(*runs, strict=True))
            label = f"{body_bytes:,} B"
            print(f"{label:>15}  {pss_mb:>13.1f}  {rss_mb:>12.1f}  {wall_s:>8.2f}")


def measure_run(app: AppServer, body_bytes: int) -> tuple[float, float, float]:
    """One run of main.py: a small, a slow and a `body_bytes` endpoint."""
    with RawServer("huge_body", size_bytes=body_bytes) as huge:
        urls = [app.url("/ok"), app.url("/delay/300"), huge.url("/")]
        with tempfile.TemporaryDirectory() as folder:
            return run_and_sample(urls, Path(folder))


def run_and_sample(urls: list[str], folder: Path) -> tuple[float, float, float]:
    command = [sys.executable, str(ROOT / "main.py"), "--quiet", *urls]
    started = time.monotonic()
    run = subprocess.Popen(command, cwd=folder)
    finished = threading.Event()
    peak = {"pss": 0}
    sampler = threading.Thread(target=sample_tree, args=(run.pid, finished, peak))
    sampler.start()

    # wait4, not wait: its rusage holds the largest RSS of the whole tree,
    # since each worker's peak passes to its parent when it is reaped.
    _, status, usage = os.wait4(run.pid, 0)
    wall_s = time.monotonic() - started
    finished.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"main.py failed: wait status {status}")
    return peak["pss"] / MB, usage.ru_maxrss * 1024 / MB, wall_s


def sample_tree(pid: int, finished: threading.Event, peak: dict[str, int]) -> None:
    """Record the largest summed PSS of the run's process tree until it ends."""
    while not finished.is_set():
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        peak["pss"] = max(peak["pss"], sum(pss_of(process) for process in tree))
        time.sleep(SAMPLE_INTERVAL_S)


def pss_of(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0  # a worker that ended between listing and reading


if __name__ == "__main__":
    main()
