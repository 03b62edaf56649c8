"""``bench soak``: the demo's real processes for a long run, watched for leaks and stalls.

The demo (``demo.run``: router, patient, console and one link emulator per path of the
profile, every path losing ``loss`` of its packets both ways) runs for ``duration_s``.
Every few seconds the resident memory (``VmRSS`` of ``/proc/<pid>/status``) and the open
file descriptors (``/proc/<pid>/fd``) of each node are read. Growth is the mean over the
last window against the mean over the first window after warm-up, as a fraction of the
first (start-up allocates for tens of seconds: caches, codecs, Zenoh's buffers).

Deadline misses are the patient's servo ticks and the console's teleoperation ticks
whose period ran more than 5 ms over the nominal (``clock.LateTicks``, in each node's
report, with times). The bench's stall probe (``bench.stallprobe``, a 1 kHz loop with no
work, paced as the nodes' loops are) records the machine's stalls by the same rule: a
miss whose gap overlaps one of the probe's was the machine's (the virtual machine
stopped, or every core was taken), one without was the node's own.
Holds and lost commands are the run's (``bench.system.control_section``).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from telesurgery.bench import cpu
from telesurgery.bench.machine import machine_info
from telesurgery.bench.stallprobe import PROBE_RATE_HZ, StallProbe
from telesurgery.bench.system import control_section, process_label, telesurgery_verb
from telesurgery.clock import now_ns
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess
from telesurgery.demo.run import DemoOptions, run_demo, writable_dir
from telesurgery.errors import TelesurgeryError

Progress = Callable[[str], None]

WARMUP_MAX_S: Final = 60.0
WARMUP_FRACTION: Final = 0.2
"""Warm-up [s]: this fraction of the run, at most ``WARMUP_MAX_S``."""
WINDOW_FRACTION: Final = 0.1
"""The first and last windows compared: this fraction of the run after warm-up each."""
SAMPLE_EVERY_MAX_S: Final = 5.0
SAMPLES_MIN: Final = 20
"""Sampling period [s]: ``SAMPLE_EVERY_MAX_S``, shorter for short runs so that a run has
at least ``SAMPLES_MIN`` samples."""
PROGRESS_EVERY_S: Final = 60.0
LISTED: Final = 200
"""Misses and stalls listed one by one (the counts go on)."""
LOOPS: Final = {"patient_servo": ("patient", "servo"), "console_loop": ("console", "loop")}
"""Each loop watched: its node's report and the report's section (``rate_hz``, ``late``)."""


@dataclass(frozen=True, slots=True)
class SoakOptions:
    """What ``bench soak`` was asked for."""

    duration_s: float = 3600.0
    loss: float = 0.01
    """Random loss probability on every emulated path, both ways."""
    link: str = "rome-beijing"
    video: bool = True
    every_s: float | None = None
    """Sampling period [s] (None: ``sample_every``)."""
    pin_sites: bool = True
    log_level: str = "warning"
    workdir: Path | None = None


def sample_every(duration_s: float) -> float:
    """The default sampling period [s] of a run of ``duration_s`` [s]."""
    return min(SAMPLE_EVERY_MAX_S, duration_s / SAMPLES_MIN)


def warmup(duration_s: float) -> float:
    """The warm-up [s] of a run of ``duration_s`` [s], left out of the growth."""
    return min(WARMUP_MAX_S, WARMUP_FRACTION * duration_s)


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One node at one instant: ``t_s`` [s into the run], resident memory [KiB], open
    file descriptors."""

    t_s: float
    rss_kib: int
    fds: int


