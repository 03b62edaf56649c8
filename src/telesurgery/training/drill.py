"""``telesurgery drill FILE``: a fault drill for the hybrid team, scored.

A drill file (TOML) names a session (task, link profile, whether the bedside console is
there) and timed events, each a fault the bench's fault matrix knows how to inject
(``bench.faults.inject``) plus the 250 ms latency spike, with what the pages must show
and how fast the team must respond. The drill runs the demo's session, injects each
event at its time (seconds after every node is up), and measures from what an observer
on the site router sees, which is what both consoles' pages are fed:

- ``alarm_s``: fault -> the alarm the event expects (a path DOWN, an arm held, the
  control at the bedside);
- ``response_s``: the team's response: when the surgeon is lost (the console crash),
  fault -> the bedside's take-over (the team takes control, as the demo's
  ``--takeover-at`` does, once the surgeon's console is gone); otherwise the fault's end
  -> every arm following again (``resume_s``);
- ``takeover_motion_mm``: how far the tips moved in the second after a take-over;
- ``resume_s``: the fault's end -> every arm following a new command.

An event passes when its alarm came within ``alarm_within_s``, its response within
``response_within_s``, and a take-over moved the tips at most ``takeover_motion_mm``.
Times [s], distances [mm].
"""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from telesurgery.bench.faults.inject import Fault, Injection, fault_named
from telesurgery.bench.faults.judge import TipSample, mode_at, recovery_s
from telesurgery.bench.faults.observe import Observation, Observer
from telesurgery.clock import now_ns
from telesurgery.config import PatientConfig, load
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.run import DemoNodes, DemoOptions, run_demo
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.tasks import DEFAULT_TASK, rules_for

SPIKE_MS: Final = 250.0
"""The latency spike [ms] added to every path's one-way delay, both ways."""
TAKEOVER_WINDOW_S: Final = 1.0
"""The take-over's motion is measured over this long [s] after it."""
RESUME_HORIZON_S: Final = 20.0
"""Holds begun within this long [s] after an event's end are the event's (``resume_s``)."""
BACKUP: Final = "backup:"
"""How the owner announcement names a bedside console."""


def _spike(ctx: Injection, duration_s: float) -> None:
    """Every path's one-way delay raised by ``SPIKE_MS`` both ways, then back."""
    rig = ctx.rig
    for name, emu in rig.emulators.items():
        emu.retune({"delay_ms": rig.profile.paths[name].forward.delay_ms + SPIKE_MS})
    try:
        ctx.hold(duration_s)
    finally:
        for emu in rig.emulators.values():
            emu.reset()


DRILL_FAULTS: Final[Mapping[str, Callable[[], Fault]]] = {
    "path_cut": lambda: fault_named("path_cut"),
    "path_degraded": lambda: fault_named("loss_10pct"),
    "both_paths_cut": lambda: fault_named("both_paths_cut"),
    "jitter_burst": lambda: fault_named("jitter_bursts"),
    "latency_spike": lambda: Fault("latency_spike", f"{SPIKE_MS:g} ms more one-way delay on "
                                   "every path, both ways", 3.0, _spike),
    "console_crash": lambda: fault_named("console_sigkill"),
    "clock_step": lambda: fault_named("clock_step_plus"),
}
"""The faults a drill may use, by name."""
NEEDS_LINK: Final = frozenset({"path_cut", "path_degraded", "both_paths_cut", "jitter_burst",
                               "latency_spike"})
NEEDS_BEDSIDE: Final = frozenset({"console_crash"})


