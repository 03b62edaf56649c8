"""``bench system``: the flagship session exactly as a user sees it, measured in one JSON.

The demo's processes (router, patient, console and, with a link profile, one link
emulator per path; ``demo.run``) with video on, the console page open in a headless
Chromium (``bench.page``), optionally beside ``hog`` processes that spin on the CPU.
The measured window opens once the page paints and lasts ``duration_s``; the demo
stops when it closes. CPU [cores] is read from ``/proc`` over that window for every
process in the tree (``bench.cpu``), classified by role:

- ``router``, ``patient``, ``console``, ``emulators``: the ``telesurgery`` verb in the
  command line (``router``, ``patient``, ``console``, ``link``), children included;
- ``camera``: a ``camera`` verb or a child of the patient named camera; without one,
  the patient's camera threads (OS names starting ``patient-video``, ``camera`` or
  ``llvmpipe``), taken out of ``patient`` (``camera_in`` says which);
- ``browser``: Chromium and its children; ``ours``: the five above, the browser beside;
- ``harness``: this process (the demo's monitor, Playwright's client) and Playwright's
  driver; ``hog``: the busy processes. Neither is in ``ours``.

Control, safety, link and the latency figures are the nodes' own over their whole run
(the summary of ``demo.run``); ``safety.holds_in_window`` is the holds within the window.
A figure that could not be measured is None beside a ``reason``, never filled in.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from telesurgery.bench import cpu
from telesurgery.bench.machine import machine_info
from telesurgery.bench.page import HeadlessPage, find_chromium, open_console_page
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import SURGEON_SITE, site_cpus
from telesurgery.demo.run import DemoOptions, run_demo
from telesurgery.errors import TelesurgeryError
from telesurgery.link.profiles import load_profile

Progress = Callable[[str], None]

PAINT_WAIT_S: Final = 120.0
"""How long [s] after the nodes came up the page may take to open and paint its first
frame (a loaded machine decodes slowly); after it the window opens anyway and the page's
figures say why they are missing."""
PROGRESS_EVERY_S: Final = 10.0
OURS: Final = ("router", "patient", "camera", "console", "emulators")
"""Our processes' roles, in data-path order: ``cpu_cores.ours`` is their sum."""
_VERB_ROLES: Final = {"router": "router", "patient": "patient", "camera": "camera",
                      "console": "console", "link": "emulators"}
CAMERA_THREADS: Final = ("patient-video", "camera", "llvmpipe")
"""OS thread-name prefixes of the endoscope inside the patient process: its own thread
(and the encoder's slice threads, which inherit its name) and Mesa's render workers."""
MIN_LISTED_CORES: Final = 0.001
"""Processes busy less than this [cores] are left out of the list (Chromium's idle helpers),
unless they are ours."""
PAINTED_LAST_S_JS: Final = "Number(document.getElementById('hud-fps')?.textContent) || 0"
"""The page's own count of frames it painted in the last second (its HUD)."""


@dataclass(frozen=True, slots=True)
class SystemOptions:
    """What ``bench system`` was asked for."""

    link: str | None = "rome-beijing"
    """Link profile (name or .toml file) between console and patient; None: direct."""
    duration_s: float = 60.0
    """The measured window [s], from the page's first paint."""
    hog: int = 0
    """Busy processes beside the system, started before it and stopped after it."""
    chromium: Path | None = None
    log_level: str = "warning"
    pin_sites: bool = False
    """Each site on its own half of the CPUs (``DemoOptions.pin_sites``), the browser with
    the surgeon's console."""
    task: str = "peg_transfer"
    """The training task the autopilot performs (``DemoOptions.task``)."""


