"""``bench holds``: how far a tool tip goes after a hold, and whether it stays put.

The safety supervisor over the MuJoCo robot (``SimRobot``), on simulated time: one
supervisor tick and one physics step per 1 ms period, as in the patient node, with
nothing else on the machine mattering. Each trial engages both arms with the clutch
cycle, sends each a goal far away in a random direction, so that the motion limiter
drives the tool at its speed and acceleration limits, and holds the arms by one
cause at a random moment of the motion (accelerating or at full speed):

- ``watchdog``: the console falls silent; the supervisor holds after ``watchdog_ms``;
- ``handover``: control passes to another console (``hold_others``, as on a take-over);
- ``estop``: the emergency stop (``estop``);
- ``hold``: an operator's hold (``hold``), the same code path as a link-loss alarm.

A ``contact`` variant of every cause drives the tools down into the board first: the
hold then comes with the jaws pressed on a surface. From the hold on, the tip's
measured position is sampled every period for ``observe_s``:

- ``stop_m``: the furthest the tip gets from where it was when the hold was applied;
- ``stop_ms``: time from the hold until the tip stays within ``REST_M`` of where it ends;
- ``drift_m``: the most the tip moves over the rest of the window after ``SETTLE_S``
  (creep: it must not grow with time);
- ``creep_m``: the most the tip moves over the last ``CREEP_WINDOW_S`` of the window;
- for ``watchdog``, ``silent_m`` also: how far the tip went from the console's last
  command to rest (the watchdog's own share included).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from telesurgery.bench.machine import machine_info
from telesurgery.config import SafetyConfig
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.messages import Message, SafetyEvent, ServoCP
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.safety.supervisor import Supervisor
from telesurgery.stats import summarize
from telesurgery.types import ArmMode, Pose

CAUSES: Final = ("watchdog", "handover", "estop", "hold")
PERIOD_NS: Final = 1_000_000
"""One servo period [ns]: the patient node's 1 kHz."""
SETTLE_S: Final = 0.1
"""Time [s] after the hold from which the tip must stay put (the servo brakes within a
few tens of milliseconds: ``docs/safety.md``)."""
REST_M: Final = 5e-5
"""A tip within this [m] of where it ends is at rest."""
GOAL_M: Final = 0.06
"""How far [m] each goal lies from the tip: far enough that the limiter is still at full
speed when the hold comes."""
TRIGGER_MS: Final = (5, 120)
"""The hold comes this many [ms] after the goal was first sent: accelerating (the limiter
reaches full speed after v / a = 50 ms by default) or at full speed."""
CONTACT_DEPTH_M: Final = 0.01
"""How far [m] below the board's surface the contact trials aim."""
CONTACT_SPOT_M: Final = (0.02, -0.03)
"""Where [m, base frame: outward from the board's centre line, then y] the contact trials
press on the board."""
BOARD_Z_BASE_M: Final = -0.19
"""The board's surface in each arm's base frame [m] (the RCM is 0.19 m above it)."""
CREEP_WINDOW_S: Final = 1.0
"""The last part [s] of the window in which ``creep_m`` is measured."""
STOP_BOUND_M: Final = 0.001
"""The bound ``docs/safety.md`` states for ``stop_m`` [m]: the joint servos, critically
damped at 150 rad/s, stop a tip at 0.25 m/s within v / (e w) = 0.61 mm."""
STOP_BOUND_MS: Final = 500.0
"""The bound ``docs/safety.md`` states for ``stop_ms`` [ms]."""
DRIFT_BOUND_M: Final = 2e-4
"""The bound ``docs/safety.md`` states for ``drift_m`` [m]: none in free space; a tool
pressed on the board relaxes a little as the contact unloads."""
CREEP_BOUND_M: Final = 5e-5
"""The bound ``docs/safety.md`` states for ``creep_m`` [m]: a held tool does not creep. A
tool held pressed on the board relaxes with a time constant of about a second (up to
19 um in the last second of two; under 0.1 um after eight), which this leaves room for; a
servo that crept would not converge."""

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class HoldTrial:
    """One arm's hold: cause, contact, the figures above [m, ms] and the tip's speed when
    the hold was applied [m/s] and the contact force on
    the instrument then [N]."""

    cause: str
    contact: bool
    arm: str
    speed_m_s: float
    force_n: float
    stop_m: float
    stop_ms: float
    drift_m: float
    creep_m: float
    silent_m: float | None


