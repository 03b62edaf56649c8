"""The pure safety checks: validation, sequence, age, workspace clamp and motion limits."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telesurgery.config import SafetyConfig
from telesurgery.errors import SafetyError
from telesurgery.geometry import Quat, Vec3, quat_angle, rotvec_to_quat
from telesurgery.messages import JawServoJP, ServoCP
from telesurgery.safety.checks import (
    MotionLimits,
    Reason,
    Setpoint,
    Workspace,
    applied_setpoint,
    check_age,
    check_sequence,
    next_jaw,
    next_setpoint,
    stopping_pose,
    validate_command,
    validate_pose,
)
from telesurgery.types import Pose

DT = 0.001
LIMITS = MotionLimits.from_config(SafetyConfig())
DEFAULT = Workspace.from_config(SafetyConfig())
# A box around the RCM itself, so that the 45 mm exclusion sphere matters.
AROUND_RCM = Workspace((-0.06, -0.06, -0.12), (0.06, 0.06, 0.03), 0.045)

coords = st.floats(allow_nan=True, allow_infinity=True)
near = st.floats(-0.3, 0.3)


@pytest.mark.parametrize(
    ("pose", "reason"),
    [
        (Pose((0.0, 0.0, -0.1)), None),
        (Pose((math.nan, 0.0, -0.1)), Reason.NON_FINITE),
        (Pose((0.0, -math.inf, -0.1)), Reason.NON_FINITE),
        (Pose((0.0, 0.0, -0.1), (1.0, 0.0, math.nan, 0.0)), Reason.NON_FINITE),
        (Pose((0.0, 0.0, -0.1), (1.0, 1.0, 0.0, 0.0)), Reason.MALFORMED),
        (Pose((0.0, 0.0, -0.1), (0.0, 0.0, 0.0, 0.0)), Reason.MALFORMED),
    ],
)
def test_validate_pose(pose: Pose, reason: Reason | None) -> None:
    assert validate_pose(pose) is reason


def test_validate_command_checks_jaw_and_sample_time() -> None:
    assert validate_command(JawServoJP("psm1", 0.5, 10), 10) is None
    assert validate_command(JawServoJP("psm1", math.nan, 10), 10) is Reason.NON_FINITE
    assert validate_command(ServoCP("psm1", Pose((0.0, 0.0, -0.1)), 11), 10) is \
        Reason.MALFORMED


def test_sequence() -> None:
    assert check_sequence(None, 0) is None
    assert check_sequence(5, 6) is None
    assert check_sequence(5, 5) is Reason.DUPLICATE
    assert check_sequence(5, 2) is Reason.OUT_OF_ORDER


def test_age() -> None:
    assert check_age(1_000, 1_000 + 100, 100) is None
    assert check_age(1_000, 1_000 + 101, 100) is Reason.STALE
    assert check_age(1_000, 1_000 - 100, 100) is None
    assert check_age(1_000, 1_000 - 101, 100) is Reason.CLOCK_SKEW


def test_clamp_keeps_inside_points_and_moves_outside_ones() -> None:
    inside = (0.01, -0.02, -0.1)
    assert DEFAULT.clamp(inside) == inside
    assert DEFAULT.clamp((1.0, -1.0, 0.0)) == (0.12, -0.12, -0.05)
    assert AROUND_RCM.clamp((0.0, 0.0, -0.01)) == pytest.approx((0.0, 0.0, -0.045))
    assert AROUND_RCM.clamp((0.0, 0.0, 0.0)) == pytest.approx((0.0, 0.0, -0.045))


def test_workspace_inside_the_rcm_sphere_is_refused() -> None:
    with pytest.raises(SafetyError, match="enlarge the box"):
        Workspace((-0.01, -0.01, -0.02), (0.01, 0.01, -0.01), 0.045)


@settings(max_examples=400, deadline=None)
@given(st.tuples(coords, coords, coords), st.sampled_from([DEFAULT, AROUND_RCM]))
def test_clamp_lands_in_workspace(p: tuple[float, float, float], ws: Workspace) -> None:
    if not all(math.isfinite(v) for v in p):
        return  # commands with such numbers are rejected before any clamp
    q = ws.clamp(p)
    assert ws.contains(q)
    assert ws.clamp(q) == pytest.approx(q, abs=1e-12)


def test_clamp_where_box_cuts_sphere_and_push_leaves_box() -> None:
    # A point near the RCM whose radial push would leave the box sideways.
    ws = Workspace((-0.01, -0.01, -0.2), (0.01, 0.01, 0.0), 0.045)
    q = ws.clamp((0.01, 0.01, -0.001))
    assert ws.contains(q)


def _run(start: Setpoint, goal: Pose, ws: Workspace, ticks: int) -> list[Setpoint]:
    out = [start]
    for _ in range(ticks):
        out.append(next_setpoint(out[-1], goal, LIMITS, ws, DT))
    return out


def test_limiter_reaches_goal_without_overshoot_within_speed_and_accel() -> None:
    start = Setpoint(Pose((-0.05, 0.0, -0.1)))
    goal = Pose((0.05, 0.0, -0.1))
    path = _run(start, goal, DEFAULT, 1500)
    xs = [s.pose.position[0] for s in path]
    assert xs[-1] == pytest.approx(0.05, abs=1e-9)
    assert all(b >= a - 1e-15 for a, b in itertools.pairwise(xs))  # monotone
    assert max(xs) <= 0.05 + 1e-12
    speeds = [(b - a) / DT for a, b in itertools.pairwise(xs)]
    assert max(speeds) <= LIMITS.linear_speed_m_s + 1e-9
    assert max(speeds) > 0.99 * LIMITS.linear_speed_m_s  # it did reach cruise speed
    accels = [abs(b - a) / DT for a, b in itertools.pairwise(speeds)]
    assert max(accels) <= LIMITS.linear_accel_m_s2 * (1 + 1e-6)
    # 100 mm at 0.25 m/s plus a 50 ms ramp at each end: about 450 ms.
    arrived = next(i for i, x in enumerate(xs) if abs(x - 0.05) < 1e-9)
    assert 400 <= arrived <= 520


def test_limiter_rotates_within_angular_speed() -> None:
    goal_q = rotvec_to_quat((0.0, 0.0, 2.0))
    start = Setpoint(Pose((0.0, 0.0, -0.1)))
    path = _run(start, Pose((0.0, 0.0, -0.1), goal_q), DEFAULT, 600)
    steps = [quat_angle(a.pose.orientation, b.pose.orientation)
             for a, b in itertools.pairwise(path)]
    assert max(steps) <= LIMITS.angular_speed_rad_s * DT + 1e-9
    assert quat_angle(path[-1].pose.orientation, goal_q) < 1e-9
    assert quat_angle(path[400].pose.orientation, goal_q) > 0.3  # 2 rad take 500 ms


def test_limiter_brings_a_parked_arm_into_the_box_at_limited_speed() -> None:
    start = Setpoint(Pose((0.2, 0.0, -0.1)))  # outside the box (x max 0.12)
    goal = Pose(DEFAULT.clamp((0.2, 0.0, -0.1)))
    path = _run(start, goal, DEFAULT, 600)
    steps = [a.pose.distance(b.pose) for a, b in itertools.pairwise(path)]
    assert max(steps) <= LIMITS.linear_speed_m_s * DT + 1e-12
    assert DEFAULT.contains(path[-1].pose.position)


def test_stopping_pose_is_where_braking_ends() -> None:
    moving = Setpoint(Pose((0.0, 0.0, -0.1)), (0.2, 0.0, 0.0))
    stop = stopping_pose(moving, LIMITS, DT)
    assert stop.position[0] == pytest.approx(0.2 * 0.2 / (2 * LIMITS.linear_accel_m_s2)
                                              + 0.2 * DT / 2)
    path = _run(moving, stop, DEFAULT, 200)
    xs = [s.pose.position[0] for s in path]
    assert xs[-1] == pytest.approx(stop.position[0], abs=1e-9)
    assert max(xs) <= stop.position[0] + 1e-12


def test_jaw_is_rate_limited() -> None:
    assert next_jaw(0.0, 1.0, 8.0, DT) == pytest.approx(0.008)
    assert next_jaw(0.0, -1.0, 8.0, DT) == pytest.approx(-0.008)
    assert next_jaw(0.5, 0.501, 8.0, DT) == 0.501


def _unit(q: Quat) -> Quat:
    n = math.sqrt(sum(v * v for v in q))
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


unit = st.floats(-1, 1)
quats = st.tuples(unit, unit, unit, unit).filter(lambda q: sum(v * v for v in q) > 1e-3).map(
    _unit)


points = st.tuples(near, near, near)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([DEFAULT, AROUND_RCM]),
       st.tuples(points, st.tuples(unit, unit, unit), quats), st.tuples(points, quats),
       st.integers(1, 60))
def test_limiter_never_leaves_workspace_nor_exceeds_speed(
        ws: Workspace, start: tuple[Vec3, Vec3, Quat], goal: tuple[Vec3, Quat],
        ticks: int) -> None:
    # Any start in the workspace, moving at up to full speed in any direction.
    (p, v_dir, q0), (g, q1) = start, goal
    p0 = ws.clamp(p)
    s = LIMITS.linear_speed_m_s / max(math.hypot(*v_dir), 1.0)
    prev = Setpoint(Pose(p0, q0), (v_dir[0] * s, v_dir[1] * s, v_dir[2] * s))
    target = Pose(ws.clamp(g), q1)
    for _ in range(ticks):
        nxt = next_setpoint(prev, target, LIMITS, ws, DT)
        assert ws.contains(nxt.pose.position)
        assert prev.pose.distance(nxt.pose) <= LIMITS.linear_speed_m_s * DT * (1 + 1e-12)
        assert quat_angle(prev.pose.orientation, nxt.pose.orientation) <= \
            LIMITS.angular_speed_rad_s * DT + 1e-9
        prev = nxt


def test_the_setpoint_is_what_the_robot_applied() -> None:
    prev = Setpoint(Pose((0.0, 0.0, -0.1)), (0.1, 0.0, 0.0))
    planned = next_setpoint(prev, Pose((0.05, 0.0, -0.1)), LIMITS, DEFAULT, DT)
    assert applied_setpoint(prev, planned, planned.pose, DT) is planned
    # Clipped halfway: the tip is where the robot put it, at the speed it really moved.
    halfway = Pose((planned.pose.position[0] / 2, 0.0, -0.1), planned.pose.orientation)
    got = applied_setpoint(prev, planned, halfway, DT)
    assert got.pose == halfway
    assert got.velocity == pytest.approx((halfway.position[0] / DT, 0.0, 0.0))
    # A robot that jumped further than planned is never taken to move faster than planned.
    jumped = Pose((0.01, 0.0, -0.1), planned.pose.orientation)
    fast = applied_setpoint(prev, planned, jumped, DT)
    assert fast.pose == jumped
    assert math.hypot(*fast.velocity) == pytest.approx(math.hypot(*planned.velocity))