class DrillEvent(BaseModel):
    """One timed fault: at ``at_s`` [s] after every node is up, for ``duration_s`` [s];
    the ``alarm`` the pages must show (``link``: a path DOWN; ``hold``: an arm held;
    ``takeover``: control at the bedside; ``none``) within ``alarm_within_s`` [s], the
    response within ``response_within_s`` [s], a take-over moving the tips at most
    ``takeover_motion_mm`` [mm]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: Annotated[float, Field(ge=0.0)]
    fault: str
    duration_s: Annotated[float, Field(gt=0.0, le=60.0)] = 3.0
    alarm: Literal["link", "hold", "takeover", "none"] = "none"
    alarm_within_s: Annotated[float, Field(gt=0.0)] = 1.0
    response_within_s: Annotated[float, Field(gt=0.0)] = 10.0
    takeover_motion_mm: Annotated[float, Field(ge=0.0)] = 1.0

    @field_validator("fault")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DRILL_FAULTS:
            raise ValueError(f"unknown fault {v!r}; choose one of "
                             f"{', '.join(sorted(DRILL_FAULTS))}")
        return v

    def criteria(self) -> str:
        """The pass criteria in words."""
        out = [f"the alarm ({self.alarm}) on the pages within {self.alarm_within_s:g} s"
               if self.alarm != "none" else "no alarm required",
               f"the response within {self.response_within_s:g} s"]
        if self.fault in NEEDS_BEDSIDE:
            out.append(f"the take-over moves the tips <= {self.takeover_motion_mm:g} mm")
        return "; ".join(out)


class DrillFile(BaseModel):
    """A drill: its ``name``, what it rehearses, the session's ``task``, ``link`` profile
    (None: no emulated paths), ``bedside`` console, the ``events`` in time order, and
    ``after_s`` [s] the session goes on after the last event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    what: str = ""
    source: str = ""
    task: str = DEFAULT_TASK
    link: str | None = "rome-beijing"
    bedside: bool = False
    after_s: Annotated[float, Field(ge=0.0, le=120.0)] = 8.0
    events: Annotated[list[DrillEvent], Field(min_length=1)]

    @field_validator("link")
    @classmethod
    def _no_link(cls, v: str | None) -> str | None:
        # TOML has no null: "none" says the session runs without emulated paths.
        return None if v == "none" else v

    def check(self) -> None:
        """ConfigError for a drill the demo cannot run."""
        rules_for(self.task)
        faults = {e.fault for e in self.events}
        if faults & NEEDS_LINK and self.link is None:
            raise ConfigError(f"drill {self.name}: {', '.join(sorted(faults & NEEDS_LINK))} "
                              "needs emulated paths: set link = \"rome-beijing\"")
        if faults & NEEDS_BEDSIDE and (not self.bedside or self.link is not None):
            raise ConfigError(f"drill {self.name}: a console crash needs the bedside console "
                              "and no emulated paths (the demo cannot run both yet): set "
                              "bedside = true and leave out link")
        ats = [e.at_s for e in self.events]
        if ats != sorted(ats):
            raise ConfigError(f"drill {self.name}: events must be in time order (at_s)")
        for a, b in zip(self.events, self.events[1:], strict=False):
            if b.at_s < a.at_s + a.duration_s:
                raise ConfigError(f"drill {self.name}: the event at {b.at_s:g} s starts "
                                  "before the one before it ends")


def load_drill(path: Path) -> DrillFile:
    """The drill in ``path``; ConfigError (one line) for a bad file."""
    drill = load(DrillFile, path)
    drill.check()
    return drill


@dataclass
class _Timeline:
    """When each event began and ended, and when the team took over [ns]."""

    spans: list[tuple[int, int]]
    takeovers: list[int | None]


