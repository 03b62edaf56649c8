"""PSM kinematics: the DH table, FK against MuJoCo, IK round trips, limits and clamping."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telesurgery.errors import KinematicsError
from telesurgery.geometry import IDENTITY_QUAT, FloatArray
from telesurgery.robots.sim import kinematics as kin
from telesurgery.robots.sim.model import joint_names, load_model, tip_site_name
from telesurgery.types import Pose

TOL = 1e-9
"""Agreement [m, and rotation-matrix entries] expected of exact kinematics."""
UP = IDENTITY_QUAT
"""Jaws pointing up the shaft (tip z along base +z): beyond the wrist's +-80 degrees."""


def _dh_product(q: Sequence[float]) -> FloatArray:
    """The table applied literally, link by link: Rx(alpha) Tx(a) Rz(theta) Tz(d)."""

    def rx(a: float) -> FloatArray:
        c, s = math.cos(a), math.sin(a)
        return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])

    def rz(a: float) -> FloatArray:
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])

    def trans(x: float, z: float) -> FloatArray:
        m = np.eye(4)
        m[0, 3], m[2, 3] = x, z
        return m

    t = np.eye(4)
    for link, qi in zip(kin.PSM_DH, q, strict=True):
        theta = 0.0 if link.prismatic else qi + link.offset
        d = link.d + (qi + link.offset if link.prismatic else 0.0)
        t = t @ rx(link.alpha) @ trans(link.a, 0.0) @ rz(theta) @ trans(0.0, d)
    tip = np.eye(4)
    tip[:3, :3] = kin.TOOLTIP_OFFSET
    return t @ tip


def joints(min_insertion: float = 0.0) -> st.SearchStrategy[tuple[float, ...]]:
    """Joint vectors within the limits, insertion at least ``min_insertion`` [m]."""
    parts = [st.floats(lo, hi) for lo, hi in zip(kin.JOINT_LOWER, kin.JOINT_UPPER, strict=True)]
    parts[2] = st.floats(max(min_insertion, kin.JOINT_LOWER[2]), kin.JOINT_UPPER[2])
    return st.tuples(*parts)


@functools.cache
def _mujoco() -> tuple[mujoco.MjModel, mujoco.MjData]:
    model = load_model()
    return model, mujoco.MjData(model)


def test_home_pose_points_the_jaws_down_the_shaft() -> None:
    # At q = 0 the wrist-pitch axis is 15.6 mm above the RCM and the tip 9.1 mm below it.
    m = kin.fk_matrix((0.0,) * 6)
    assert m[:3, 3] == pytest.approx((0.0, 0.0, 0.4318 - 0.4162 - 0.0091), abs=1e-12)
    assert m[:3, 2] == pytest.approx((0.0, 0.0, -1.0), abs=1e-12)
    # Insertion slides the tip along the shaft, one for one.
    assert kin.fk((0.0, 0.0, 0.1, 0.0, 0.0, 0.0)).position[2] == pytest.approx(0.0065 - 0.1)


