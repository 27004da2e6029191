"""Observing that kernels really ran in parallel, for the 1-vs-2-thread tests."""
from __future__ import annotations

import contextlib

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