class _Runner:
    """Injects the drill's events from the demo's start hook, one after another, and plays
    the bedside team: when the surgeon's console is gone it takes control."""

    def __init__(self, drill: DrillFile) -> None:
        self.drill = drill
        self.done = threading.Event()
        self.abort = threading.Event()
        self.observer: Observer | None = None
        self.monitor: Monitor | None = None
        self.timeline = _Timeline([], [])
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, nodes: DemoNodes, monitor: Monitor) -> None:
        self.observer = Observer(monitor, tuple(PatientConfig().arms))
        self.monitor = monitor
        self._thread = threading.Thread(target=self._run, args=(nodes,), name="drill",
                                        daemon=True)
        self._thread.start()

    def _run(self, nodes: DemoNodes) -> None:
        assert self.observer is not None
        assert self.monitor is not None
        origin = now_ns()
        try:
            for event in self.drill.events:
                if self.abort.wait(max(0.0, event.at_s - (now_ns() - origin) * 1e-9)):
                    return
                fault = DRILL_FAULTS[event.fault]()
                ctx = Injection(nodes, self.abort, self.observer.seen, Path())
                team = _Team(nodes, self.monitor, self.abort) \
                    if event.fault in NEEDS_BEDSIDE else None
                begin = now_ns()
                if team is not None:
                    team.start()
                fault.inject(ctx, event.duration_s)
                end = now_ns()
                took = team.join() if team is not None else None
                self.timeline.spans.append((begin, end))
                self.timeline.takeovers.append(took)
                if fault.recover is not None:
                    fault.recover(ctx)
            self.abort.wait(self.drill.after_s)
        except BaseException as exc:  # reported by ``join`` on the drill's thread
            self.error = exc
        finally:
            self.done.set()

    def tick(self, _monitor: Monitor, _elapsed_s: float) -> None:
        """Nothing to do but let the demo loop run (the runner has its own thread)."""

    def join(self) -> None:
        self.abort.set()
        if self._thread is not None:
            self._thread.join(60.0)
        if self.observer is not None:
            self.observer.close()
        if self.error is not None:
            raise TelesurgeryError(f"drill {self.drill.name}: {self.error}") from self.error


