"""The supervisor's force and grip caps on the MuJoCo arm: however the hand pushes, the force
at the tip settles at the cap, and the jaws squeeze no harder than theirs.

Bounds, stated in docs/safety.md: a strike at up to the full 0.25 m/s on the rigid board
peaks under ``STRIKE_PEAK_N`` for the first instants (the arm's momentum, which no
controller behind a sensor can take back); ``SETTLE_S`` after the tip met the surface, and
for as long as it stays on it, whatever the hand does, the force stays under the cap plus
``SETTLED_MARGIN_N``.
"""

from __future__ import annotations

import math
import random

from telesurgery.config import SafetyConfig
from telesurgery.messages import JawServoJP, Message, SafetyCause, SafetyEvent, ServoCP
from telesurgery.patient.audit import classify
from telesurgery.record.audit import AuditKind
from telesurgery.robots.sim.model import JAW_GRASP_DEPTH_M
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.robots.sim.scene import JAWS_DOWN
from telesurgery.safety.supervisor import Supervisor
from telesurgery.types import ArmMode, Pose

PERIOD_NS = 1_000_000
BOARD_Z = -0.19
"""The board's surface in psm1's base frame [m] (its RCM is 0.19 m above the board)."""
SPOT = (-0.02, -0.03)
"""Where psm1 presses [m, base frame]: beside the board's edge, clear of pegs and rings."""
STRIKE_PEAK_N = 60.0
SETTLED_MARGIN_N = 5.0
"""What sliding adds: the cap holds the force along the contact's normal, and a tip
dragged along the board at speed feels its friction (a coefficient of 1 in the model)
on top, until the limiter has taken the excess back."""
SETTLE_S = 0.15
GRIP_MARGIN_N = 0.3
"""How far [N] the grip may overshoot its cap: the jaws close at up to 8 rad/s, a finger's
servo adds about 0.15 N a tick at the grasp, and the sensor's delay is 2 to 3 ticks."""


class _Rig:
    """The supervisor over the simulated robot on simulated time, one console session."""

    def __init__(self, config: SafetyConfig) -> None:
        self.t_ns = 10**12
        self.robot = SimRobot()
        self.events: list[SafetyEvent] = []
        self.ticks = 0
        self.capped_at: int | None = None
        """The tick at which psm1's force last reached the cap, while the cap holds."""
        self.sup = Supervisor(self.robot, config, self._event, clock=lambda: self.t_ns)
        self.seq = 0
        self.robot.enable()
        self.sup.enable()
        for arm in self.robot.arms:
            self.servo(arm, self.robot.arms[arm].setpoint_cp(), clutch=True)
        self.tick()
        for arm in self.robot.arms:
            self.servo(arm, self.robot.arms[arm].setpoint_cp())
        assert self.sup.mode("psm1") is ArmMode.FOLLOWING

    def _event(self, ev: SafetyEvent) -> None:
        self.events.append(ev)
        if ev.arm == "psm1" and ev.cause is SafetyCause.FORCE_LIMIT:
            self.capped_at = self.ticks
        elif ev.arm == "psm1" and ev.cause is SafetyCause.FORCE_CLEARED:
            self.capped_at = None

    def servo(self, arm: str, pose: Pose, clutch: bool = False) -> None:
        self.seq += 1
        self.sup.submit(Message(1, self.seq, self.t_ns,
                                ServoCP(arm, pose, self.t_ns, clutch)), self.t_ns)

    def jaw(self, arm: str, angle: float) -> None:
        self.seq += 1
        self.sup.submit(Message(1, self.seq, self.t_ns, JawServoJP(arm, angle, self.t_ns)),
                        self.t_ns)

    def tick(self) -> None:
        self.sup.tick(self.t_ns)
        self.robot.step(PERIOD_NS * 1e-9)
        self.t_ns += PERIOD_NS
        self.ticks += 1

    def drive(self, goal: Pose, seconds: float) -> list[float]:
        """Send psm1 ``goal`` every tick for ``seconds``, psm2 where it is; psm1's force
        magnitude [N] after each tick."""
        other = self.robot.arms["psm2"].setpoint_cp()
        forces = []
        for _ in range(round(seconds / (PERIOD_NS * 1e-9))):
            self.servo("psm1", goal)
            self.servo("psm2", other)
            self.tick()
            forces.append(math.hypot(*self.robot.arms["psm1"].measured_cf().force))
        return forces

    def causes(self) -> list[SafetyCause]:
        return [e.cause for e in self.events]


def _above(height: float, dx: float = 0.0, dy: float = 0.0) -> Pose:
    return Pose((SPOT[0] + dx, SPOT[1] + dy, BOARD_Z + height), JAWS_DOWN)