class Hogs:
    """``count`` processes spinning on the CPU at normal priority, for the context's life."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> set[int]:
        """Their process ids."""
        return {p.pid for p in self._procs}

    def __enter__(self) -> Self:
        # A bare interpreter spinning: no imports, nothing shared with the system.
        self._procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                       for _ in range(self.count)]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.wait()


class Window:
    """Drives the run from the demo's ticks: opens the page, opens the measured window at
    its first paint, closes it ``duration_s`` [s] later and stops the demo (``stop``)."""

    def __init__(self, duration_s: float, page: HeadlessPage, stop: threading.Event,
                 progress: Progress) -> None:
        self.duration_s = duration_s
        self._page = page
        self._stop = stop
        self._progress = progress
        self._waiting_since: float | None = None
        self._opened = False
        self._began_at = 0.0
        self.first: cpu.Snapshot | None = None
        self.last: cpu.Snapshot | None = None
        self.page_reason: str | None = None
        """Why the window opened without the page painting (None: it painted)."""
        self.holds: dict[str, int | None] = {"first": None, "last": None}
        """The patient's holds at the window's opening and closing."""
        self.load_after: float | None = None
        self._next_progress = 0.0

    def tick(self, monitor: Monitor, _elapsed_s: float) -> None:
        """``run_demo``'s callback, four times a second."""
        now = time.monotonic()
        if self.first is None:
            self._await_paint(monitor, now)
        elif self.last is None:
            measured = now - self._began_at
            if measured >= self.duration_s:
                self._end(monitor)
            elif now >= self._next_progress:
                self._progress(f"{measured:.0f}/{self.duration_s:.0f} s measured, load "
                               f"average {os.getloadavg()[0]:.2f}")
                self._next_progress = now + PROGRESS_EVERY_S

    def _await_paint(self, monitor: Monitor, now: float) -> None:
        """Open the page once the console printed its address; begin at its first paint,
        or without it after ``PAINT_WAIT_S``."""
        if self._waiting_since is None:
            self._waiting_since = now
        if not self._opened and open_console_page(self._page, monitor):
            self._opened = True
            self._progress("console page opened; waiting for its first paint")
        if self._opened and self._painting():
            self._begin(monitor, now)
        elif now - self._waiting_since > PAINT_WAIT_S:
            what = "the page painted nothing" if self._opened else "the console printed no page"
            self.page_reason = f"{what} within {PAINT_WAIT_S:.0f} s"
            self._begin(monitor, now)

    def _painting(self) -> bool:
        try:
            return bool(self._page.evaluate(PAINTED_LAST_S_JS))
        except TelesurgeryError:
            return False

    def _begin(self, monitor: Monitor, now: float) -> None:
        self.first = cpu.snapshot(os.getpid())
        self.holds["first"] = _holds(monitor)
        # The window is the snapshots' span: count from the first's instant, not the tick's.
        self._began_at = self.first.at_ns * 1e-9
        self._next_progress = now + PROGRESS_EVERY_S
        self._progress(f"page painting; measuring {self.duration_s:g} s")

    def _end(self, monitor: Monitor) -> None:
        self.last = cpu.snapshot(os.getpid())
        self.holds["last"] = _holds(monitor)
        self.load_after = os.getloadavg()[0]
        self._progress("window closed; stopping the demo")
        self._stop.set()


def _holds(monitor: Monitor) -> int | None:
    """The patient's watchdog holds so far, from its latest status (None before one)."""
    holds = monitor.status.get("patient", {}).get("safety", {}).get("holds")
    return int(holds) if isinstance(holds, int | float) else None


def _launch(browser: HeadlessPage, stack: contextlib.ExitStack, pin_sites: bool
            ) -> HeadlessPage:
    """Start ``browser`` (closed with ``stack``); pinned, on the surgeon's CPUs: this thread
    takes them while the browser starts, so that it and every process it starts later
    (renderers, the GPU process) inherit them, then gets all of its own back."""
    if not pin_sites:
        return stack.enter_context(browser)
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, site_cpus(SURGEON_SITE))
    try:
        return stack.enter_context(browser)
    finally:
        os.sched_setaffinity(0, own)


