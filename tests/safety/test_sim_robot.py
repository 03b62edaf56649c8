"""The supervisor driving the real MuJoCo robot: engage, follow within limits, hold on silence."""

from __future__ import annotations

import itertools
import math

import pytest

from telesurgery.messages import JawServoJP
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.types import Pose, SafetyState

from .rig import Rig

MM = 1e-3


def test_supervisor_drives_the_simulated_psm_within_limits_and_holds_on_silence() -> None:
    rig = Rig(SimRobot())
    arm = rig.robot.arms["psm1"]
    start = arm.measured_cp()
    rig.engage()
    x, y, z = start.position
    goal = Pose((x + 0.03, y - 0.02, z - 0.02), start.orientation)  # 41 mm away
    setpoints = [arm.setpoint_cp()]
    for _ in range(600):
        assert rig.servo("psm1", goal).accepted
        assert rig.submit(JawServoJP("psm1", 0.6, rig.t_ns)).accepted
        rig.tick()
        setpoints.append(arm.setpoint_cp())
    steps = [a.distance(b) for a, b in itertools.pairwise(setpoints)]
    assert max(steps) <= rig.config.max_linear_speed_m_s * 1e-3 * (1 + 1e-9)
    assert min(math.dist(p.position, (0.0, 0.0, 0.0)) for p in setpoints) >= 0.045
    assert arm.setpoint_cp().distance(goal) < 1e-6
    # The physics tracks the setpoint: the tool tip is where it was sent.
    assert arm.measured_cp().distance(goal) < 2 * MM
    assert arm.jaw_measured_js().position[0] == pytest.approx(0.6, abs=0.05)
    # The console falls silent: after the watchdog the arm holds where it is.
    rig.tick(60)
    assert rig.state() is SafetyState.HOLD
    held = arm.setpoint_cp()
    rig.tick(100)
    assert arm.setpoint_cp().distance(held) < 1e-9
    assert arm.measured_cp().distance(held) < 2 * MM
