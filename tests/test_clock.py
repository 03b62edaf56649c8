"""The fixed-rate loop hands its thread back as it found it."""

from __future__ import annotations

import os
import threading

from telesurgery.clock import FixedRateLoop


def test_a_loop_gives_its_thread_back_its_scheduling_policy() -> None:
    # Where SCHED_FIFO is permitted (root, as in CI) the loop takes it while it runs; a
    # thread left real-time would start every later process real-time too.
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    stop = threading.Event()
    ticks: list[int] = []

    def body(now: int) -> None:
        ticks.append(now)
        if len(ticks) >= 3:
            stop.set()

    FixedRateLoop(1000.0, realtime=True).run(body, stop)
    assert len(ticks) == 3
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
