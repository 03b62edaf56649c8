"""The ``touch`` device: the autopilot's hands on simulated Touch devices, force to the hand
through the master side's passivity controller."""

from __future__ import annotations

import numpy as np
import pytest

from telesurgery.config import ConsoleConfig
from telesurgery.geometry import Vec3, quat_conj, quat_mul, quat_normalize
from telesurgery.input.autopilot import Phase
from telesurgery.input.base import HandSample
from telesurgery.input.haptic import TOUCH_LIMITS
from telesurgery.input.registry import make_device
from telesurgery.input.touch import DEVICE_PER_HAND, FORCE_SCALE, HapticHands
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT
from telesurgery.types import Pose

PERIOD_NS = 1_000_000
SCALE = 0.2
FOLLOW_TOL_M = 2.0e-3
"""The stylus stays within this [m, device] of where the hand wants it: the hand's spring
(200 N/m) stretched by the Touch's 0.26 N of friction is 1.3 mm; 6.7 mm of the autopilot's
hand in the view frame, 1.3 mm at the tool."""


class Plant:
    """An ideal instrument per arm: on clutch release it anchors the hand pose H0 and the tool
    pose T0 (view frame); engaged, the tool is at T0 + scale (H - H0), turned by H H0^-1."""

    def __init__(self, arms: tuple[str, ...]) -> None:
        view_from_world = DEFAULT_LAYOUT.camera.pose_opencv().inverse()
        self.tool = {a: view_from_world.compose(DEFAULT_LAYOUT.base_pose(a).compose(
            DEFAULT_LAYOUT.home_tip(a))) for a in arms}
        self.anchor: dict[str, tuple[Pose, Pose] | None] = dict.fromkeys(arms)

    def step(self, arm: str, hand: HandSample) -> Pose:
        if hand.clutch:
            self.anchor[arm] = None
            return self.tool[arm]
        anchor = self.anchor[arm]
        if anchor is None:
            anchor = self.anchor[arm] = (hand.pose, self.tool[arm])
        h0, t0 = anchor
        p = tuple(t + SCALE * (h - g) for t, h, g in
                  zip(t0.position, hand.pose.position, h0.position, strict=True))
        q = quat_normalize(quat_mul(quat_mul(hand.pose.orientation,
                                             quat_conj(h0.orientation)), t0.orientation))
        self.tool[arm] = Pose((p[0], p[1], p[2]), q)
        return self.tool[arm]


def test_the_registry_names_it() -> None:
    device = make_device(ConsoleConfig(device="touch", arms=["psm1"]))
    assert isinstance(device, HapticHands)
    assert device.arms == ("psm1",)
    assert device.displays_force


def test_without_force_the_stylus_follows_the_hand_and_the_samples_follow_the_autopilot(
        ) -> None:
    arms = ("psm1", "psm2")
    hands = HapticHands(arms, scale=SCALE)
    plant = Plant(arms)
    worst_view = worst_device = 0.0
    moved = dict.fromkeys(arms, 0.0)
    start = {a: np.zeros(3) for a in arms}
    for tick in range(9000):
        now = tick * PERIOD_NS
        samples = hands.read(now)
        for arm, sample in samples.items():
            assert sample.t_ns == now
            wanted = np.array(hands.wanted(arm))
            got = np.array(sample.pose.position)
            stylus = np.array(hands.device(arm).exact().position_m)
            if tick == 0:
                start[arm] = stylus
            moved[arm] = max(moved[arm], float(np.linalg.norm(stylus - start[arm])))
            # The sample against what the hand wants, in the view frame and on the device.
            worst_view = max(worst_view, float(np.linalg.norm(got - wanted)))
            worst_device = worst_view * DEVICE_PER_HAND
            hands.feedback(arm, plant.step(arm, sample), 0.0)
            # Nothing rendered: the devices display nothing.
            assert hands.device(arm).read().force_n == (0.0, 0.0, 0.0)
    # The autopilot did its work through the devices: in 9 s simulated psm1 went down to
    # the first ring, closed on it and lifted it (7.7 s; 6.9 s with the autopilot's hands
    # straight on the mapping), the styluses moved centimetres.
    assert hands.pilot.phase("psm1") not in (Phase.IDLE, Phase.APPROACH, Phase.DESCEND,
                                             Phase.CLOSE)
    assert hands.pilot.grasp_misses == 0
    assert moved["psm1"] > 0.01
    # The sample is the stylus (through the encoders) mapped into the view frame: within
    # the hand's spring stretch and an encoder step of the autopilot's hand.
    assert worst_device <= FOLLOW_TOL_M + TOUCH_LIMITS.resolution_m, worst_device
    assert worst_view <= (FOLLOW_TOL_M + TOUCH_LIMITS.resolution_m) / DEVICE_PER_HAND