def bench_system(opts: SystemOptions, stop: threading.Event,
                 progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run the flagship with its page for ``opts.duration_s`` [s] measured; the JSON.

    ``stop`` ends the run early (a signal): ``TelesurgeryError``, as the window is cut
    short. ``ConfigError`` (one line) for a missing Chromium or Playwright.
    """
    load_before = os.getloadavg()[0]
    if opts.link is not None:
        load_profile(opts.link)  # a wrong name fails here, before anything starts
    chromium = find_chromium(opts.chromium)
    progress(f"starting the demo (link {opts.link or 'none'}, hog {opts.hog}) and "
             f"Chromium ({chromium})")
    browser = HeadlessPage(chromium)  # before anything starts: Playwright may be missing
    with Hogs(opts.hog) as hogs, contextlib.ExitStack() as stack:
        page = _launch(browser, stack, opts.pin_sites)
        window = Window(opts.duration_s, page, stop, progress)
        summary = run_demo(DemoOptions(duration_s=None, link=opts.link, video=True,
                                       log_level=opts.log_level, pin_sites=opts.pin_sites,
                                       task=opts.task),
                           stop, on_tick=window.tick)
        hog_pids = hogs.pids
    if window.first is None or window.last is None:
        raise TelesurgeryError("stopped before the measured window ended; nothing measured")
    procs = cpu.usage(window.first, window.last)
    roles = classify(procs, os.getpid(), hog_pids)
    rtt_p50 = summary.get("link", {}).get("rtt_ms", {}).get("p50")
    video = summary.get("video") or {}
    displays = video.get("displays", {})
    return {
        "what": "the flagship session as a user runs it: router, patient, console (and the "
                "link emulators) as processes on loopback, video on, the console page open "
                "in headless Chromium; CPU over the measured window, the rest over the run",
        "machine": machine_info(),
        "link": opts.link or "none",
        "duration_s": opts.duration_s,
        "measured_s": round((window.last.at_ns - window.first.at_ns) * 1e-9, 3),
        "hog": opts.hog,
        "pin_sites": opts.pin_sites,
        "control": control_section(summary),
        "safety": safety_section(summary.get("safety", {}), window.holds),
        "page": display_section(displays.get("page"), rtt_p50, window.page_reason
                                or "the page reported no painted frame"),
        "console_decoder": display_section(displays.get("console_decoder"), rtt_p50,
                                           "the console decoded no frame"),
        "video": video_frames(video),
        "link_rtt_ms": summary.get("link", {}).get("rtt_ms", {}),
        "cpu_cores": cpu_cores(procs, roles),
        "cpu_processes": [process_entry(p, roles[p.pid]) for p in procs
                          if p.cores >= MIN_LISTED_CORES or roles[p.pid] in OURS],
        "load_average": {"before": load_before, "after": window.load_after,
                         "what": "1-minute load average before anything started, and at "
                                 "the end of the measured window"},
        "run": summary.get("run", {}),
    }


def control_section(summary: dict[str, Any]) -> dict[str, Any]:
    """Commands and their latency.

    ``lost`` counts, command by command, those sent and never applied: rejected by the
    safety supervisor (any reason: stale, not engaged, clock skew, ...), numbers no path
    brought, and first copies dropped because a newer number had come (superseded). A
    late copy of a number another path brought is not a command, so it never counts; nor
    does what was in flight when the nodes stopped (never judged). ``lost_by_difference``
    is sent - applied - ``unreceived_at_stop``, the same figure by subtraction while the
    summary counts only the stop's tail as unreceived. Per path, ``lost`` is the copies
    that path never brought (``missed``).
    """
    c = summary.get("control", {})
    link = summary.get("link", {})
    paths = link.get("paths", {})
    rejected = c.get("rejected_by_reason", {})
    no_path = link.get("commands", {}).get("lost")
    superseded = sum(int(p.get("superseded") or 0) for p in paths.values())
    unreceived = c.get("unreceived_at_stop")
    sent, applied = int(c.get("sent", 0)), int(c.get("applied", 0))
    return {
        "sent": sent,
        "applied": applied,
        "lost": sum(int(n) for n in rejected.values()) + int(no_path or 0) + superseded,
        "lost_by_difference": None if unreceived is None else sent - applied - unreceived,
        "unreceived_at_stop": unreceived,
        "not_applied": {"rejected_by_reason": rejected, "no_path_brought": no_path,
                        "superseded": superseded,
                        "undecodable_messages": c.get("undecodable", 0)},
        "paths": {name: {"lost": p.get("missed"), "loss": p.get("loss"),
                         "first_arrivals": p.get("first_arrivals"),
                         "late_copies": p.get("late_copies"),
                         "superseded": p.get("superseded")}
                  for name, p in paths.items()},
        "rate_hz": c.get("rate_hz"),
        "latency_ms": c.get("latency_ms", {}),
        "tick_wait_ms": c.get("tick_wait_ms", {}),
        "servo_period_error_us": c.get("servo_period_error_us", {}),
        "console_period_error_us": c.get("console_period_error_us", {}),
    }


def safety_section(safety: dict[str, Any], holds: dict[str, int | None]) -> dict[str, Any]:
    """The run's holds, faults and final state; holds within the window (None with a
    reason when the patient's status was not heard at both ends)."""
    out = {k: safety.get(k) for k in ("holds", "faults", "estops", "state")}
    first, last = holds["first"], holds["last"]
    out["holds_in_window"] = last - first if first is not None and last is not None else None
    if out["holds_in_window"] is None:
        out["holds_in_window_reason"] = "no patient status at both ends of the window"
    return out


def display_section(display: dict[str, Any] | None, rtt_p50_ms: float | None,
                    reason: str) -> dict[str, Any]:
    """One display's painted (or decoded) rate [1/s], glass-to-glass, motion-to-photon
    and motion-to-photon less the link's RTT p50 [ms]; None figures and ``reason`` when
    it showed nothing."""
    if display is None:
        return {"painted_fps": None, "frames": 0, "glass_to_glass_ms": None,
                "motion_to_photon_ms": None, "motion_to_photon_minus_rtt_ms": None,
                "reason": reason}
    m2p = display.get("motion_to_photon_ms") or {}
    out: dict[str, Any] = {"painted_fps": display.get("fps"), "frames": display["frames"],
                           "glass_to_glass_ms": display.get("glass_to_glass_ms"),
                           "motion_to_photon_ms": m2p or None}
    if rtt_p50_ms is None or not m2p:
        out["motion_to_photon_minus_rtt_ms"] = None
        out["reason"] = ("no motion-to-photon figure" if not m2p
                         else "no link round trip measured")
    else:
        out["motion_to_photon_minus_rtt_ms"] = {k: round(v - rtt_p50_ms, 3)
                                                for k, v in m2p.items()}
    return out


def video_frames(video: dict[str, Any]) -> dict[str, Any]:
    """Frames rendered by the camera, sent to the page, painted by it, decoded by the
    console and lost on the way; the video's size and target rate."""
    frames = video.get("frames", {})
    displays = video.get("displays", {})
    return {"width": video.get("width"), "height": video.get("height"),
            "fps_target": video.get("fps_target"),
            "rendered": frames.get("rendered"), "sent_to_page": frames.get("sent_to_page"),
            "painted_by_page": (displays.get("page") or {}).get("frames", 0),
            "decoded_at_console": (displays.get("console_decoder") or {}).get("frames", 0),
            "lost": frames.get("lost"),
            "page_fallbacks_to_jpeg": video.get("page_fallbacks_to_jpeg")}


def telesurgery_verb(cmdline: Iterable[str]) -> str | None:
    """The verb of a ``python -m telesurgery VERB ...`` or ``telesurgery VERB ...`` command
    line; None for any other program."""
    args = list(cmdline)
    for i, arg in enumerate(args[:-1]):
        if (arg == "telesurgery" and i > 0 and args[i - 1] == "-m") or (
                i <= 1 and Path(arg).name == "telesurgery"):
            return args[i + 1]
    return None


def _own_role(p: cpu.ProcessCpu, own_pid: int, hogs: set[int]) -> str | None:
    """The role a process has by itself; None where it takes its parent's."""
    if p.pid in hogs:
        return "hog"
    if p.pid == own_pid:
        return "harness"
    verb = telesurgery_verb(p.cmdline)
    if verb is not None:
        return _VERB_ROLES.get(verb, "other")
    program = Path(p.cmdline[0]).name if p.cmdline else p.comm
    if program.startswith("chrom") or p.comm.startswith("chrom"):
        return "browser"
    return None


def classify(procs: list[cpu.ProcessCpu], own_pid: int, hogs: set[int]) -> dict[int, str]:
    """Each process's role (see the module's docstring): by its own command line, else
    its parent's (a child of the patient named camera is the camera)."""
    by_pid = {p.pid: p for p in procs}
    roles: dict[int, str] = {}

    def role(pid: int) -> str:
        if pid not in roles:
            p = by_pid[pid]
            own = _own_role(p, own_pid, hogs)
            if own is None:
                parent = role(p.ppid) if p.ppid in by_pid else "other"
                own = "camera" if parent == "patient" and "camera" in p.comm else parent
            roles[pid] = own
        return roles[pid]

    for p in procs:
        role(p.pid)
    return roles


def cpu_cores(procs: list[cpu.ProcessCpu], roles: dict[int, str]) -> dict[str, Any]:
    """Cores per role over the window, ``ours``, each emulator by path, and where the
    camera ran (``camera_in``)."""
    cores = dict.fromkeys((*OURS, "browser", "harness", "hog", "other"), 0.0)
    for p in procs:
        cores[roles[p.pid]] += p.cores
    camera_in = "own process" if "camera" in roles.values() else "patient"
    if camera_in == "patient":
        camera = sum(t.cores for p in procs if roles[p.pid] == "patient"
                     for name, t in p.threads.items() if name.startswith(CAMERA_THREADS))
        cores["camera"] = camera
        cores["patient"] -= camera
    cores["ours"] = sum(cores[r] for r in OURS)
    out: dict[str, Any] = {k: round(v, 3) for k, v in cores.items()}
    out["emulators_each"] = {process_label(p.cmdline, p.comm): round(p.cores, 3)
                             for p in procs if roles[p.pid] == "emulators"}
    out["camera_in"] = camera_in
    return out


def process_label(cmdline: Iterable[str], comm: str) -> str:
    """A process's name for people, from its command line and OS name: ``link fibre`` for
    an emulator, its verb for our other nodes, else ``comm`` (Chromium rewrites its
    children's command lines)."""
    args = list(cmdline)
    verb = telesurgery_verb(args)
    if verb == "link" and "--path" in args[:-1]:
        return f"link {args[args.index('--path') + 1]}"
    return verb if verb is not None else comm


def process_entry(p: cpu.ProcessCpu, role: str) -> dict[str, Any]:
    """One process's cores and its threads' by OS name (busiest first)."""
    return {"role": role, "name": process_label(p.cmdline, p.comm), "pid": p.pid,
            "cores": round(p.cores, 3),
            "threads": {name: {"cores": round(t.cores, 3), "count": t.count}
                        for name, t in p.threads.items()}}


__all__ = ["OURS", "Hogs", "SystemOptions", "Window", "bench_system", "classify",
           "control_section", "cpu_cores", "display_section", "process_label",
           "telesurgery_verb"]
