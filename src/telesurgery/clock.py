"""The one clock (monotonic, [ns]) and the fixed-rate pacing every loop uses.

Loops are paced by sleeping to absolute deadlines: asyncio timers have a 1 ms
granularity and cannot pace a 1 kHz loop, while ``time.sleep`` to a deadline
with a 1 ns timer slack (and SCHED_FIFO where permitted) keeps the period
jitter to tens of microseconds. A deadline missed by more than a period is
skipped rather than caught up, so a stall never produces a burst.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from telesurgery.errors import ConfigError

log = logging.getLogger(__name__)

now_ns = time.monotonic_ns
"""The monotonic clock [ns] that stamps every message, sample and event."""

CLOCK_STEP_ENV = "TELESURGERY_TEST_CLOCK_STEP"
"""Tests and benches only (``bench faults``): ``SECONDS`` in this variable makes each SIGUSR2
step the process's clock by ``SECONDS`` [s] (see ``install_test_clock_step``)."""


def install_test_clock_step(environ: Mapping[str, str] = os.environ) -> float | None:
    """A fault-injection hook for tests and benches: with ``CLOCK_STEP_ENV`` set to a number
    of seconds, ``now_ns`` becomes the monotonic clock plus an offset that each SIGUSR2 adds
    that step to, as if this node's clock stepped; the step [s], or None without the
    variable, when nothing changes and the clock costs what it always did.

    Modules take ``now_ns`` by name when imported, so the command line calls this before it
    imports any of them. ``ConfigError`` when the value is not a finite number.
    """
    # The hook exists to rebind the one clock every later import takes by name.
    global now_ns  # noqa: PLW0603
    text = environ.get(CLOCK_STEP_ENV)
    if text is None:
        return None
    try:
        step = float(text)
    except ValueError:
        step = math.nan
    if not math.isfinite(step):
        raise ConfigError(f"{CLOCK_STEP_ENV}={text!r}: write a number of seconds, e.g. -1.0, "
                          "or unset it")
    monotonic_ns = time.monotonic_ns
    offset_ns = [0]

    def stepped_ns() -> int:
        return monotonic_ns() + offset_ns[0]

    def on_step(_signum: int, _frame: object) -> None:
        offset_ns[0] += round(step * 1e9)
        log.warning("clock stepped by %+.3f s (test hook %s)", step, CLOCK_STEP_ENV)

    signal.signal(signal.SIGUSR2, on_step)
    now_ns = stepped_ns
    return step

_PR_SET_NAME = 15
_PR_SET_TIMERSLACK = 29
_OS_NAME_BYTES = 15
"""Linux keeps 16 bytes of a thread's name, the terminating NUL included."""
SWITCH_INTERVAL_S = 2e-4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Found once: ``find_library`` runs ``ldconfig`` in a subprocess, milliseconds a call.
    libc_name = ctypes.util.find_library("c")
    return None if libc_name is None else ctypes.CDLL(libc_name, use_errno=True)


def set_timer_slack(slack_ns: int = 1) -> bool:
    """Ask Linux for ``slack_ns`` of timer slack for this thread; False where refused."""
    libc = _libc()
    return libc is not None and int(libc.prctl(_PR_SET_TIMERSLACK, slack_ns, 0, 0, 0)) == 0


def name_os_thread(name: str | None = None) -> bool:
    """Give the calling thread ``name`` (default: its ``threading`` name) as its OS name,
    the one ``/proc/<pid>/task/<tid>/comm`` and ``top -H`` show, cut to 15 bytes; False
    where refused.

    Python 3.11 leaves every thread named after the process, so a benchmark reading
    ``/proc`` could not tell the camera's CPU from the servo loop's. Threads that native
    libraries start from this one afterwards (codec slice threads) inherit the name.
    """
    raw = (name or threading.current_thread().name).encode("utf-8", "replace")
    libc = _libc()
    return libc is not None and int(
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(raw[:_OS_NAME_BYTES]), 0, 0, 0)) == 0


