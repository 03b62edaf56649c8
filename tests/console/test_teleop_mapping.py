"""The per-arm teleoperation mapping: anchoring, scaling, camera frame, clutch, jaw, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from telesurgery.config import TremorConfig
from telesurgery.console.mapping import (
    JAW_CLOSED_RAD,
    JAW_OPEN_RAD,
    TeleopMapping,
    grip_to_jaw,
    unwrap_rotvec,
)
from telesurgery.errors import ConfigError
from telesurgery.geometry import (
    IDENTITY_QUAT,
    Quat,
    Vec3,
    quat_angle,
    quat_mul,
    quat_to_rotvec,
    rotvec_to_quat,
)
from telesurgery.input.base import HandSample
from telesurgery.types import Pose

# The arm base frame seen from the camera: turned well away from the camera axes, so
# a mistake in the frame conversion shows.
REGISTRATION = Pose((0.02, -0.01, 0.18), rotvec_to_quat((2.5, 0.4, -0.3)))
MEASURED = Pose((0.01, -0.02, -0.12), rotvec_to_quat((0.1, 0.2, 0.3)))
HAND0 = Pose((0.1, 0.0, 0.3), rotvec_to_quat((0.3, -0.2, 0.1)))
SETTLE_TICKS = 2000  # 2 s at 1 kHz: twenty time constants of the tremor filter


def hand(t_ms: int, position: Vec3 = HAND0.position, orientation: Quat = HAND0.orientation,
         grip: float = 0.5, clutch: bool = False) -> HandSample:
    return HandSample(t_ms * 1_000_000, Pose(position, orientation), grip, clutch)


def offset(p: Vec3, d: Vec3, k: float = 1.0) -> Vec3:
    return (p[0] + k * d[0], p[1] + k * d[1], p[2] + k * d[2])


def in_view(p: Pose) -> Pose:
    return REGISTRATION.compose(p)


def drive(m: TeleopMapping, start_ms: int, ticks: int, delta: Vec3 = (0.0, 0.0, 0.0), *,
          turn: Vec3 = (0.0, 0.0, 0.0), base: Pose = HAND0,
          measured: Pose = MEASURED) -> list[Pose]:
    """Move the hand from ``base`` by ``delta`` [m] and turn it by ``turn`` [rad, view frame]
    linearly over ``ticks``; returns the targets in the view frame."""
    out = []
    for k in range(1, ticks + 1):
        u = k / ticks
        q = quat_mul(rotvec_to_quat((u * turn[0], u * turn[1], u * turn[2])), base.orientation)
        cmd = m.step(hand(start_ms + k, offset(base.position, delta, u), q),
                     measured, 0.3, REGISTRATION)
        out.append(in_view(cmd.servo.pose))
    return out


def settle(m: TeleopMapping, start_ms: int, pose: Pose) -> Pose:
    target = m.target
    for k in range(SETTLE_TICKS):
        target = m.step(hand(start_ms + k, pose.position, pose.orientation), MEASURED, 0.3,
                        REGISTRATION).servo.pose
    assert target is not None
    return in_view(target)


def test_engaging_anchors_on_the_measured_tool() -> None:
    m = TeleopMapping("psm1")
    cmd = m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    assert m.engaged
    assert not cmd.servo.clutch
    assert cmd.servo.arm == "psm1"
    assert cmd.servo.sample_ns == 0
    assert cmd.servo.pose.distance(MEASURED) < 1e-12
    assert quat_angle(cmd.servo.pose.orientation, MEASURED.orientation) < 1e-9


def test_hand_displacement_is_scaled_in_the_camera_frame() -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    delta = (0.03, -0.02, 0.01)
    drive(m, 1, 500, delta)
    moved = settle(m, 600, Pose(offset(HAND0.position, delta), HAND0.orientation))
    expected = offset(in_view(MEASURED).position, delta, 0.2)
    assert math.dist(moved.position, expected) < 1e-9
    assert quat_angle(moved.orientation, in_view(MEASURED).orientation) < 1e-9


@pytest.mark.parametrize("scale", [0.1, 0.5, 1.0])
def test_scale_is_configurable(scale: float) -> None:
    m = TeleopMapping("psm1", scale=scale)
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    delta = (0.0, 0.0, 0.04)
    drive(m, 1, 300, delta)
    moved = settle(m, 400, Pose(offset(HAND0.position, delta), HAND0.orientation))
    assert math.dist(moved.position, in_view(MEASURED).position) == pytest.approx(0.04 * scale,
                                                                                 abs=1e-9)


def test_hand_rotation_turns_the_tool_one_to_one_in_the_camera_frame() -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    turn = (0.2, -0.4, 0.5)
    drive(m, 1, 500, turn=turn)
    q = quat_mul(rotvec_to_quat(turn), HAND0.orientation)
    moved = settle(m, 600, Pose(HAND0.position, q))
    expected = quat_mul(rotvec_to_quat(turn), in_view(MEASURED).orientation)
    assert quat_angle(moved.orientation, expected) < 1e-9
    assert math.dist(moved.position, in_view(MEASURED).position) < 1e-12


def test_rolling_past_half_a_turn_stays_continuous() -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    turn = (0.0, 0.0, 1.6 * math.pi)
    targets = drive(m, 1, 4000, turn=turn)
    steps = [quat_angle(a.orientation, b.orientation) for a, b in itertools.pairwise(targets)]
    per_tick = 1.6 * math.pi / 4000
    assert max(steps) < 1.5 * per_tick
    moved = settle(m, 5000, Pose(HAND0.position,
                                 quat_mul(rotvec_to_quat(turn), HAND0.orientation)))
    expected = quat_mul(rotvec_to_quat(turn), in_view(MEASURED).orientation)
    assert quat_angle(moved.orientation, expected) < 1e-9


def test_tremor_is_filtered_out_of_the_tool_motion() -> None:
    def tremor_amplitude(enabled: bool) -> float:
        m = TeleopMapping("psm1", tremor=TremorConfig(enabled=enabled))
        m.step(hand(0), MEASURED, 0.3, REGISTRATION)
        xs, ts = [], []
        for k in range(1, 4001):
            t = k / 1000.0
            # a 0.5 Hz, 20 mm reach with 1 mm of 9 Hz tremor on top
            x = 0.02 * math.sin(math.pi * t) + 0.001 * math.sin(2 * math.pi * 9.0 * t)
            cmd = m.step(hand(k, offset(HAND0.position, (x, 0.0, 0.0))), MEASURED, 0.3,
                         REGISTRATION)
            if k > 2000:
                xs.append(in_view(cmd.servo.pose).position[0])
                ts.append(t)
        # 9 Hz content of the tool motion, by correlation over whole periods
        s = sum(x * math.sin(2 * math.pi * 9.0 * t) for x, t in zip(xs, ts, strict=True))
        c = sum(x * math.cos(2 * math.pi * 9.0 * t) for x, t in zip(xs, ts, strict=True))
        return 2.0 * math.hypot(s, c) / len(xs)

    raw = tremor_amplitude(False)
    filtered = tremor_amplitude(True)
    assert raw == pytest.approx(0.2 * 0.001, rel=0.05)
    assert 20.0 * math.log10(filtered / raw) < -25.0


def test_clutch_freezes_the_target_and_release_reanchors_without_a_jump() -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    drive(m, 1, 300, (0.02, 0.0, 0.0))
    frozen = m.target
    assert frozen is not None
    # The hand moves 50 mm with the clutch pressed: nothing follows.
    moved = offset(HAND0.position, (0.02, 0.05, 0.0))
    for k in range(301, 801):
        cmd = m.step(hand(k, moved, clutch=True), frozen, 0.3, REGISTRATION)
        assert cmd.servo.clutch
        assert cmd.servo.pose == frozen
        assert not m.engaged
    # The arm settled a little away from the last target; release anchors on where it is.
    where = Pose(offset(frozen.position, (0.0005, 0.0, 0.0)), frozen.orientation)
    cmd = m.step(hand(801, moved), where, 0.3, REGISTRATION)
    assert not cmd.servo.clutch
    assert cmd.servo.pose.distance(where) < 1e-12
    after = drive(m, 802, 100, (0.01, 0.0, 0.0), base=Pose(moved, HAND0.orientation),
                  measured=where)
    # The first engaged tick moves by no more than the scaled hand step (0.1 mm).
    assert math.dist(after[0].position, in_view(where).position) <= 0.2 * 1e-4 * 1.001


def test_a_new_registration_reanchors() -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    drive(m, 1, 300, (0.02, 0.0, 0.0))
    assert m.target is not None
    here = m.target
    moved = Pose(REGISTRATION.position, rotvec_to_quat((2.5, 0.4, -0.2)))
    cmd = m.step(hand(301, offset(HAND0.position, (0.02, 0.0, 0.0))), here, 0.3, moved)
    assert cmd.servo.pose.distance(here) < 1e-12
    assert m.engaged


@pytest.mark.parametrize("bad", ["hand", "grip", "measured", "jaw", "registration"])
def test_non_finite_input_holds_and_is_counted(bad: str) -> None:
    m = TeleopMapping("psm1")
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    drive(m, 1, 100, (0.01, 0.0, 0.0))
    before = m.target
    nan_pose = Pose((math.nan, 0.0, 0.0), IDENTITY_QUAT)
    sample = hand(101, offset(HAND0.position, (0.01, 0.0, 0.0)))
    if bad == "hand":
        sample = HandSample(sample.t_ns, nan_pose, 0.5, False)
    elif bad == "grip":
        sample = HandSample(sample.t_ns, sample.pose, math.inf, False)
    cmd = m.step(sample, nan_pose if bad == "measured" else MEASURED,
                 math.nan if bad == "jaw" else 0.3,
                 nan_pose if bad == "registration" else REGISTRATION)
    assert cmd.rejected
    assert m.rejected == 1
    assert cmd.servo.clutch
    assert cmd.servo.pose == before
    assert not m.engaged


def test_hold_before_any_measured_pose_is_a_clutched_heartbeat() -> None:
    m = TeleopMapping("psm1")
    servo = m.hold(hand(5))
    assert servo.clutch
    assert servo.sample_ns == 5_000_000
    assert servo.pose == Pose()
    assert m.target is None
    assert not m.engaged


def test_jaw_follows_the_grip_while_engaged_and_holds_while_clutched() -> None:
    m = TeleopMapping("psm1")
    first = m.step(hand(0, grip=1.0, clutch=True), MEASURED, 0.25, REGISTRATION)
    assert first.jaw is not None
    assert first.jaw.angle == 0.25  # the measured jaw, untouched while clutched
    cmd = m.step(hand(1, grip=0.0), MEASURED, 0.25, REGISTRATION)
    assert cmd.jaw is not None
    assert cmd.jaw.angle == JAW_CLOSED_RAD
    cmd = m.step(hand(2, grip=1.0), MEASURED, 0.25, REGISTRATION)
    assert cmd.jaw is not None
    assert cmd.jaw.angle == JAW_OPEN_RAD
    assert cmd.jaw.sample_ns == 2_000_000
    cmd = m.step(hand(3, grip=0.0, clutch=True), MEASURED, 0.25, REGISTRATION)
    assert cmd.jaw is not None
    assert cmd.jaw.angle == JAW_OPEN_RAD


@pytest.mark.parametrize(("grip", "jaw"), [(0.0, -0.2), (0.5, 0.4), (1.0, 1.0), (-1.0, -0.2),
                                           (2.0, 1.0)])
def test_grip_to_jaw_is_linear_and_clamped(grip: float, jaw: float) -> None:
    assert grip_to_jaw(grip) == pytest.approx(jaw)


@pytest.mark.parametrize("scale", [0.0, -0.2, 1.5])
def test_scale_out_of_range_is_a_config_error(scale: float) -> None:
    with pytest.raises(ConfigError, match="motion scale"):
        TeleopMapping("psm1", scale=scale)


@given(st.floats(0.0, 12.0), st.tuples(*(st.floats(-1.0, 1.0),) * 3))
def test_unwrap_keeps_the_rotation_and_follows_the_previous_vector(angle: float,
                                                                   axis: Vec3) -> None:
    n = math.sqrt(sum(a * a for a in axis))
    assume(n > 1e-3)
    true = (axis[0] / n * angle, axis[1] / n * angle, axis[2] / n * angle)
    wrapped = quat_to_rotvec(rotvec_to_quat(true))
    got = unwrap_rotvec(wrapped, true)
    # Same rotation as the input, and the representative nearest the previous vector.
    assert quat_angle(rotvec_to_quat(got), rotvec_to_quat(wrapped)) < 1e-6
    assert math.dist(got, true) < 1e-6


def test_a_new_scale_applies_to_the_motion_from_then_on_without_a_jump() -> None:
    m = TeleopMapping("psm1", scale=0.2)
    m.step(hand(0), MEASURED, 0.3, REGISTRATION)
    first = (0.04, 0.0, 0.0)
    path = drive(m, 1, 400, first)
    at = settle(m, 500, Pose(offset(HAND0.position, first), HAND0.orientation))
    m.scale = 0.1  # halved while the hand rests 40 mm from its anchor
    still = m.step(hand(3000, offset(HAND0.position, first)), MEASURED, 0.3,
                   REGISTRATION).servo.pose
    assert math.dist(in_view(still).position, at.position) < 1e-9  # no jump
    second = (0.0, 0.03, 0.0)
    base = Pose(offset(HAND0.position, first), HAND0.orientation)
    drive(m, 3001, 400, second, base=base)
    moved = settle(m, 3500, Pose(offset(base.position, second), HAND0.orientation))
    # The first 40 mm at 0.2, the next 30 mm at 0.1.
    expected = offset(offset(in_view(MEASURED).position, first, 0.2), second, 0.1)
    assert math.dist(moved.position, expected) < 1e-9
    steps = [math.dist(a.position, b.position) for a, b in itertools.pairwise(path)]
    assert max(steps) < 0.2 * 0.04 / 400 * 3  # the target moved smoothly, no tick jumped
