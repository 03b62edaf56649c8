"""The plain-Python rotation helpers against MuJoCo's C math, and Pose's algebra."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from telesurgery import geometry as g
from telesurgery.geometry import FloatArray, Quat, Vec3
from telesurgery.types import Pose

TOL = 1e-12
"""Agreement expected with MuJoCo: the same formulas, rounded alike to within an ulp or two."""


def _unit(values: tuple[float, float, float, float]) -> Quat:
    n = math.sqrt(sum(v * v for v in values))
    w, x, y, z = (v / n for v in values)
    return (w, x, y, z)


component = st.floats(-1.0, 1.0, allow_nan=False)
quats = (st.tuples(component, component, component, component)
         .filter(lambda q: sum(v * v for v in q) > 1e-2).map(_unit))
"""Random unit quaternions, either sign of w."""
vectors = st.tuples(*(st.floats(-10.0, 10.0, allow_nan=False),) * 3)
"""Random 3-vectors, zero included."""
rotvecs = st.tuples(*(st.floats(-4.0, 4.0, allow_nan=False),) * 3)
"""Rotation vectors [rad] up to and past a half turn."""

def _canonical(q: FloatArray) -> FloatArray:
    """MuJoCo's quaternion as ours: unit norm, w >= 0."""
    q = q / np.linalg.norm(q)
    return -q if q[0] < 0.0 else q


def _mj_mul(a: Quat, b: Quat) -> FloatArray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.array(a), np.array(b))
    return out


def _mj_mat(q: Quat) -> FloatArray:
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, np.array(q))
    return out


@settings(max_examples=500, deadline=None)
@given(quats, quats)
def test_quat_mul_is_mujocos_product(a: Quat, b: Quat) -> None:
    np.testing.assert_allclose(g.quat_mul(a, b), _mj_mul(a, b), rtol=0, atol=TOL)


@settings(max_examples=500, deadline=None)
@given(quats, vectors)
@example(g.IDENTITY_QUAT, (1.0, -2.0, 3.0))
@example((0.5, 0.5, 0.5, 0.5), (0.0, 0.0, 0.0))
def test_rotate_is_mujocos_rotation(q: Quat, v: Vec3) -> None:
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, np.array(v), np.array(q))
    np.testing.assert_allclose(g.rotate(q, v), out, rtol=0, atol=TOL * 10.0)


@settings(max_examples=500, deadline=None)
@given(quats)
@example(g.IDENTITY_QUAT)
@example(_unit((1.0, 1e-17, 0.0, 0.0)))
@example((0.0, 0.0, 0.6, 0.8))
def test_quat_to_rotvec_is_mujocos_velocity_over_one_second(q: Quat) -> None:
    out = np.empty(3)
    mujoco.mju_quat2Vel(out, _canonical(np.array(q)), 1.0)
    v = g.quat_to_rotvec(q)
    np.testing.assert_allclose(v, out, rtol=0, atol=TOL)
    assert math.sqrt(sum(c * c for c in v)) <= math.pi + TOL


@settings(max_examples=500, deadline=None)
@given(rotvecs)
@example((0.0, 0.0, 0.0))
@example((1e-13, 0.0, 0.0))
@example((0.0, 0.0, math.pi))
def test_rotvec_to_quat_is_mujocos_axis_angle(v: Vec3) -> None:
    angle = math.sqrt(sum(c * c for c in v))
    out = np.array([1.0, 0.0, 0.0, 0.0])
    if angle >= 1e-12:
        mujoco.mju_axisAngle2Quat(out, np.array(v) / angle, angle)
    q = g.rotvec_to_quat(v)
    np.testing.assert_allclose(q, _canonical(out), rtol=0, atol=TOL)
    assert q[0] >= 0.0


@settings(max_examples=500, deadline=None)
@given(quats)
@example(g.IDENTITY_QUAT)
def test_quat_to_matrix_is_mujocos(q: Quat) -> None:
    np.testing.assert_allclose(g.quat_to_rotation(q), _mj_mat(q), rtol=0, atol=TOL)
    np.testing.assert_allclose(g.quat_to_matrix(q), _mj_mat(q).reshape(3, 3), rtol=0, atol=TOL)


@settings(max_examples=500, deadline=None)
@given(quats)
@example(g.IDENTITY_QUAT)
# Half turns about x, y and z: a trace of -1, so mat2Quat solves for x, y, z first.
@example((0.0, 1.0, 0.0, 0.0))
@example((0.0, 0.0, 1.0, 0.0))
@example((0.0, 0.0, 0.0, 1.0))
def test_matrix_to_quat_is_mujocos(q: Quat) -> None:
    m = _mj_mat(q)
    out = np.empty(4)
    mujoco.mju_mat2Quat(out, m)
    np.testing.assert_allclose(g.matrix_to_quat(m.reshape(3, 3)), _canonical(out), rtol=0,
                               atol=TOL)
    np.testing.assert_allclose(g.rotation_to_quat(m.tolist()), _canonical(out), rtol=0,
                               atol=TOL)
    # The rotation comes back (a half turn's quaternion only up to its sign).
    assert g.quat_angle(g.matrix_to_quat(m.reshape(3, 3)), q) < 1e-6


@settings(max_examples=300, deadline=None)
@given(st.tuples(*(st.floats(-3.0, 3.0, allow_nan=False),) * 3)
       .filter(lambda v: sum(c * c for c in v) < (math.pi - 1e-6) ** 2))
def test_rotvec_round_trips_within_a_half_turn(v: Vec3) -> None:
    np.testing.assert_allclose(g.quat_to_rotvec(g.rotvec_to_quat(v)), v, rtol=0, atol=1e-9)


def test_quat_normalize_refuses_what_has_no_direction() -> None:
    with pytest.raises(ValueError, match="cannot normalise"):
        g.quat_normalize((0.0, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="cannot normalise"):
        g.quat_normalize((math.inf, 0.0, 0.0, 0.0))
    assert g.quat_normalize((-2.0, 0.0, 0.0, 0.0)) == g.IDENTITY_QUAT


poses = st.builds(Pose, vectors, quats)


@settings(max_examples=300, deadline=None)
@given(poses, poses)
def test_pose_compose_and_inverse_are_matrix_products(a: Pose, b: Pose) -> None:
    np.testing.assert_allclose(a.compose(b).matrix(), a.matrix() @ b.matrix(), rtol=0,
                               atol=1e-10)
    np.testing.assert_allclose(a.inverse().matrix(), np.linalg.inv(a.matrix()), rtol=0,
                               atol=1e-10)
    back = Pose.from_matrix(a.matrix())
    np.testing.assert_allclose(back.position, a.position, rtol=0, atol=TOL)
    assert g.quat_angle(back.orientation, a.orientation) < 1e-6


@pytest.mark.parametrize(("pose", "finite"), [
    (Pose((0.1, -0.2, 0.3), (0.5, 0.5, 0.5, 0.5)), True),
    (Pose((math.nan, 0.0, 0.0)), False),
    (Pose((0.0, math.inf, 0.0)), False),
    (Pose((0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 0.0)), False),
    (Pose((0.0, 0.0, 0.0), (1.0, 0.0, 0.0, -math.inf)), False),
    (Pose((0.0, 0.0, 0.0), (1.0004, 0.0, 0.0, 0.0)), True),
    (Pose((0.0, 0.0, 0.0), (1.001, 0.0, 0.0, 0.0)), False),
    (Pose((1e300, 1e300, 1e300)), True),
])
def test_pose_is_finite_checks_every_number_and_the_unit_norm(pose: Pose, finite: bool) -> None:
    assert pose.is_finite() is finite