def set_realtime(priority: int = 50) -> bool:
    """Run this process SCHED_FIFO at ``priority``; False where not permitted.

    Children inherit the policy, so a process sets it after spawning its children.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError, AttributeError):
        return False
    return True


def set_realtime_thread(priority: int = 50) -> bool:
    """1 ns timer slack and SCHED_FIFO for the calling thread and the threads it starts
    from now on; False where the scheduler refused (the loop then runs at normal priority)."""
    set_timer_slack(1)
    # Another thread's long pure-Python work yields the GIL after this long, rather than
    # after the default 5 ms; the loops' own ticks are far shorter.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if set_realtime(priority):
        return True
    log.info("SCHED_FIFO not permitted; loops run at normal priority")
    return False


def set_normal_thread() -> None:
    """Put the calling thread (and the threads it starts) back to SCHED_OTHER.

    Only for threads that never run Python code for long: one that holds the GIL
    while another process preempts it stalls the node's real-time loops with it
    (see ``set_bulk_thread``, which is what bulk work in such a node wants). Names the
    OS thread after the ``threading`` one.
    """
    name_os_thread()
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError, AttributeError):
        log.debug("could not return a thread to SCHED_OTHER")


BULK_PRIORITY = 10
"""SCHED_FIFO priority of bulk threads in a real-time node, below its loops' (50)."""


def set_bulk_thread(priority: int = BULK_PRIORITY) -> None:
    """Run the calling thread (and the threads it starts) at real-time ``priority`` below
    the loops, if it is real-time now (inherited from the thread that started it).

    For bulk work in a node whose loops run SCHED_FIFO: rendering, codecs, serving the
    web page. Such a thread must not drop to SCHED_OTHER: when another process preempts
    it while it holds the GIL, every loop waiting for the GIL waits for that process
    too (priority inversion). Measured with a 1 kHz FIFO loop beside a pure-Python
    thread and three CPU hogs on two cores: loop lateness p99 5-19 ms, p99.9 10-411 ms
    with the thread at SCHED_OTHER; p99 0.32 ms, p99.9 0.40-0.63 ms at FIFO 10. The
    loops still preempt it. A thread that is not real-time is left as it is. Names the
    OS thread after the ``threading`` one.
    """
    name_os_thread()
    try:
        if os.sched_getscheduler(0) != os.SCHED_FIFO:
            return
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError, AttributeError):
        log.debug("could not set a bulk thread's priority")


@contextlib.contextmanager
def normal_priority_workers() -> Iterator[None]:
    """Threads started inside this block run SCHED_OTHER; the caller's policy is restored.

    For the worker threads of native libraries (Mesa's rasterisers, codec slice
    threads): heavy C work that never holds the GIL. At real-time priority they
    would spend the real-time bandwidth the loops need (Linux throttles all
    real-time threads of a CPU for the rest of a second once they take 95 % of it,
    a stall of tens of milliseconds) and starve everything else, the browser
    showing the video included.
    """
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError):
        log.debug("could not start workers at normal priority")
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError, OSError):
            os.sched_setscheduler(0, policy, param)


class Rate:
    """Paces a loop at ``rate_hz`` by sleeping to absolute deadlines.

    ``sleep()`` returns the lateness [ns] of the wake-up against its deadline;
    ``missed`` counts the periods skipped after a stall.
    """

    def __init__(self, rate_hz: float) -> None:
        if not rate_hz > 0.0:
            raise ValueError(f"rate must be positive, got {rate_hz} Hz")
        self.period_ns = round(1e9 / rate_hz)
        self._deadline = now_ns() + self.period_ns
        self.missed = 0

    @property
    def deadline_ns(self) -> int:
        """The next deadline [ns]."""
        return self._deadline

    def sleep(self) -> int:
        """Sleep until the next deadline; returns how late the wake-up was [ns]."""
        remaining = self._deadline - now_ns()
        if remaining > 0:
            time.sleep(remaining * 1e-9)
        woke = now_ns()
        late = woke - self._deadline
        self._deadline += self.period_ns
        if woke >= self._deadline:
            skipped = (woke - self._deadline) // self.period_ns + 1
            self.missed += skipped
            self._deadline += skipped * self.period_ns
        return late


