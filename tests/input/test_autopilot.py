"""The autopilot surgeon closing the loop on the simulated robot through the teleop mapping."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np
import pytest

from telesurgery.config import ConsoleConfig, SafetyConfig
from telesurgery.errors import ConfigError
from telesurgery.geometry import quat_conj, quat_mul, quat_normalize
from telesurgery.input.autopilot import Autopilot, Phase
from telesurgery.input.base import HandSample
from telesurgery.input.registry import make_device
from telesurgery.robots.sim.kinematics import tip_rcm_distance
from telesurgery.robots.sim.model import ring_body_name
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.types import Pose

PERIOD_NS = 1_000_000
SCALE = 0.2


class Mapping:
    """The console's teleoperation mapping, in its few essential lines (no tremor filter).

    On clutch release: anchor the hand pose H0 and the measured tool pose T0 (view
    frame). Engaged: target = T0.pos + scale (H.pos - H0.pos), rotation (H H0^-1) T0;
    grip 0..1 maps to jaw -0.2..1.0 rad. Clutched: no command.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.anchor: tuple[Pose, Pose] | None = None

    def step(self, hand: HandSample, tool_in_view: Pose) -> tuple[Pose, float] | None:
        if hand.clutch:
            self.anchor = None
            return None
        if self.anchor is None:
            self.anchor = (hand.pose, tool_in_view)
        h0, t0 = self.anchor
        s = self.scale
        position = (t0.position[0] + s * (hand.pose.position[0] - h0.position[0]),
                    t0.position[1] + s * (hand.pose.position[1] - h0.position[1]),
                    t0.position[2] + s * (hand.pose.position[2] - h0.position[2]))
        relative = quat_mul(hand.pose.orientation, quat_conj(h0.orientation))
        target = Pose(position, quat_normalize(quat_mul(relative, t0.orientation)))
        return target, -0.2 + 1.2 * hand.grip


@dataclass
class Loop:
    """SimRobot at 1 kHz, the autopilot read every tick, the mapping, servo_cp, feedback."""

    robot: SimRobot
    pilot: Autopilot
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    tick: int = 0
    outside_workspace: int = 0
    min_rcm_distance_m: float = math.inf
    max_engaged_hand_speed: float = 0.0
    clutched_ticks: int = 0

    def run_until(self, done: Callable[[], bool], max_sim_s: float) -> None:
        """Tick until ``done()`` or ``max_sim_s`` [s] of simulated time."""
        mappings = {a: Mapping(self.pilot.scale) for a in self.pilot.arms}
        reg = {a: self.robot.arms[a].registration() for a in self.pilot.arms}
        lo, hi = np.array(self.safety.workspace_min_m), np.array(self.safety.workspace_max_m)
        previous = {a: np.zeros(3) for a in self.pilot.arms}
        for _ in range(round(max_sim_s * 1000)):
            now = self.tick * PERIOD_NS
            samples = self.pilot.read(now)
            assert set(samples) == set(self.pilot.arms)
            for name, sample in samples.items():
                assert sample.t_ns == now
                arm = self.robot.arms[name]
                hand = np.array(sample.pose.position)
                if sample.clutch:
                    self.clutched_ticks += 1
                elif self.tick:
                    speed = float(np.linalg.norm(hand - previous[name])) * 1000.0
                    self.max_engaged_hand_speed = max(self.max_engaged_hand_speed, speed)
                previous[name] = hand
                command = mappings[name].step(sample, reg[name].compose(arm.measured_cp()))
                if command is not None:
                    target, jaw = command
                    arm.servo_cp(reg[name].inverse().compose(target))
                    arm.jaw_servo_jp(jaw)
            self.robot.step(PERIOD_NS * 1e-9)
            self.tick += 1
            for name in self.pilot.arms:
                arm = self.robot.arms[name]
                tip = arm.measured_cp()
                p = np.array(tip.position)
                if (p < lo).any() or (p > hi).any():
                    self.outside_workspace += 1
                self.min_rcm_distance_m = min(self.min_rcm_distance_m, tip_rcm_distance(tip))
                self.pilot.feedback(name, reg[name].compose(tip), arm.jaw_measured_js().position[0])
            if done():
                return


def test_the_autopilot_transfers_a_ring_within_the_safety_workspace() -> None:
    robot = SimRobot()
    robot.enable()
    pilot = Autopilot(arms=("psm1", "psm2"), scale=SCALE)
    loop = Loop(robot, pilot)
    loop.run_until(lambda: robot.peg_transfer().completed >= 1, max_sim_s=40.0)
    status = robot.peg_transfer()
    assert status.completed >= 1, f"no transfer in {robot.time_s:.1f} s simulated"
    assert status.on_target >= 1
    # It ran in simulated time, at realistic hand speeds, re-indexing with the clutch.
    assert robot.time_s <= 40.0
    assert pilot.clutch_presses >= 1
    assert loop.clutched_ticks > 0
    assert 0.05 < loop.max_engaged_hand_speed <= pilot.hand_speed * 1.01
    assert pilot.grasp_misses == 0
    # Never outside the supervisor's default workspace, never near the RCM.
    assert loop.outside_workspace == 0
    assert loop.min_rcm_distance_m >= loop.safety.rcm_min_distance_m


def test_a_missing_ring_is_a_missed_grasp_and_the_autopilot_retries() -> None:
    robot = SimRobot()
    # Take ring 0 off the board before anyone looks: the first grasp closes on nothing.
    joint = robot.model.body(ring_body_name(0)).jntadr[0]
    adr = robot.model.jnt_qposadr[joint]
    robot.data.qpos[adr:adr + 3] = (0.3, 0.3, 0.0015)
    mujoco.mj_forward(robot.model, robot.data)
    robot.enable()
    pilot = Autopilot(arms=("psm1",), scale=SCALE)
    loop = Loop(robot, pilot)
    loop.run_until(lambda: pilot.grasp_misses >= 1, max_sim_s=20.0)
    assert pilot.grasp_misses == 1
    assert pilot.phase("psm1") is Phase.APPROACH
    assert robot.peg_transfer().completed == 0


def test_before_any_feedback_the_hands_stay_clutched_and_still() -> None:
    pilot = Autopilot()
    first = pilot.read(0)
    later = pilot.read(500 * PERIOD_NS)
    for arm in pilot.arms:
        assert first[arm].clutch
        assert later[arm].clutch
        assert later[arm].pose == first[arm].pose
        assert later[arm].t_ns == 500 * PERIOD_NS
        assert pilot.phase(arm) is Phase.IDLE


def test_feedback_that_is_not_finite_is_ignored() -> None:
    pilot = Autopilot(arms=("psm2",))
    pilot.feedback("psm2", Pose((math.nan, 0.0, 0.1)), 0.0)
    pilot.feedback("psm9", Pose((0.0, 0.0, 0.1)), 0.0)
    pilot.read(0)
    assert pilot.read(PERIOD_NS)["psm2"].clutch


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arms": ("psm3",)}, "cannot drive"),
    ({"arms": ()}, "at least one arm"),
    ({"scale": 0.0}, "motion scale"),
    ({"hand_speed_m_s": -1.0}, "hand_speed_m_s"),
])
def test_bad_settings_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Autopilot(**kwargs)  # type: ignore[arg-type]


def test_the_console_registry_builds_the_autopilot_with_the_configured_scale() -> None:
    device = make_device(ConsoleConfig(device="autopilot", arms=["psm2"], scale=0.3))
    assert isinstance(device, Autopilot)
    assert device.arms == ("psm2",)
    assert device.scale == 0.3