@settings(max_examples=300, deadline=None)
@given(joints())
def test_closed_form_fk_equals_the_table_link_by_link(q: tuple[float, ...]) -> None:
    np.testing.assert_allclose(kin.fk_matrix(q), _dh_product(q), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(joints())
def test_fk_equals_mujoco_kinematics_of_the_model(q: tuple[float, ...]) -> None:
    model, data = _mujoco()
    for arm in ("psm1", "psm2"):
        for name, value in zip(joint_names(arm), q, strict=True):
            data.qpos[model.joint(name).qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        site = model.site(tip_site_name(arm)).id
        base = model.body(f"{arm}_base").id
        rot_base = data.xmat[base].reshape(3, 3)
        position = rot_base.T @ (data.site_xpos[site] - data.xpos[base])
        rotation = rot_base.T @ data.site_xmat[site].reshape(3, 3)
        expected = kin.fk_matrix(q)
        np.testing.assert_allclose(position, expected[:3, 3], atol=1e-12)
        np.testing.assert_allclose(rotation, expected[:3, :3], atol=1e-12)


@settings(max_examples=500, deadline=None)
@given(joints(min_insertion=0.07), joints())
def test_ik_round_trips_fk_from_any_hint(q: tuple[float, ...], hint: tuple[float, ...]) -> None:
    pose = kin.fk(q)
    if kin.tip_rcm_distance(pose) < kin.MIN_TIP_RCM_DISTANCE_M:
        return
    # From its own joints as the hint, IK gives them back.
    np.testing.assert_allclose(kin.ik(pose, q), q, atol=1e-7)
    # From any hint it reaches the same pose, within the limits.
    solved = kin.ik(pose, hint)
    assert kin.in_limits(solved)
    np.testing.assert_allclose(kin.fk_matrix(solved), pose.matrix(), atol=TOL)


def test_ik_refuses_a_tip_closer_than_45_mm_to_the_rcm() -> None:
    with pytest.raises(KinematicsError, match="closer than 45 mm"):
        kin.ik(Pose((0.0, 0.0, -0.04), kin.fk((0.0,) * 6).orientation), (0.0,) * 6)


def test_ik_refuses_beyond_the_insertion_range() -> None:
    with pytest.raises(KinematicsError, match="beyond the instrument's reach"):
        kin.ik(Pose((0.0, 0.0, -0.30), kin.fk((0.0,) * 6).orientation), (0.0,) * 6)


def test_ik_refuses_an_orientation_the_wrist_cannot_take() -> None:
    down = kin.fk((0.0, 0.0, 0.15, 0.0, 0.0, 0.0))
    flipped = Pose(down.position, UP)
    with pytest.raises(KinematicsError, match="outside its limits"):
        kin.ik(flipped, (0.0,) * 6)


@pytest.mark.parametrize("bad", [
    Pose((math.nan, 0.0, -0.1)),
    Pose((0.0, 0.0, -0.1), (2.0, 0.0, 0.0, 0.0)),
])
def test_ik_refuses_non_finite_or_non_unit_poses(bad: Pose) -> None:
    with pytest.raises(KinematicsError, match="not finite"):
        kin.ik(bad, (0.0,) * 6)
    with pytest.raises(KinematicsError, match="not finite"):
        kin.ik_nearest(bad, (0.0,) * 6)


def test_ik_nearest_keeps_the_position_when_the_orientation_is_out_of_reach() -> None:
    start = (0.2, -0.1, 0.15, 0.3, 0.0, 0.0)
    goal = Pose(kin.fk(start).position, UP)
    q = kin.ik_nearest(goal, start)
    assert kin.in_limits(q)
    assert kin.fk(q).distance(goal) < 1e-9
    # The wrist went as far as it could.
    assert any(abs(v) == pytest.approx(lim) for v, lim in zip(q[4:], kin.JOINT_UPPER[4:],
                                                                strict=True))


def test_ik_nearest_pushes_a_tip_out_to_45_mm_from_the_rcm() -> None:
    down = kin.fk((0.0,) * 6).orientation
    q = kin.ik_nearest(Pose((0.0, 0.01, -0.02), down), (0.0, 0.0, 0.1, 0.0, 0.0, 0.0))
    tip = kin.fk(q)
    assert kin.tip_rcm_distance(tip) == pytest.approx(kin.MIN_TIP_RCM_DISTANCE_M, abs=1e-9)
    assert tip.position[1] > 0.0


def test_ik_nearest_clamps_a_tip_beyond_reach_to_full_insertion() -> None:
    down = kin.fk((0.0,) * 6).orientation
    q = kin.ik_nearest(Pose((0.0, 0.0, -0.5), down), (0.0, 0.0, 0.1, 0.0, 0.0, 0.0))
    assert q[2] == pytest.approx(kin.JOINT_UPPER[2])
    assert kin.fk(q).position[2] < -0.23


def test_clamps_and_distance() -> None:
    assert kin.clamp_joints((9.0, -9.0, 1.0, 0.0, 2.0, -2.0)) == (
        1.588, -0.925, 0.24, 0.0, 1.396, -1.396)
    with pytest.raises(KinematicsError, match="expected 6 joint values"):
        kin.clamp_joints((0.0,))
    with pytest.raises(KinematicsError, match="not all finite"):
        kin.clamp_joints((math.inf, 0, 0, 0, 0, 0))
    assert kin.clamp_jaw(3.0) == kin.JAW_UPPER
    assert kin.clamp_jaw(-3.0) == kin.JAW_LOWER
    with pytest.raises(KinematicsError, match="jaw angle nan"):
        kin.clamp_jaw(math.nan)
    assert kin.tip_rcm_distance(Pose((0.03, 0.0, -0.04))) == pytest.approx(0.05)


@settings(max_examples=300, deadline=None)
@given(joints())
def test_insertion_clamp_keeps_the_tip_45_mm_from_the_rcm(q: tuple[float, ...]) -> None:
    out = kin.clamp_insertion_for_rcm(q)
    assert out[:2] == q[:2]
    assert out[3:] == q[3:]
    assert kin.tip_rcm_distance(kin.fk(out)) >= kin.MIN_TIP_RCM_DISTANCE_M - 1e-12
    if kin.tip_rcm_distance(kin.fk(q)) >= kin.MIN_TIP_RCM_DISTANCE_M:
        assert out == q
    else:
        assert out[2] > q[2]


@settings(max_examples=300, deadline=None)
@given(joints())
def test_fk_pose_is_the_fk_matrix(q: tuple[float, ...]) -> None:
    np.testing.assert_allclose(kin.fk(q).matrix(), kin.fk_matrix(q), rtol=0, atol=1e-12)


quats = st.tuples(*(st.floats(-1.0, 1.0),) * 4).filter(lambda v: sum(c * c for c in v) > 1e-2)
"""Quaternions of any sign, not yet unit."""
positions = st.tuples(*(st.floats(-0.3, 0.3),) * 3)


@settings(max_examples=500, deadline=None)
@given(positions, quats, joints())
def test_ik_nearest_is_ik_where_it_succeeds_and_within_limits_everywhere(
        p: tuple[float, float, float], o: tuple[float, float, float, float],
        hint: tuple[float, ...]) -> None:
    norm = math.sqrt(sum(c * c for c in o))
    pose = Pose(p, (o[0] / norm, o[1] / norm, o[2] / norm, o[3] / norm))
    q = kin.ik_nearest(pose, hint)
    assert kin.in_limits(q)
    assert kin.tip_rcm_distance(kin.fk(q)) >= kin.MIN_TIP_RCM_DISTANCE_M - 1e-9
    try:
        exact = kin.ik(pose, hint)
    except KinematicsError:
        return
    assert q == exact


values = st.tuples(*(st.floats(-6.0, 6.0),) * 6)


@settings(max_examples=500, deadline=None)
@given(values)
def test_clamp_and_in_limits_match_their_definitions(q: tuple[float, ...]) -> None:
    clamped = kin.clamp_joints([np.float64(v) for v in q])
    assert clamped == tuple(min(hi, max(lo, v))
                            for v, lo, hi in zip(q, kin.JOINT_LOWER, kin.JOINT_UPPER, strict=True))
    assert all(type(v) is float for v in clamped)  # not numpy scalars
    assert kin.in_limits(clamped)
    assert kin.in_limits(q) == all(lo - 1e-9 <= v <= hi + 1e-9 for v, lo, hi in zip(
        q, kin.JOINT_LOWER, kin.JOINT_UPPER, strict=True))
    # Within the 1e-9 tolerance counts as within.
    assert kin.in_limits(tuple(hi + 5e-10 for hi in kin.JOINT_UPPER))
    assert not kin.in_limits(tuple(lo - 2e-9 for lo in kin.JOINT_LOWER))