LATE_TICK_NS: Final = 5_000_000
"""A tick whose period ran this much [ns] over the nominal is a deadline miss worth naming
(``LateTicks``): beyond the 3-4 ms stalls a virtual machine has anyway."""
LATE_TICKS_KEPT: Final = 10_000
"""How many late ticks keep their time (the count goes on): a bound on a loop's memory."""


class LateTicks:
    """The ticks of a loop that came more than ``LATE_TICK_NS`` after their period: how
    many, and when (monotonic [ns], the clock every process on the machine shares), so
    that a benchmark can set them beside the machine's own stalls."""

    def __init__(self) -> None:
        self.count = 0
        self.at_ns: list[int] = []
        """When each late tick started [ns], the first ``LATE_TICKS_KEPT``."""
        self.error_ns: list[int] = []
        """How far each one's period ran over the nominal [ns]."""

    def add(self, at_ns: int, error_ns: int) -> None:
        """Count a tick at ``at_ns`` [ns] whose period ran ``error_ns`` [ns] over."""
        self.count += 1
        if len(self.at_ns) < LATE_TICKS_KEPT:
            self.at_ns.append(at_ns)
            self.error_ns.append(error_ns)

    def report(self) -> dict[str, Any]:
        """The threshold [ms], the count, and each kept tick's start [ns] and excess [ms]."""
        return {"over_ms": LATE_TICK_NS * 1e-6, "count": self.count, "at_ns": self.at_ns,
                "error_ms": [round(e * 1e-6, 3) for e in self.error_ns]}


class FixedRateLoop:
    """Calls ``body(now_ns)`` at ``rate_hz`` until stopped; measures itself.

    ``realtime``: ask for 1 ns timer slack and SCHED_FIFO for the calling thread.
    ``name``: the OS name the calling thread takes while it runs the loop (``top -H``
    and ``bench system`` tell the loop from the process's other threads by it).
    After ``run``: ``period_error_ns`` (actual period minus nominal, every tick),
    ``late`` (the ticks over ``LATE_TICK_NS``), ``elapsed_s`` [s] and ``cpu_cores``
    (process CPU time over wall time).
    """

    def __init__(self, rate_hz: float, *, realtime: bool = True, name: str | None = None
                 ) -> None:
        from telesurgery.stats import Samples

        self.rate_hz = rate_hz
        self.name = name
        self.realtime = realtime
        self.period_error_ns = Samples()
        self.late = LateTicks()
        self.started_ns = 0
        self.elapsed_s = 0.0
        self.cpu_cores = 0.0

    def run(self, body: Callable[[int], None], stop: threading.Event,
            duration_s: float | None = None) -> None:
        """Run until ``stop`` is set or ``duration_s`` [s] has passed. The calling thread
        gets its scheduling policy back afterwards: a thread that ran a loop and goes on
        (a test's, a tool's) must not start every later process real-time."""
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        try:
            self._run(body, stop, duration_s)
        finally:
            with contextlib.suppress(PermissionError, OSError):
                os.sched_setscheduler(0, policy, param)

    def _run(self, body: Callable[[int], None], stop: threading.Event,
             duration_s: float | None) -> None:
        if self.realtime:
            set_realtime_thread()
        if self.name is not None:
            name_os_thread(self.name)
        # What the node made while starting (models, sessions, codecs: ~84,000 objects in
        # the patient node) leaves the cyclic GC's view. A full collection over it held the
        # GIL for ~30 ms, and other threads' allocations (the camera's, per frame) set one
        # off now and then: servo stalls of 40-90 ms with video, 8 ms at most after this.
        gc.freeze()
        rate = Rate(self.rate_hz)
        self.started_ns = now_ns()
        end = None if duration_s is None else self.started_ns + int(duration_s * 1e9)
        cpu0 = time.process_time()
        last = 0
        while not stop.is_set():
            start = now_ns()
            if end is not None and start >= end:
                break
            if last:
                error = start - last - rate.period_ns
                self.period_error_ns.add(error)
                if error > LATE_TICK_NS:
                    self.late.add(start, error)
            last = start
            body(start)
            rate.sleep()
        self.elapsed_s = (now_ns() - self.started_ns) * 1e-9
        if self.elapsed_s > 0:
            self.cpu_cores = (time.process_time() - cpu0) / self.elapsed_s
