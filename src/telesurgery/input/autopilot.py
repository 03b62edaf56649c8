"""An autopilot surgeon: hands that perform the simulated peg transfer by themselves.

It is a simulation-only input device. It knows the board from the scene
layout (``robots.sim.scene``), sees the instruments only as a surgeon does,
through ``feedback`` (tool tip pose in the view frame, jaw opening), and moves
its hands in the view frame as a surgeon at the console would:

- the teleoperation mapping moves the tool by ``scale`` times the hand's
  displacement and re-anchors when the clutch is released, so the hand is
  steered by what it sees: its velocity is the tool's remaining error divided
  by ``scale``, capped at a hand speed and acceleration, which converges
  wherever the anchors are and however late the feedback is (within reason);
- when the hand has drifted more than ``reach_m`` from its neutral position it
  presses the clutch, brings the hand back past neutral and releases, as a
  surgeon re-indexes at the master console;
- for each ring: approach above the tab with the jaws open, descend, close,
  check the grip by the jaw opening (an empty jaw closes further), lift over
  the pegs, carry, lower onto the target peg, open, retreat, park; the arms
  take turns, one ring each, and when every ring is across, the rings go back.

The other training tasks (``telesurgery.tasks``) have their own pilots, built by
``autopilot_for``: ``HandoverPilot`` (the left arm lifts a ring to the middle and holds
it, the right one takes it by its second tab, the left lets go, the right places it on
its target peg) and ``TracePilot`` (the right arm traces the circle of marks, mark to
mark). A step may wait on the other hand (``_Step.until``), as one surgeon's hand waits
on the other's.

Positions [m], speeds [m/s], angles [rad], times [ns] (``read``) or [s].
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from telesurgery.errors import ConfigError
from telesurgery.geometry import (
    FloatArray,
    Quat,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_rotvec,
    rotvec_to_quat,
)
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.robots.sim.model import JAW_GRASP_DEPTH_M
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, JAWS_DOWN, PegTransferLayout
from telesurgery.types import Pose

GRIP_OPEN: Final = 0.83
"""Grip while approaching a ring: about 0.8 rad of jaw opening with the console's mapping."""
GRIP_CLOSED: Final = 0.0
HELD_JAW_MIN_RAD: Final = -0.12
"""A closed jaw that stops above this opening [rad] holds something; an empty one closes
to about -0.2 rad."""
LIFT_M: Final = 0.03
"""Height [m] above the grasp at which rings travel: their bottom clears the peg tops."""
RELEASE_ABOVE_M: Final = 0.003
"""Height [m] above its resting place at which a ring is let go."""
GRASP_BELOW_TAB_TOP_M: Final = 0.003
"""Depth [m] below the tab's top at which the middle of the jaws closes on it."""
_NEUTRAL: Final = {"psm1": (0.10, 0.0, 0.30), "psm2": (-0.10, 0.0, 0.30)}
_MAX_READ_GAP_S: Final = 0.05
_REINDEX_SPEED_M_S: Final = 0.5
_REINDEX_ACCEL_M_S2: Final = 3.0
_TURN_RATE_RAD_S: Final = 1.5


class Phase(enum.Enum):
    """What an arm is doing for its current ring."""

    IDLE = "idle"
    APPROACH = "approach"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    CARRY = "carry"
    LOWER = "lower"
    RELEASE = "release"
    RETREAT = "retreat"
    PARK = "park"
    WAIT = "wait"
    HOLD = "hold"
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class Job:
    """Move ring ``ring`` from peg ``source`` to peg ``target`` with arm ``arm``."""

    arm: str
    ring: int
    source: int
    target: int


@dataclass(frozen=True, slots=True)
class _Step:
    """One phase: the tool tip target [m, view frame], the grip, the position tolerance
    [m] that ends it, and how long [s] to dwell once there."""

    phase: Phase
    target: FloatArray
    grip: float
    tolerance_m: float
    dwell_s: float
    until: Callable[[], bool] | None = None
    """What must also hold before the step ends (the other hand's progress)."""


