"""The benchmark's peer: a plain thread-pool requests script, no dotflow.

python bench/peer_threadpool.py URLS_FILE REPORT_PATH [WORKERS]
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def check(url: str) -> dict:
    started = time.perf_counter()
    try:
        response = requests.get(url, timeout=5)
        status, ok = response.status_code, response.status_code < 400
    except requests.RequestException:
        status, ok = None, False
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"url": url, "ok": ok, "status_code": status, "response_time_ms": elapsed_ms}


def main() -> None:
    urls_file, report_path = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    with open(urls_file, encoding="utf-8") as stream:
        urls = json.load(stream)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(check, urls))

    with open(report_path, "w", encoding="utf-8") as stream:
        json.dump({"results": results}, stream)


if __name__ == "__main__":
    main()
