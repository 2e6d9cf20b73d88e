"""A dotflow parallel run in a process of its own, for tests that hang or signal it.

Usage: parallel_child.py stock|bounded TASKS MARKER_DIR STEP_S [terminate-on-sigterm]

Every step drops a file named "<pid>-<index>" in MARKER_DIR when it starts,
sleeps STEP_S and returns a 2 KB dict.  When the run ends, one JSON line on
stdout gives each task's status and last error message.
"""

import json
import os
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from dotflow import DotFlow, action

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from health_check.parallel import bounded_parallel, terminate_live_workers  # noqa: E402

PADDING = "x" * 2000


@action
def padded_step(initial_context):
    index, marker_dir, step_s = initial_context.storage
    Path(marker_dir, f"{os.getpid()}-{index}").touch()
    time.sleep(step_s)
    return {"index": index, "padding": PADDING}


def main(flavour: str, task_count: str, marker_dir: str, step_s: str, *rest):
    if "terminate-on-sigterm" in rest:
        signal.signal(signal.SIGTERM, lambda *_: terminate_live_workers())

    workflow = DotFlow()
    for index in range(int(task_count)):
        workflow.task.add(
            step=padded_step, initial_context=(index, marker_dir, float(step_s))
        )

    flavour_context = bounded_parallel(2, 4) if flavour == "bounded" else nullcontext()
    with flavour_context:
        workflow.start(mode="parallel", keep_going=True)

    outcome = [
        [task.status, task.errors[-1].message if task.errors else None]
        for task in workflow.task.queue
    ]
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(*sys.argv[1:])