class _Session:
    """The supervisor over a robot on simulated time, and one console session."""

    def __init__(self, config: SafetyConfig) -> None:
        self.t_ns = 10**12
        self.robot = SimRobot()
        self.events: list[SafetyEvent] = []
        self.owner = 1
        self.sup = Supervisor(self.robot, config, self.events.append,
                              period_s=PERIOD_NS * 1e-9, clock=lambda: self.t_ns,
                              admits=lambda s: s == self.owner)
        self.seq = 0
        self.robot.enable()
        self.sup.enable()
        self.tick()

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.robot.arms)

    def tip(self, arm: str) -> Pose:
        return self.robot.arms[arm].measured_cp()

    def tick(self) -> None:
        self.sup.tick(self.t_ns)
        self.robot.step(PERIOD_NS * 1e-9)
        self.t_ns += PERIOD_NS

    def send(self, arm: str, pose: Pose, clutch: bool = False) -> bool:
        self.seq += 1
        msg = Message(self.owner, self.seq, self.t_ns, ServoCP(arm, pose, self.t_ns, clutch))
        return self.sup.submit(msg, self.t_ns).accepted

    def engage(self) -> None:
        """A new console session (the last one lost control) engages every arm where its
        tool is: clutch, then release on the setpoint."""
        self.owner += 1
        self.seq = 0
        for arm in self.arms:
            self.send(arm, self.robot.arms[arm].setpoint_cp(), clutch=True)
        self.tick()
        for arm in self.arms:
            if not self.send(arm, self.robot.arms[arm].setpoint_cp()):
                raise TelesurgeryError(f"bench holds: {arm} did not engage: {self.events[-1:]}")

    def hold(self, cause: str) -> None:
        if cause == "handover":
            self.sup.hold_others(None, "bench: control passed to another console")
        elif cause == "estop":
            self.sup.estop("bench: emergency stop")
        elif cause == "hold":
            self.sup.hold("bench: operator hold")
        else:
            raise ConfigError(f"unknown hold cause {cause!r}; choose one of "
                              f"{', '.join(CAUSES)}")

    def clear(self, cause: str) -> None:
        if cause == "estop":
            self.sup.disable()
            self.sup.enable()


def _goal(rng: random.Random, tip: Pose, contact: bool, config: SafetyConfig) -> Pose:
    """A goal ``GOAL_M`` from ``tip`` in a random direction, inside the workspace; for
    ``contact``, below the board's surface."""
    lo, hi = config.workspace_min_m, config.workspace_max_m
    for _ in range(1000):
        if contact:
            target = (tip.position[0], tip.position[1], BOARD_Z_BASE_M - CONTACT_DEPTH_M)
        else:
            dx, dy, dz = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
            k = GOAL_M / math.hypot(dx, dy, dz)
            x, y, z = tip.position
            target = (x + k * dx, y + k * dy, z + k * dz)
        if all(a + 0.005 < c < b - 0.005 for a, c, b in zip(lo, target, hi, strict=True)):
            return Pose(target, tip.orientation)
    raise TelesurgeryError("bench holds: no goal inside the workspace; the tool left it")


def _move_to_start(s: _Session, rng: random.Random, contact: bool) -> None:
    """Bring every tool to a fresh start pose and wait until it rests there: above the
    board for the contact trials, anywhere near home for the others."""
    starts = {}
    for arm in s.arms:
        home = s.robot.layout.home_tip(arm)
        x, y, z = home.position
        if contact:
            # Beside the board's outer edge, clear of the pegs and rings (35 mm away).
            outward = math.copysign(CONTACT_SPOT_M[0], s.robot.layout.base_pose(arm).position[0])
            position = (outward + rng.uniform(-0.005, 0.005),
                        CONTACT_SPOT_M[1] + rng.uniform(-0.005, 0.005), BOARD_Z_BASE_M + 0.02)
        else:
            position = (x + rng.uniform(-0.015, 0.015), y + rng.uniform(-0.015, 0.015),
                        z + rng.uniform(-0.02, 0.02))
        starts[arm] = Pose(position, home.orientation)
    for _ in range(2000):
        for arm, start in starts.items():
            s.send(arm, start)
        s.tick()
        if all(s.tip(a).distance(p) < REST_M for a, p in starts.items()):
            return
    raise TelesurgeryError("bench holds: the tools did not reach their start poses "
                           "within 2 s")


def run_trial(s: _Session, rng: random.Random, cause: str, contact: bool,
              observe_s: float) -> list[HoldTrial]:
    """One hold of both arms by ``cause``; one ``HoldTrial`` per arm."""
    s.engage()
    _move_to_start(s, rng, contact)
    goals = {arm: _goal(rng, s.tip(arm), contact, s.sup.config) for arm in s.arms}
    # Contact trials reach the board (20 mm down) after about 105 ms, then press on it.
    trigger = rng.randint(*TRIGGER_MS) + (150 if contact else 0)
    last_sent: dict[str, Pose] = {}
    prev: dict[str, Pose] = {}
    for _ in range(trigger):
        for arm, goal in goals.items():
            s.send(arm, goal)
            last_sent[arm] = prev[arm] = s.tip(arm)
        s.tick()
    if cause == "watchdog":
        # The watchdog holds inside the tick that finds the silence: the hold is applied
        # from the poses before that tick.
        while True:
            held_at = {arm: s.tip(arm) for arm in s.arms}
            force = _forces(s)
            s.tick()
            if all(s.sup.mode(a) is ArmMode.HELD for a in s.arms):
                break
            prev = held_at
        track = {arm: [held_at[arm], s.tip(arm)] for arm in s.arms}
    else:
        held_at = {arm: s.tip(arm) for arm in s.arms}
        force = _forces(s)
        s.hold(cause)
        track = {arm: [held_at[arm]] for arm in s.arms}
    speed = {arm: held_at[arm].distance(prev[arm]) / (PERIOD_NS * 1e-9) for arm in s.arms}
    n = round(observe_s / (PERIOD_NS * 1e-9))
    while len(track[s.arms[0]]) <= n:
        s.tick()
        for arm in s.arms:
            track[arm].append(s.tip(arm))
    s.clear(cause)
    settle = round(SETTLE_S / (PERIOD_NS * 1e-9))
    creep = round(CREEP_WINDOW_S / (PERIOD_NS * 1e-9))
    out = []
    for arm in s.arms:
        path = track[arm]
        end = path[-1]
        moving = [i for i, p in enumerate(path) if p.distance(end) > REST_M]
        origin = path[settle]
        out.append(HoldTrial(
            cause=cause, contact=contact, arm=arm, speed_m_s=speed[arm], force_n=force[arm],
            stop_m=max(held_at[arm].distance(p) for p in path),
            stop_ms=(moving[-1] + 1 if moving else 0) * PERIOD_NS * 1e-6,
            drift_m=max(origin.distance(p) for p in path[settle:]),
            creep_m=max(path[-creep].distance(p) for p in path[-creep:]),
            silent_m=(max(last_sent[arm].distance(p) for p in path)
                      if cause == "watchdog" else None)))
    return out


