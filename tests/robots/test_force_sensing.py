"""The force the simulated arm reports is the physics' force: a tool pressed into tissue of
known stiffness reads k d, and the sensor passes what a hand feels and stops what a sampled
signal cannot carry."""

from __future__ import annotations

import math

import pytest

from telesurgery.robots.sensor import FORCE_BANDWIDTH_HZ, ForceSensor
from telesurgery.robots.sim.kinematics import JAW_LOWER
from telesurgery.robots.sim.model import TISSUE_BODY
from telesurgery.robots.sim.robot import SimArm, SimRobot
from telesurgery.robots.sim.scene import JAWS_DOWN, PegTransferLayout, TissuePad
from telesurgery.types import Pose

DT = 0.001


class _Press:
    """psm1 over a tissue pad, its tip driven straight down at a steady speed."""

    def __init__(self, pad: TissuePad) -> None:
        self.pad = pad
        self.robot = SimRobot(PegTransferLayout(tissue=pad))
        self.robot.enable()
        self.arm: SimArm = self.robot.arms["psm1"]
        base = self.robot.layout.base_pose("psm1").position
        self.xy = (pad.centre[0] - base[0], pad.centre[1] - base[1])
        self.z = self.arm.setpoint_cp().position[2]
        self.arm.jaw_servo_jp(JAW_LOWER)
        self.to(pad.height + 0.012 - base[2], 0.05)
        self.hold(0.3)

    def _servo(self) -> None:
        self.arm.servo_cp(Pose((*self.xy, self.z), JAWS_DOWN))
        self.robot.step(DT)

    def to(self, z: float, speed_m_s: float) -> None:
        step = speed_m_s * DT
        while abs(z - self.z) > 1e-12:
            self.z += max(-step, min(step, z - self.z))
            self._servo()

    def hold(self, seconds: float) -> None:
        for _ in range(round(seconds / DT)):
            self._servo()

    def touch(self) -> float:
        """Lower the tip at 2 mm/s until the instrument touches; the tip's height then [m]."""
        for _ in range(20_000):
            if self.arm._contacts() is not None:
                return self.arm.measured_cp().position[2]
            self.z -= 0.002 * DT
            self._servo()
        pytest.fail("the instrument never touched the pad")

    def pad_sunk(self) -> float:
        d = self.robot.data
        return -float(d.qpos[self.robot.model.joint(TISSUE_BODY).qposadr[0]])


@pytest.mark.parametrize("stiffness", [400.0, 1500.0])
def test_tissue_of_known_stiffness_pushes_back_k_times_the_depth(stiffness: float) -> None:
    press = _Press(TissuePad(stiffness_n_m=stiffness))
    z0 = press.touch()
    for depth in (0.002, 0.004, 0.006):
        press.to(z0 - depth, 0.005)
        press.hold(0.5)
        sunk = z0 - press.arm.measured_cp().position[2]
        assert sunk > 0.5 * depth  # the arm really pressed
        fx, fy, fz = press.arm.measured_cf().force
        # The tissue pushes the tool up (base frames are level with the world), k d within
        # 10 %, and little sideways on a straight press: the jaws turn a little about the
        # RCM as the tip goes down, and friction, which sticks (the model's no-slip pass),
        # resists their sliding on the pad, well inside the friction cone (1).
        assert fz == pytest.approx(stiffness * sunk, rel=0.1)
        assert math.hypot(fx, fy) < 0.3 * fz
        # The pad itself moved as far as the tip did, give or take the contact's give.
        assert press.pad_sunk() == pytest.approx(sunk, rel=0.1)


def test_the_sensor_passes_what_a_hand_feels_and_stops_what_sampling_cannot_carry() -> None:
    def gain(freq_hz: float) -> float:
        sensor = ForceSensor(1, 1000.0)
        peak = 0.0
        for i in range(2000):
            (y,) = sensor.update((math.sin(2.0 * math.pi * freq_hz * i * DT),))
            if i >= 1000:  # past the transient
                peak = max(peak, abs(y))
        return peak

    assert gain(10.0) == pytest.approx(1.0, abs=0.02)
    assert gain(FORCE_BANDWIDTH_HZ) == pytest.approx(1.0 / math.sqrt(2.0), abs=0.03)
    assert gain(400.0) < 0.1


def test_a_sensor_with_nothing_touching_settles_to_exact_zero() -> None:
    sensor = ForceSensor(2, 1000.0)
    sensor.update((5.0, -1.0))
    assert sensor.value != (0.0, 0.0)
    for _ in range(200):
        sensor.update(None)
    assert sensor.value == (0.0, 0.0)
    with pytest.raises(ValueError, match="half the sampling rate"):
        ForceSensor(1, 1000.0, cutoff_hz=600.0)