class _Hand:
    """One hand and what it is doing: pose in the view frame, velocity, grip, clutch, the
    job and its remaining steps, and the latest view of its instrument."""

    def __init__(self, neutral: tuple[float, float, float]) -> None:
        self.neutral = np.array(neutral, dtype=np.float64)
        self.position = self.neutral.copy()
        self.velocity = np.zeros(3)
        self.rotation: Quat = (1.0, 0.0, 0.0, 0.0)
        self.grip = GRIP_CLOSED
        self.clutch = True
        self.reindex_to: FloatArray | None = None
        self.reindex_hold_s = 0.0
        self.tip: Pose | None = None
        self.jaw = 0.0
        self.aligned = False
        self.job: Job | None = None
        self.steps: list[_Step] = []
        self.dwell_s = 0.0
        self.retries = 0

    @property
    def busy(self) -> bool:
        """True while the hand works on the board (anything but parking or idling)."""
        return bool(self.steps) and self.steps[0].phase != Phase.PARK


class Autopilot(InputDevice):
    """Performs the peg transfer of ``layout`` with the arms ``arms``.

    ``scale``: the console's motion scale (tool over hand displacement);
    ``hand_speed_m_s`` and ``hand_accel_m_s2``: the hand's limits (a surgeon's
    hand at the master moves at about 0.1-0.3 m/s); ``reach_m``: how far the
    hand goes from its neutral position before it re-indexes with the clutch;
    ``gain_per_s``: how fast it closes the gap it sees [1/s].
    """

    auto_reclutch = True

    def __init__(self, arms: tuple[str, ...] = ("psm1", "psm2"), scale: float = 0.2,
                 layout: PegTransferLayout = DEFAULT_LAYOUT, rate_hz: float = 1000.0,
                 hand_speed_m_s: float = 0.2, hand_accel_m_s2: float = 1.5,
                 reach_m: float = 0.1, gain_per_s: float = 5.0) -> None:
        if not arms:
            raise ConfigError("the autopilot needs at least one arm, e.g. ('psm1',)")
        unknown = [a for a in arms if a not in layout.arms or a not in _NEUTRAL]
        if unknown:
            raise ConfigError(f"the autopilot cannot drive {unknown}; the peg-transfer scene "
                              f"has {', '.join(layout.arms)}")
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"motion scale {scale} must be in (0, 1]; the dVRK uses 0.2")
        for name, value in (("rate_hz", rate_hz), ("hand_speed_m_s", hand_speed_m_s),
                            ("hand_accel_m_s2", hand_accel_m_s2), ("reach_m", reach_m),
                            ("gain_per_s", gain_per_s)):
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(f"autopilot {name} = {value} must be positive")
        self.arms = tuple(arms)
        self.rate_hz = rate_hz
        self.scale = scale
        self.layout = layout
        self.hand_speed = hand_speed_m_s
        self.hand_accel = hand_accel_m_s2
        self.reach = reach_m
        self.gain = gain_per_s
        self.clutch_presses = 0
        self.grasp_misses = 0
        self._hands = {a: _Hand(_NEUTRAL[a]) for a in self.arms}
        self._view_from_world = layout.camera.pose_opencv().inverse()
        self._jaws_in_view = {
            a: quat_normalize(quat_mul(self._view_from_world.orientation,
                                       quat_mul(layout.base_pose(a).orientation, JAWS_DOWN)))
            for a in self.arms}
        self._jobs = self._job_stream()
        self._last_ns: int | None = None

    # -- the device interface ----------------------------------------------------------

    def feedback(self, arm: str, tip_in_view: Pose, jaw: float) -> None:
        hand = self._hands.get(arm)
        if hand is not None and tip_in_view.is_finite() and math.isfinite(jaw):
            hand.tip = tip_in_view
            hand.jaw = jaw

    def rescale(self, scale: float) -> None:
        if 0.0 < scale <= 1.0:
            self.scale = scale

    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        dt = 0.0 if self._last_ns is None else (now_ns - self._last_ns) * 1e-9
        self._last_ns = now_ns
        dt = min(max(dt, 0.0), _MAX_READ_GAP_S)
        if dt > 0.0:
            self._advance(dt)
        return {a: HandSample(now_ns, Pose(_vec(h.position), h.rotation), h.grip, h.clutch)
                for a, h in self._hands.items()}

    # -- what a test or a display may look at --------------------------------------------

    def phase(self, arm: str) -> Phase:
        """What ``arm`` is doing now."""
        steps = self._hands[arm].steps
        return steps[0].phase if steps else Phase.IDLE

    def job(self, arm: str) -> Job | None:
        """The ring ``arm`` moves (or last moved), from and to which peg."""
        return self._hands[arm].job

    # -- planning --------------------------------------------------------------------------

    def _job_stream(self) -> Iterator[Job]:
        lay = self.layout
        where = list(lay.start_pegs)
        direction = 0
        while True:
            goals = lay.target_pegs if direction == 0 else lay.start_pegs
            for ring in range(lay.rings):
                arm = self.arms[ring % len(self.arms)]
                yield Job(arm, ring, where[ring], goals[ring])
                where[ring] = goals[ring]
            direction ^= 1

    def _in_view(self, world: tuple[float, float, float] | FloatArray) -> FloatArray:
        p = self._view_from_world.compose(Pose(_vec(np.asarray(world)))).position
        return np.array(p)

    def _tip_over_ring(self, peg: int, above_m: float, side: int = -1) -> FloatArray:
        """Tool tip [m, world] whose jaws' middle is on the tab (``side``: -1 the first, 1
        the second) of a ring resting on ``peg``, raised by ``above_m``."""
        return self._tip_over(self.layout.ring_on_peg(peg), above_m, side)

    def _tip_over(self, centre_m: tuple[float, float, float], above_m: float,
                  side: int = -1) -> FloatArray:
        """Tool tip [m, world] whose jaws' middle is on the tab on ``side`` of a ring
        centred at ``centre_m`` [m], raised by ``above_m``."""
        ring = self.layout.ring
        centre = np.array(centre_m)
        tab = centre + np.array(ring.tab_offset(side))
        grasp_z = tab[2] + ring.tab_half[2] - GRASP_BELOW_TAB_TOP_M
        return np.array([tab[0], tab[1], grasp_z + JAW_GRASP_DEPTH_M + above_m])

    def _plan(self, job: Job) -> list[_Step]:
        src_up = self._in_view(self._tip_over_ring(job.source, LIFT_M))
        src = self._in_view(self._tip_over_ring(job.source, 0.0))
        dst_up = self._in_view(self._tip_over_ring(job.target, LIFT_M))
        dst = self._in_view(self._tip_over_ring(job.target, RELEASE_ABOVE_M))
        park = self._park(job.arm)
        # Via points need no precision; the jaws around the tab and the ring over its
        # peg need a millimetre.
        return [
            _Step(Phase.APPROACH, src_up, GRIP_OPEN, 0.004, 0.0),
            _Step(Phase.DESCEND, src, GRIP_OPEN, 0.001, 0.1),
            _Step(Phase.CLOSE, src, GRIP_CLOSED, 0.002, 0.3),
            _Step(Phase.LIFT, src_up, GRIP_CLOSED, 0.004, 0.0),
            _Step(Phase.CARRY, dst_up, GRIP_CLOSED, 0.0015, 0.1),
            _Step(Phase.LOWER, dst, GRIP_CLOSED, 0.0015, 0.1),
            _Step(Phase.RELEASE, dst, GRIP_OPEN, 0.002, 0.3),
            _Step(Phase.RETREAT, dst_up, GRIP_OPEN, 0.004, 0.0),
            _Step(Phase.PARK, park, GRIP_CLOSED, 0.004, 0.0),
        ]

    def _park(self, arm: str) -> FloatArray:
        """Where ``arm``'s tip parks [m, view frame]: its home."""
        base = self.layout.base_pose(arm)
        return self._in_view(base.compose(self.layout.home_tip(arm)).position)

    # -- acting ----------------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        for hand in self._hands.values():
            if hand.tip is not None and not hand.aligned:
                # Like a master console aligning its wrist to the instrument before
                # teleoperation starts: the hand takes the tool's orientation.
                hand.rotation = hand.tip.orientation
                hand.aligned = True
        if any(h.tip is None for h in self._hands.values()):
            return
        if not any(h.busy for h in self._hands.values()):
            self._next_jobs()
        for arm, hand in self._hands.items():
            self._drive(arm, hand, dt)

    def _next_jobs(self) -> None:
        """Give the hands their next work: one ring at a time; the arm that placed the last
        one parks meanwhile."""
        self._assign(next(self._jobs))

    def _assign(self, job: Job) -> None:
        hand = self._hands[job.arm]
        hand.job = job
        hand.steps = self._plan(job)
        hand.dwell_s = 0.0
        hand.retries = 0

    def _drive(self, arm: str, hand: _Hand, dt: float) -> None:
        assert hand.tip is not None
        if hand.reindex_to is not None:
            self._reindex(hand, dt)
            return
        if hand.clutch:
            hand.clutch = False
            return
        if not hand.steps:
            self._steer(hand, np.zeros(3), dt)
            return
        self._work(arm, hand, hand.steps[0], dt)

    def _work(self, arm: str, hand: _Hand, step: _Step, dt: float) -> None:
        """Move ``hand`` on ``step`` of its plan (clutch and re-indexing are done)."""
        assert hand.tip is not None
        self._turn(arm, hand, dt)
        hand.grip = _approach(hand.grip, step.grip, 3.0 * dt)
        error = step.target - np.array(hand.tip.position)
        distance = float(np.linalg.norm(error))
        # Tool velocity wanted: proportional to the error, slowed to stop in time.
        tool_speed = min(self.gain * distance, self.hand_speed * self.scale,
                         math.sqrt(2.0 * self.hand_accel * self.scale * distance))
        wanted = error / distance * tool_speed / self.scale if distance > 1e-9 else np.zeros(3)
        self._steer(hand, wanted, dt)
        offset = hand.position - hand.neutral
        if float(np.linalg.norm(offset)) > self.reach and step.phase not in (
                Phase.CLOSE, Phase.RELEASE):
            self._start_reindex(hand, error)
            return
        if distance <= step.tolerance_m and hand.grip == step.grip and (
                step.until is None or step.until()):
            hand.dwell_s += dt
            if hand.dwell_s >= step.dwell_s:
                self._finish(hand, step)

    def _finish(self, hand: _Hand, step: _Step) -> None:
        hand.dwell_s = 0.0
        if step.phase == Phase.CLOSE and hand.jaw < HELD_JAW_MIN_RAD and hand.job is not None:
            # The jaw closed on nothing: open, go back up and try again; after three
            # misses, park and leave that ring.
            self.grasp_misses += 1
            hand.retries += 1
            plan = self._plan(hand.job)
            hand.steps = plan[-1:] if hand.retries > 2 else plan
            return
        hand.steps.pop(0)

    def _steer(self, hand: _Hand, wanted: FloatArray, dt: float,
               accel: float | None = None) -> None:
        """Change the hand's velocity toward ``wanted`` within the acceleration limit."""
        change = wanted - hand.velocity
        limit = (accel or self.hand_accel) * dt
        norm = float(np.linalg.norm(change))
        if norm > limit:
            change *= limit / norm
        hand.velocity = hand.velocity + change
        hand.position = hand.position + hand.velocity * dt

    def _turn(self, arm: str, hand: _Hand, dt: float) -> None:
        """Rotate the hand so the tool turns toward the jaws-down orientation."""
        assert hand.tip is not None
        err = quat_to_rotvec(quat_mul(self._jaws_in_view[arm], quat_conj(hand.tip.orientation)))
        angle = math.sqrt(err[0] ** 2 + err[1] ** 2 + err[2] ** 2)
        if angle < 1e-6:
            return
        k = min(_TURN_RATE_RAD_S, self.gain * angle) * dt / angle
        hand.rotation = quat_normalize(
            quat_mul(rotvec_to_quat((err[0] * k, err[1] * k, err[2] * k)), hand.rotation))

    def _start_reindex(self, hand: _Hand, error: FloatArray) -> None:
        """Press the clutch and plan the hand's way back past neutral, so that the coming
        motion (along ``error``) starts with room."""
        self.clutch_presses += 1
        hand.clutch = True
        norm = float(np.linalg.norm(error))
        ahead = error / norm if norm > 1e-9 else np.zeros(3)
        hand.reindex_to = hand.neutral - ahead * (0.5 * self.reach)
        hand.reindex_hold_s = 0.0

    def _reindex(self, hand: _Hand, dt: float) -> None:
        assert hand.reindex_to is not None
        error = hand.reindex_to - hand.position
        distance = float(np.linalg.norm(error))
        # Clutched, the hand needs no precision and moves faster.
        speed = min(_REINDEX_SPEED_M_S, self.gain * 3.0 * distance,
                    math.sqrt(2.0 * _REINDEX_ACCEL_M_S2 * distance))
        wanted = error / distance * speed if distance > 1e-9 else np.zeros(3)
        self._steer(hand, wanted, dt, _REINDEX_ACCEL_M_S2)
        if distance < 0.002:
            hand.reindex_hold_s += dt
            if hand.reindex_hold_s >= 0.05:
                hand.reindex_to = None
                hand.velocity = np.zeros(3)
                hand.clutch = False


