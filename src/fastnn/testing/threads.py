"""Observing that kernels really ran in parallel (the 1-vs-2-thread tests) and that they release the GIL."""
from __future__ import annotations

import contextlib
import sys
import threading
import time

from fastnn import backend


class ParallelRegions:
    """What ``count_parallel_regions`` saw: ``.count`` regions that ran on more than one thread."""

    count = 0


@contextlib.contextmanager
def count_parallel_regions():
    """Switches the oversubscription guard off (every region may start its team, so a 2-thread run is really
    parallel even on a busy machine) and counts the regions that ran on several threads inside the block.

    >>> with count_parallel_regions() as seen:
    ...     run_the_kernels()
    >>> assert seen.count >= 1
    """
    seen = ParallelRegions()
    previous = backend._C.oversubscription_guard()
    backend._C.set_oversubscription_guard("off")
    before = backend.build_info()["parallel_regions"]
    try:
        yield seen
    finally:
        seen.count = backend.build_info()["parallel_regions"] - before
        backend._C.set_oversubscription_guard(previous)


def progress_during(call) -> int:
    """Runs ``call`` on a worker thread; returns how many loop iterations this thread made while the call was inside.

    The switch interval is raised to 100 s for the measurement, so the interpreter never takes the GIL from a thread
    by force: this thread can run while the worker is inside ``call`` only if ``call`` released the GIL itself. The
    counting loop yields the GIL at every iteration (time.sleep(0)) so the worker can take it back when it returns.
    """
    state = {"inside": False, "progress": 0}
    entering = threading.Event()

    def worker():
        state["inside"] = True
        entering.set()
        call()
        state["inside"] = False

    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        t = threading.Thread(target=worker)
        t.start()
        entering.wait()
        while t.is_alive():
            if state["inside"]:
                state["progress"] += 1
            time.sleep(0)
        t.join()
    finally:
        sys.setswitchinterval(previous)
    return state["progress"]