def _press(hands: HapticHands, force_view: Vec3, ticks: int, tip_speed_m_s: float = 0.0,
           start_tick: int = 1) -> None:
    """Render ``force_view`` for ``ticks`` ticks with the tip moving along the force at
    ``tip_speed_m_s`` (the tissue pushing the tool back: energy into the network)."""
    f = np.array(force_view)
    unit = f / np.linalg.norm(f)
    for tick in range(start_tick, start_tick + ticks):
        tip = unit * tip_speed_m_s * tick * 1e-3
        hands.render_force("psm1", force_view, (float(tip[0]), float(tip[1]), float(tip[2])),
                           tick * PERIOD_NS)
        hands.read(tick * PERIOD_NS)


@pytest.mark.parametrize(("force_view", "felt"), [
    ((0.0, 0.0, -20.0), (0.0, 0.0, 2.0)),  # pushed back towards the camera: to the user
    ((0.0, 10.0, 0.0), (0.0, -1.0, 0.0)),  # down in the picture: down on the device
    ((15.0, 0.0, 0.0), (1.5, 0.0, 0.0)),   # right is right
])
def test_a_force_at_the_tip_is_felt_a_tenth_in_the_device_frame(force_view: Vec3,
                                                                   felt: Vec3) -> None:
    hands = HapticHands(("psm1",), scale=SCALE)
    hands.read(0)
    # The stylus at rest: the first period displays the force as it is, a tenth of it.
    _press(hands, force_view, 1, tip_speed_m_s=0.1)
    assert hands.device("psm1").read().force_n == pytest.approx(felt, abs=1e-9)
    assert FORCE_SCALE == 0.1
    # The tissue pushes the tool back along the force at 0.1 m/s (energy into the
    # network); the force pushes the stylus its way against the hand, never more than a
    # tenth of the tip's and never askew (the controller only damps), and once the stylus
    # rests against the hand the whole tenth is felt again.
    unit = np.array(felt) / np.linalg.norm(felt)
    for tick in range(2, 151):
        _press(hands, force_view, 1, tip_speed_m_s=0.1, start_tick=tick)
        shown = np.array(hands.device("psm1").read().force_n)
        assert float(np.linalg.norm(shown - np.dot(shown, unit) * unit)) < 1e-9
        assert 0.0 <= float(np.dot(shown, unit)) <= float(np.linalg.norm(felt)) + 1e-9
    moved = np.array(hands.device("psm1").exact().position_m)
    assert float(np.dot(moved, unit)) > 1e-3
    assert hands.device("psm1").read().force_n == pytest.approx(felt, abs=1e-9)


def test_a_force_beyond_the_device_is_clipped_at_its_peak_then_its_continuous_force(
        ) -> None:
    hands = HapticHands(("psm1",), scale=SCALE)
    hands.read(0)
    _press(hands, (50.0, 0.0, 0.0), 1, tip_speed_m_s=0.1)
    assert hands.device("psm1").read().force_n == pytest.approx((3.3, 0.0, 0.0), abs=1e-9)
    _press(hands, (50.0, 0.0, 0.0), 2000, tip_speed_m_s=0.1, start_tick=2)
    held = hands.device("psm1").read().force_n
    assert held == pytest.approx((TOUCH_LIMITS.continuous_force_n, 0.0, 0.0), abs=1e-9)


def test_the_master_port_never_lets_out_more_than_the_slave_port_put_in() -> None:
    hands = HapticHands(("psm1",), scale=SCALE)
    hands.read(0)
    felt_max = 0.0
    for tick in range(1, 3001):
        t = tick * 1e-3
        # The force rises while the tip does not move (the channel would be active: the
        # displayed force pushes the stylus, out of energy nobody put in); from 1.5 s the
        # tip gives way along it at 1 mm/s and puts a little energy in.
        force = (0.0, 0.0, -min(30.0, 20.0 * t))
        tip_z = -0.001 * max(0.0, t - 1.5)
        hands.render_force("psm1", force, (0.0, 0.0, tip_z), tick * PERIOD_NS)
        hands.read(tick * PERIOD_NS)
        felt_max = max(felt_max, abs(hands.device("psm1").read().force_n[2]))
        master, slave = hands.energies("psm1")
        for m, s in zip(master, slave, strict=True):
            assert m.e_out_j <= s.e_in_j + 1e-12, (tick, m, s)
    report = hands.report()["psm1"]
    master, slave = hands.energies("psm1")
    # It had something to hold back, and did: the stylus was pushed, yet the master port
    # let out at most the slave's input, which grew only once the tip gave way.
    assert report["dissipated_j"] > 0.0
    assert slave[2].e_in_j > 0.0
    assert master[2].e_out_j <= slave[2].e_in_j + 1e-12
    # The hand still felt the force whenever the stylus did not give way to it.
    assert felt_max > 1.0