class HandoverPilot(Autopilot):
    """The handover (``scene.TASK_LAYOUTS["handover"]``): for each ring, the giver (psm2,
    on the left) takes it by its first tab and holds it in the air over the middle of the
    board; the taker (psm1) takes it there by its second tab; the giver lets go and
    parks; the taker lowers it onto its target peg. Needs both arms."""

    GIVER: Final = "psm2"
    TAKER: Final = "psm1"

    def __init__(self, arms: tuple[str, ...] = ("psm1", "psm2"), scale: float = 0.2,
                 layout: PegTransferLayout = DEFAULT_LAYOUT, **kwargs: float) -> None:
        if set(arms) != {self.GIVER, self.TAKER} or layout.ring.tabs < 2:
            raise ConfigError("the handover needs both arms, psm1 and psm2, and rings with "
                              "two tabs (the handover's board)")
        super().__init__(arms, scale, layout, **kwargs)
        self._ring = 0

    def _next_jobs(self) -> None:
        lay = self.layout
        ring = self._ring % lay.rings
        self._ring += 1
        source, target = lay.start_pegs[ring], lay.target_pegs[ring]
        # The jobs alternate direction, as the peg transfer's: across, then back.
        if (self._ring - 1) // lay.rings % 2:
            source, target = target, source
        self._assign(Job(self.GIVER, ring, source, target))
        self._assign(Job(self.TAKER, ring, source, target))

    def _plan(self, job: Job) -> list[_Step]:
        _x, y, z = self.layout.ring_on_peg(job.source)
        mid = (0.0, y, z)
        park = self._park(job.arm)
        if job.arm == self.GIVER:
            src_up = self._in_view(self._tip_over_ring(job.source, LIFT_M))
            src = self._in_view(self._tip_over_ring(job.source, 0.0))
            held = self._in_view(self._tip_over(mid, LIFT_M))
            return [
                _Step(Phase.APPROACH, src_up, GRIP_OPEN, 0.004, 0.0),
                _Step(Phase.DESCEND, src, GRIP_OPEN, 0.001, 0.1),
                _Step(Phase.CLOSE, src, GRIP_CLOSED, 0.002, 0.3),
                _Step(Phase.LIFT, src_up, GRIP_CLOSED, 0.004, 0.0),
                _Step(Phase.CARRY, held, GRIP_CLOSED, 0.0015, 0.2),
                _Step(Phase.HOLD, held, GRIP_CLOSED, 0.003, 0.0,
                      lambda: self.phase(self.TAKER) is Phase.HOLD),
                _Step(Phase.RELEASE, held, GRIP_OPEN, 0.003, 0.3),
                _Step(Phase.RETREAT, self._in_view(self._tip_over(mid, LIFT_M + 0.02)),
                      GRIP_OPEN, 0.004, 0.0),
                _Step(Phase.PARK, park, GRIP_CLOSED, 0.004, 0.0),
            ]
        above = self._in_view(self._tip_over(mid, LIFT_M + 0.015, 1))
        take = self._in_view(self._tip_over(mid, LIFT_M, 1))
        dst_up = self._in_view(self._tip_over_ring(job.target, LIFT_M, 1))
        dst = self._in_view(self._tip_over_ring(job.target, RELEASE_ABOVE_M, 1))
        return [
            _Step(Phase.WAIT, park, GRIP_CLOSED, 0.004, 0.0,
                  lambda: self.phase(self.GIVER) is Phase.HOLD),
            _Step(Phase.APPROACH, above, GRIP_OPEN, 0.004, 0.0),
            _Step(Phase.DESCEND, take, GRIP_OPEN, 0.001, 0.1),
            _Step(Phase.CLOSE, take, GRIP_CLOSED, 0.002, 0.3),
            _Step(Phase.HOLD, take, GRIP_CLOSED, 0.003, 0.0,
                  lambda: self.phase(self.GIVER) in (Phase.RETREAT, Phase.PARK,
                                                    Phase.IDLE)),
            _Step(Phase.CARRY, dst_up, GRIP_CLOSED, 0.0015, 0.1),
            _Step(Phase.LOWER, dst, GRIP_CLOSED, 0.0015, 0.1),
            _Step(Phase.RELEASE, dst, GRIP_OPEN, 0.002, 0.3),
            _Step(Phase.RETREAT, dst_up, GRIP_OPEN, 0.004, 0.0),
            _Step(Phase.PARK, park, GRIP_CLOSED, 0.004, 0.0),
        ]