def _forces(s: _Session) -> dict[str, float]:
    return {arm: _norm(s.robot.arms[arm].measured_cf().force) for arm in s.arms}


def _norm(v: tuple[float, float, float]) -> float:
    return math.sqrt(sum(c * c for c in v))


def _summary(trials: list[HoldTrial]) -> dict[str, Any]:
    def dist(values: list[float], scale: float) -> dict[str, float]:
        return summarize(np.asarray(values), scale)

    silent = [t.silent_m for t in trials if t.silent_m is not None]
    out: dict[str, Any] = {
        "holds": len(trials),
        "speed_m_s": dist([t.speed_m_s for t in trials], 1.0),
        "force_n": dist([t.force_n for t in trials], 1.0),
        "stop_mm": dist([t.stop_m for t in trials], 1e3),
        "stop_ms": dist([t.stop_ms for t in trials], 1.0),
        "drift_mm": dist([t.drift_m for t in trials], 1e3),
        "creep_mm": dist([t.creep_m for t in trials], 1e3),
    }
    if silent:
        out["silent_mm"] = dist(silent, 1e3)
    out["passed"] = all(t.stop_m <= STOP_BOUND_M and t.stop_ms <= STOP_BOUND_MS
                        and t.drift_m <= DRIFT_BOUND_M and t.creep_m <= CREEP_BOUND_M
                        for t in trials)
    return out


def hold_trials(trials_per_cause: int, observe_s: float = 2.0, seed: int = 0,
                config: SafetyConfig | None = None) -> Iterator[HoldTrial]:
    """``trials_per_cause`` holds of both arms for every cause, in free space then in
    contact, each observed for ``observe_s`` [s]; reproducible from ``seed``."""
    if observe_s < SETTLE_S + CREEP_WINDOW_S:
        raise ConfigError(f"bench holds: watch each hold at least {SETTLE_S + CREEP_WINDOW_S:g} "
                          f"s (settling, then the creep window); got {observe_s:g} s")
    session = _Session(config or SafetyConfig())
    rng = random.Random(seed)
    for cause in CAUSES:
        for contact in (False, True):
            for _ in range(trials_per_cause):
                yield from run_trial(session, rng, cause, contact, observe_s)


def bench_holds(trials_per_cause: int = 100, observe_s: float = 2.0,
                seed: int = 0) -> dict[str, Any]:
    """The figures above per cause, free and in contact, against the bounds of
    ``docs/safety.md``: ``stop_mm`` within ``STOP_BOUND_M``, ``drift_mm`` within
    ``DRIFT_BOUND_M``."""
    started = time.perf_counter()
    by_case: dict[str, list[HoldTrial]] = {}
    for trial in hold_trials(trials_per_cause, observe_s, seed):
        name = f"{trial.cause}_contact" if trial.contact else trial.cause
        by_case.setdefault(name, []).append(trial)
    cases = {name: _summary(trials) for name, trials in by_case.items()}
    config = SafetyConfig()
    return {
        "bench": "holds",
        "machine": machine_info(),
        "trials_per_cause": trials_per_cause,
        "observe_s": observe_s,
        "seed": seed,
        "limits": {"max_linear_speed_m_s": config.max_linear_speed_m_s,
                   "max_linear_accel_m_s2": config.max_linear_accel_m_s2,
                   "watchdog_ms": config.watchdog_ms},
        "bounds": {"stop_mm": STOP_BOUND_M * 1e3, "stop_ms": STOP_BOUND_MS,
                   "drift_mm": DRIFT_BOUND_M * 1e3, "creep_mm": CREEP_BOUND_M * 1e3,
                   "settle_s": SETTLE_S, "creep_window_s": CREEP_WINDOW_S},
        "cases": cases,
        "passed": all(c["passed"] for c in cases.values()),
        "wall_s": round(time.perf_counter() - started, 1),
    }