def read_proc(pid: int) -> tuple[int, int] | None:
    """Resident memory [KiB] and open file descriptors of ``pid``; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]), fds
    return None  # a zombie has no memory left to report


def growth(series: Sequence[tuple[float, float]], warmup_s: float,
           window_s: float) -> float | None:
    """How much ``series`` ((t [s], value) in time order) grew after ``warmup_s`` [s]: the
    mean over its last ``window_s`` [s] less the mean over its first ``window_s`` after
    warm-up, as a fraction of the latter. None with fewer than two samples after warm-up,
    or a first window of zero."""
    after = [(t, v) for t, v in series if t >= warmup_s]
    if len(after) < 2:
        return None
    t0, t1 = after[0][0], after[-1][0]
    first = [v for t, v in after if t <= t0 + window_s]
    last = [v for t, v in after if t >= t1 - window_s]
    base = sum(first) / len(first)
    if base == 0:
        return None
    return (sum(last) / len(last) - base) / base


def slope_per_hour(series: Sequence[tuple[float, float]], warmup_s: float) -> float | None:
    """The least-squares slope of ``series`` ((t [s], value)) after ``warmup_s`` [s], in
    value units per hour; None with fewer than two distinct times."""
    after = [(t, v) for t, v in series if t >= warmup_s]
    if len({t for t, _ in after}) < 2:
        return None
    t = np.array([p[0] for p in after])
    v = np.array([p[1] for p in after], dtype=np.float64)
    return float(np.polyfit(t, v, 1)[0]) * 3600.0


def gaps(at_ns: Sequence[int], error_ns: Sequence[int], period_ns: float
         ) -> list[tuple[int, int]]:
    """Each late tick's gap [ns, ns]: from the start of the tick before it (a period and
    its ``error_ns`` earlier) to its own start ``at_ns``."""
    return [(at - int(period_ns) - err, at) for at, err in zip(at_ns, error_ns, strict=True)]


def coincide(misses: Sequence[tuple[int, int]], stalls: Sequence[tuple[int, int]],
             slack_ns: int) -> list[bool]:
    """For each miss (a gap [ns, ns]), whether a stall (a gap, the stalls in time order
    and disjoint, as one loop's are) overlaps it, give or take ``slack_ns`` [ns]."""
    ends = [end for _, end in stalls]
    out = []
    for start, end in misses:
        i = bisect.bisect_left(ends, start - slack_ns)
        out.append(i < len(stalls) and stalls[i][0] <= end + slack_ns)
    return out


@dataclass
class Sampler:
    """Reads every node's memory and descriptors each ``every_s`` [s], from the demo's
    ticks (``run_demo``'s ``on_tick``); reports progress every ``PROGRESS_EVERY_S``."""

    every_s: float
    duration_s: float
    progress: Progress
    series: dict[str, list[ProcSample]] = field(default_factory=dict)
    began_ns: int | None = None
    """When the run's clock started [ns, monotonic]: node times are set against it."""
    _next_s: float = 0.0
    _next_progress_s: float = PROGRESS_EVERY_S

    def tick(self, _monitor: Monitor, elapsed_s: float) -> None:
        """``run_demo``'s callback, four times a second."""
        if self.began_ns is None:
            self.began_ns = now_ns() - int(elapsed_s * 1e9)
        if elapsed_s < self._next_s:
            return
        self._next_s = elapsed_s + self.every_s
        own = os.getpid()
        for p in cpu.snapshot(own).processes.values():
            if p.pid == own or telesurgery_verb(p.cmdline) is None:
                continue
            read = read_proc(p.pid)
            if read is not None:
                self.series.setdefault(process_label(p.cmdline, p.stat.comm), []).append(
                    ProcSample(round(elapsed_s, 3), *read))
        if elapsed_s >= self._next_progress_s:
            self._next_progress_s += PROGRESS_EVERY_S
            rss = self.series.get("patient", [])
            self.progress(f"{elapsed_s:.0f}/{self.duration_s:.0f} s, load average "
                          f"{os.getloadavg()[0]:.2f}, patient RSS "
                          f"{rss[-1].rss_kib / 1024 if rss else 0:.1f} MiB")


def memory_section(series: dict[str, list[ProcSample]], warmup_s: float,
                   window_s: float) -> dict[str, Any]:
    """Per node: resident memory [MiB] first, last and max after warm-up, growth
    (fraction) and slope [MiB/h]; descriptors likewise (slope per hour)."""
    rss: dict[str, Any] = {}
    fds: dict[str, Any] = {}
    for node, samples in series.items():
        kept = [s for s in samples if s.t_s >= warmup_s] or samples
        mem = [(s.t_s, s.rss_kib / 1024) for s in samples]
        fd = [(s.t_s, float(s.fds)) for s in samples]
        slope = slope_per_hour(mem, warmup_s)
        rss[node] = {"first_mib": round(kept[0].rss_kib / 1024, 1),
                     "last_mib": round(kept[-1].rss_kib / 1024, 1),
                     "max_mib": round(max(s.rss_kib for s in samples) / 1024, 1),
                     "growth": _round(growth(mem, warmup_s, window_s)),
                     "slope_mib_per_h": None if slope is None else round(slope, 2)}
        fd_slope = slope_per_hour(fd, warmup_s)
        fds[node] = {"first": kept[0].fds, "last": kept[-1].fds,
                     "max": max(s.fds for s in samples),
                     "growth": _round(growth(fd, warmup_s, window_s)),
                     "slope_per_h": None if fd_slope is None else round(fd_slope, 1)}
    return {"rss": rss, "fds": fds}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _error_ns(late: dict[str, Any]) -> list[int]:
    return [round(e * 1e6) for e in late["error_ms"]]


def misses_section(reports: dict[str, dict[str, Any]], probe: dict[str, Any], began_ns: int,
                   warmup_s: float) -> dict[str, Any]:
    """Each loop's ticks over 5 ms late (``late``: ``LateTicks.report``, in its node's
    report), set beside the probe's stalls (``probe``: its ``late``; ``coincide``), counted
    after ``warmup_s`` [s] too and listed (the first ``LISTED``) at their time [s into the
    run]."""
    stalls = gaps(probe["at_ns"], _error_ns(probe), 1e9 / PROBE_RATE_HZ)
    slack = int(1e9 / PROBE_RATE_HZ)
    out: dict[str, Any] = {}
    for name, (node, section) in LOOPS.items():
        loop = reports[node].get(section, {})
        raw = loop.get("late")
        if raw is None:
            out[name] = {"count": None, "reason": f"the {node} report has no late ticks"}
            continue
        seen = coincide(gaps(raw["at_ns"], _error_ns(raw), 1e9 / loop["rate_hz"]), stalls,
                        slack)
        out[name] = {"count": int(raw["count"]), "judged": len(seen),
                     "with_machine_stall": sum(seen), "without_machine_stall": seen.count(False),
                     "after_warmup": sum(1 for at in raw["at_ns"]
                                         if at - began_ns >= warmup_s * 1e9),
                     "worst_ms": max(raw["error_ms"], default=None),
                     "listed": [{"at_s": round((at - began_ns) * 1e-9, 3), "late_ms": err,
                                 "machine_stall": s}
                                for at, err, s in zip(raw["at_ns"][:LISTED],
                                                      raw["error_ms"][:LISTED], seen,
                                                      strict=False)]}
    return out


def probe_section(probe: dict[str, Any], began_ns: int) -> dict[str, Any]:
    """The machine's stalls from the probe's report (``stallprobe.run_probe``): how many,
    the worst [ms], the probe's period error [us] and the first ``LISTED`` stalls at their
    time [s into the run]."""
    late = probe["late"]
    return {"count": late["count"], "ticks": probe["ticks"],
            "worst_ms": max(late["error_ms"], default=None),
            "realtime": probe["realtime"],
            "period_error_us": probe["period_error_us"],
            "listed": [{"at_s": round((at - began_ns) * 1e-9, 3), "late_ms": e}
                       for at, e in zip(late["at_ns"][:LISTED], late["error_ms"][:LISTED],
                                        strict=True)],
            "what": "a 1 kHz loop with no work in a process of its own, paced as the nodes' "
                    "loops are (SCHED_FIFO where permitted): a tick over 5 ms late is a "
                    "stall of the machine itself, which no node could have avoided"}


def bench_soak(opts: SoakOptions, stop: threading.Event,
               progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run the demo for ``opts.duration_s`` [s] over lossy emulated paths; the JSON.

    ``stop`` ends the run early (a signal): ``TelesurgeryError``, as nothing would say
    what a full run does. ``ConfigError`` (one line) for bad options.
    """
    demo = DemoOptions(duration_s=opts.duration_s, link=opts.link, loss=opts.loss,
                       video=opts.video, log_level=opts.log_level, pin_sites=opts.pin_sites,
                       workdir=opts.workdir)
    demo.check()
    every_s = opts.every_s or sample_every(opts.duration_s)
    workdir = writable_dir(opts.workdir, "--workdir")
    load_start = os.getloadavg()
    progress(f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}; "
             f"starting the demo (link {opts.link}, loss {opts.loss}) for "
             f"{opts.duration_s:g} s")
    sampler = Sampler(every_s, opts.duration_s, progress)
    with StallProbe(workdir / "stall-probe.json") as probe:
        summary = run_demo(replace(demo, workdir=workdir), stop, on_tick=sampler.tick)
    if stop.is_set() or sampler.began_ns is None:
        raise TelesurgeryError("stopped before the run ended; nothing to report")
    reports = {n: NodeProcess(n, [], workdir).report() for n in ("patient", "console")}
    warmup_s = warmup(opts.duration_s)
    window_s = max(every_s, WINDOW_FRACTION * (opts.duration_s - warmup_s))
    memory = memory_section(sampler.series, warmup_s, window_s)
    misses = misses_section(reports, probe.report["late"], sampler.began_ns, warmup_s)
    control = control_section(summary)
    return {
        "what": "the demo's processes (router, patient, console, one link emulator per "
                "path) over lossy emulated paths for a long run: node memory and "
                "descriptors, loop deadline misses against the machine's own stalls, "
                "holds and lost commands",
        "machine": machine_info(),
        "duration_s": opts.duration_s,
        "measured_s": summary["duration_s"],
        "link": {"profile": opts.link, "loss": opts.loss},
        "video": opts.video,
        "rss_growth": {n: r["growth"] for n, r in memory["rss"].items()},
        "deadline_misses_over_5ms": sum(int(m["count"] or 0) for m in misses.values()),
        "holds": int(summary["safety"]["holds"]),
        "lost": control["lost"],
        "growth_rule": {"warmup_s": round(warmup_s, 3), "window_s": round(window_s, 3),
                        "sample_every_s": round(every_s, 3),
                        "what": "mean of the last window after warm-up less the mean of "
                                "the first, as a fraction of the first"},
        "memory": memory,
        "deadline_misses": misses,
        "machine_stalls": probe_section(probe.report, sampler.began_ns),
        "control": control,
        "safety": summary["safety"],
        "load_average": {"start": list(load_start), "end": list(os.getloadavg()),
                         "what": "1, 5 and 15-minute load averages when the bench started "
                                 "and when it ended"},
        "series": {n: [[s.t_s, s.rss_kib, s.fds] for s in samples]
                   for n, samples in sampler.series.items()},
        "series_columns": ["t_s", "rss_kib", "fds"],
        "workdir": str(workdir),
    }


__all__ = ["ProcSample", "SoakOptions", "bench_soak", "coincide", "gaps",
           "growth", "memory_section", "read_proc", "sample_every", "slope_per_hour",
           "warmup"]