class TracePilot(Autopilot):
    """The precision task (``scene.TASK_LAYOUTS["precision"]``): psm1 comes down onto the
    first mark and traces the circle mark to mark, straight between them, then parks."""

    TRACER: Final = "psm1"

    def __init__(self, arms: tuple[str, ...] = ("psm1", "psm2"), scale: float = 0.2,
                 layout: PegTransferLayout = DEFAULT_LAYOUT, **kwargs: float) -> None:
        if self.TRACER not in arms or not layout.marks:
            raise ConfigError("the precision task is traced by psm1 on a board with marks "
                              "(the precision task's board)")
        super().__init__(arms, scale, layout, **kwargs)

    def _next_jobs(self) -> None:
        self._assign(Job(self.TRACER, -1, 0, 0))

    def _plan(self, job: Job) -> list[_Step]:
        marks = [self._in_view(m) for m in self.layout.marks]
        first = self.layout.marks[0]
        above = self._in_view((first[0], first[1], first[2] + 0.015))
        # Within 0.8 mm of each mark: well inside the 2 mm the task allows.
        return [_Step(Phase.APPROACH, above, GRIP_CLOSED, 0.004, 0.0),
                *(_Step(Phase.TRACE, m, GRIP_CLOSED, 0.0008, 0.0) for m in marks),
                _Step(Phase.RETREAT, above, GRIP_CLOSED, 0.004, 0.0),
                _Step(Phase.PARK, self._park(job.arm), GRIP_CLOSED, 0.004, 0.0)]


PILOTS: Final[Mapping[str, type[Autopilot]]] = {
    "peg_transfer": Autopilot, "handover": HandoverPilot, "precision": TracePilot}
"""The pilot of each training task."""


def autopilot_for(layout: PegTransferLayout, arms: tuple[str, ...] = ("psm1", "psm2"),
                  scale: float = 0.2) -> Autopilot:
    """The pilot that performs the task of ``layout`` (``layout.task``)."""
    try:
        pilot = PILOTS[layout.task]
    except KeyError:
        raise ConfigError(f"no autopilot for task {layout.task!r}; it does "
                          f"{', '.join(sorted(PILOTS))}") from None
    return pilot(arms=arms, scale=scale, layout=layout)


def _approach(value: float, goal: float, max_change: float) -> float:
    if abs(goal - value) <= max_change:
        return goal
    return value + math.copysign(max_change, goal - value)


def _vec(a: FloatArray) -> tuple[float, float, float]:
    return (float(a[0]), float(a[1]), float(a[2]))


__all__ = ["GRIP_OPEN", "HELD_JAW_MIN_RAD", "LIFT_M", "PILOTS", "Autopilot", "HandoverPilot",
           "Job", "Phase", "TracePilot", "autopilot_for"]