def test_a_full_speed_strike_on_the_board_settles_at_the_cap_and_lifts_off_freely() -> None:
    cap = 8.0
    rig = _Rig(SafetyConfig(force_cap_n=cap))
    rig.drive(_above(0.02), 1.5)
    # The hand drives 20 mm into the board at the speed limit and keeps pushing.
    forces = rig.drive(_above(-0.02), 1.5)
    first = next(i for i, f in enumerate(forces) if f > 0.0)
    assert max(forces) < STRIKE_PEAK_N
    settled = forces[first + round(SETTLE_S * 1000):]
    assert max(settled) < cap + SETTLED_MARGIN_N
    assert min(settled[-500:]) > cap - SETTLED_MARGIN_N  # held at the cap, not let go
    assert rig.causes().count(SafetyCause.FORCE_LIMIT) == 1
    limit = next(e for e in rig.events if e.cause is SafetyCause.FORCE_LIMIT)
    assert limit.arm == "psm1"
    assert limit.state is limit.previous  # a limit, not a transition
    assert classify(limit)[0] is AuditKind.FORCE_LIMIT
    snap = rig.sup.snapshot()
    assert snap["force_limits"] == 1
    assert snap["force_capped_s"] > 1.0
    # Lifting the hand lets go of the cap at once and the tool follows at full speed.
    rig.drive(_above(0.02), 0.4)
    assert SafetyCause.FORCE_CLEARED in rig.causes()
    assert rig.robot.arms["psm1"].measured_cp().distance(_above(0.02)) < 0.001
    assert rig.sup.mode("psm1") is ArmMode.FOLLOWING


def test_no_input_sequence_presses_through_the_cap() -> None:
    cap = 5.0
    rng = random.Random(13)
    rig = _Rig(SafetyConfig(force_cap_n=cap))
    rig.drive(_above(0.02), 1.0)
    worst_settled = peak = 0.0
    touched = rig.ticks
    # Random goals into the board and above it (its jaws touch it 10 mm above BOARD_Z),
    # re-aimed every 30 to 300 ms: strikes at any speed up to the limit, slides along the
    # board while pressing, lifts and returns. Each strike may peak; once the cap has held
    # for SETTLE_S of contact, nothing may press through it.
    for i in range(40):
        height = rng.uniform(-0.03, 0.005) if i % 3 else rng.uniform(0.015, 0.03)
        goal = _above(height, rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01))
        for _ in range(round(rng.uniform(0.03, 0.3) * 1000)):
            (f,) = rig.drive(goal, 0.001)
            peak = max(peak, f)
            if f < 0.05 * cap:
                touched = rig.ticks  # off the surface: the next contact is a new strike
            if rig.capped_at is not None and \
                    rig.ticks - max(rig.capped_at, touched) > SETTLE_S * 1000:
                worst_settled = max(worst_settled, f)
    assert peak < STRIKE_PEAK_N
    assert rig.causes().count(SafetyCause.FORCE_LIMIT) >= 3  # the sequence did press
    assert worst_settled < cap + SETTLED_MARGIN_N


def _grasp_ring(config: SafetyConfig) -> tuple[_Rig, list[float]]:
    """psm2 lowers its open jaws astride ring 0's tab and closes them on it; the grip [N]
    after each tick of the closing."""
    rig = _Rig(config)
    lay = rig.robot.layout
    base = lay.base_pose("psm2").position
    x, y, z = (a + b for a, b in zip(lay.ring_on_peg(0), lay.ring.tab_offset(), strict=True))
    grasp_z = z + lay.ring.tab_half[2] - 0.003 + JAW_GRASP_DEPTH_M

    def at(height: float) -> Pose:
        return Pose((x - base[0], y - base[1], grasp_z + height - base[2]), JAWS_DOWN)

    def drive(goal: Pose, jaw: float, seconds: float) -> list[float]:
        other = rig.robot.arms["psm1"].setpoint_cp()
        grips = []
        for _ in range(round(seconds / (PERIOD_NS * 1e-9))):
            rig.servo("psm2", goal)
            rig.jaw("psm2", jaw)
            rig.servo("psm1", other)
            rig.tick()
            grips.append(rig.robot.arms["psm2"].grip_force())
        return grips

    drive(at(0.03), 0.8, 1.0)
    drive(at(0.0), 0.8, 0.5)
    assert rig.robot.arms["psm2"].grip_force() == 0.0
    return rig, drive(at(0.0), -0.2, 0.5)


def test_the_jaws_close_no_further_at_the_grip_cap() -> None:
    free_rig, free = _grasp_ring(SafetyConfig())
    cap = 0.5
    # Without a cap within reach the fingers squeeze the tab well past it.
    assert max(free[-100:]) > cap + GRIP_MARGIN_N
    assert SafetyCause.GRIP_LIMIT not in free_rig.causes()
    rig, grips = _grasp_ring(SafetyConfig(grip_cap_n=cap))
    assert max(grips) < cap + GRIP_MARGIN_N
    assert min(grips[-100:]) > 0.5 * cap  # still holding the ring
    assert rig.causes().count(SafetyCause.GRIP_LIMIT) == 1
    assert rig.sup.snapshot()["grip_limits"] == 1