class _Team:
    """The bedside team during a surgeon-lost event: as soon as the surgeon's console is
    gone from the session, it takes control (the backup console's one action, SIGUSR1,
    as the demo's ``--takeover-at`` drill sends it). ``join`` says when [ns] it acted."""

    def __init__(self, nodes: DemoNodes, monitor: Monitor, abort: threading.Event) -> None:
        self._backup = nodes.consoles[-1]
        self._monitor = monitor
        self._abort = abort
        self._acted: int | None = None
        self._thread = threading.Thread(target=self._watch, name="drill-team", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        tick = threading.Event()
        while not self._abort.is_set():
            if "console" not in self._monitor.present:
                self._backup.signal(signal.SIGUSR1)
                self._acted = now_ns()
                return
            tick.wait(0.02)

    def join(self) -> int | None:
        self._thread.join(30.0)
        return self._acted


def _first_after(times: list[int], t0: int) -> float | None:
    later = [t for t in times if t >= t0]
    return round((min(later) - t0) * 1e-9, 3) if later else None


def _path_mm(samples: list[TipSample], t0: int, t1: int) -> float:
    inside = sorted((s for s in samples if t0 <= s.sent_ns <= t1), key=lambda s: s.sent_ns)
    return sum(a.tip.distance(b.tip) for a, b in itertools.pairwise(inside)) * 1e3


def score_event(event: DrillEvent, seen: Observation, span: tuple[int, int],
                takeover_ns: int | None, arms: tuple[str, ...],
                next_begin_ns: int | None = None) -> dict[str, Any]:
    """One event's entry of the score sheet (see the module docstring); holds from
    ``next_begin_ns`` [ns] on are the next event's."""
    begin, end = span
    with seen.lock:
        alarms = {"link": [t for t, what in seen.link_alarm_times if what.endswith("DOWN")],
                  "hold": [h.sent_ns for h in seen.holds],
                  "takeover": [t for t, o in seen.owners if o and o.startswith(BACKUP)]}
        tips = {arm: list(seen.tips.get(arm, [])) for arm in arms}
    alarm_s = None if event.alarm == "none" else _first_after(alarms[event.alarm], begin)
    # A hold begun long after the fault (the session's own end) is not the fault's.
    horizon = min(end + round(RESUME_HORIZON_S * 1e9), next_begin_ns or 2**63)
    resumes = [recovery_s(tips[arm], end, horizon) for arm in arms]
    resume_s = None if any(r is None for r in resumes) else max(r for r in resumes
                                                                if r is not None)
    modes = {arm: mode_at(tips[arm], begin) for arm in arms}
    out: dict[str, Any] = {"fault": event.fault, "at_s": event.at_s,
                           "lasted_s": round((end - begin) * 1e-9, 3), "alarm": event.alarm,
                           "alarm_s": alarm_s, "resume_s": resume_s,
                           # Whether the arms were following when the fault came: a drill
                           # on arms that never engaged judges nothing.
                           "modes_at_fault": {a: None if m is None else m.label
                                              for a, m in modes.items()}}
    ok = [event.alarm == "none" or (alarm_s is not None and alarm_s <= event.alarm_within_s)]
    if event.fault in NEEDS_BEDSIDE:
        took = _first_after(alarms["takeover"], begin)
        out["response_s"] = took
        out["team_acted_s"] = None if takeover_ns is None else round(
            (takeover_ns - begin) * 1e-9, 3)
        motion = None
        if took is not None:
            t0 = begin + round(took * 1e9)
            motion = round(max(_path_mm(tips[a], t0, t0 + round(TAKEOVER_WINDOW_S * 1e9))
                               for a in arms), 3)
        out["takeover_motion_mm"] = motion
        ok.append(motion is not None and motion <= event.takeover_motion_mm)
    else:
        out["response_s"] = resume_s
    response = out["response_s"]
    ok.append(response is not None and response <= event.response_within_s)
    out["criteria"] = event.criteria()
    out["passed"] = all(ok)
    return out


def run_drill(drill: DrillFile, stop: threading.Event, workdir: Path | None = None,
              log_level: str = "warning") -> dict[str, Any]:
    """Run ``drill``; its score sheet: ``{"drill", "events": [...], "passed", ...}``."""
    drill.check()
    runner = _Runner(drill)
    # Video off, as in the fault matrix: on a 2-core machine the frames of a loaded session
    # come late, and a frozen picture clutches every arm (seen: the arms clutched when the
    # console crashed, at load average 20), which is not the drill's fault.
    opts = DemoOptions(duration_s=None, link=drill.link, task=drill.task, workdir=workdir,
                       log_level=log_level, backup=drill.bedside, video=False,
                       backup_web_port=0 if drill.bedside else None,
                       console_env=_console_env(drill))
    halt = threading.Event()

    def tick(monitor: Monitor, elapsed_s: float) -> None:
        if stop.is_set():
            runner.abort.set()
        if runner.done.is_set():
            halt.set()

    try:
        summary = run_demo(opts, halt, on_tick=tick, on_start=runner.start)
    finally:
        runner.join()
    if stop.is_set() or len(runner.timeline.spans) != len(drill.events):
        raise TelesurgeryError(f"drill {drill.name}: stopped before its last event; nothing "
                               "scored")
    assert runner.observer is not None
    arms = tuple(PatientConfig().arms)
    spans = runner.timeline.spans
    nexts = [b for b, _ in spans[1:]] + [None]
    events = [score_event(e, runner.observer.seen, span, took, arms, nxt)
              for e, span, took, nxt in zip(drill.events, spans, runner.timeline.takeovers,
                                            nexts, strict=True)]
    return {"drill": drill.name, "what": drill.what, "source": drill.source,
            "events": events, "passed": all(e["passed"] for e in events),
            "task": summary.get("task"), "safety": summary.get("safety"),
            "backup": summary.get("backup")}


def _console_env(drill: DrillFile) -> tuple[tuple[str, str], ...]:
    env: dict[str, str] = {}
    for e in drill.events:
        env.update(DRILL_FAULTS[e.fault]().console_env)
    return tuple(env.items())


__all__ = ["DRILL_FAULTS", "SPIKE_MS", "DrillEvent", "DrillFile", "load_drill", "run_drill",
           "score_event"]
