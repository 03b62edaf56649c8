"""Rotation helpers on unit quaternions (w, x, y, z) and 3-vectors, in plain Python floats.

Each function is MuJoCo's C math (``mju_mulQuat``, ``mju_rotVecQuat``,
``mju_quat2Vel``, ``mju_axisAngle2Quat``, ``mju_quat2Mat``, ``mju_mat2Quat``)
written out term for term in the same order, so results agree with MuJoCo's to
rounding (``tests/test_geometry.py`` checks 1e-12). Why not call MuJoCo: for 4-element
inputs numpy's per-call overhead (``np.asarray``, ``np.empty``, converting back to
floats) is most of the cost. Per call on the 2-core development machine (timeit,
best of 15): ``quat_mul`` 1.9 us through ``mju_mulQuat``, 0.31 us in floats;
``rotate`` 1.8 against 0.33 us; ``quat_to_rotvec`` 1.7 against 0.51 us;
``rotvec_to_quat`` 2.3 against 0.51 us (under load, issue 10 measured 6 against
0.7 us for ``quat_mul``). They run several times per arm per tick in the console's
and the patient's loops; numpy pays for batches, which these helpers never see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Mat3 = tuple[float, float, float, float, float, float, float, float, float]
"""A 3x3 matrix as its nine entries, row-major."""
FloatArray = npt.NDArray[np.float64]

IDENTITY_QUAT: Quat = (1.0, 0.0, 0.0, 0.0)

_MIN_NORM = 1e-15
"""MuJoCo's ``mjMINVAL``: below this norm a vector has no direction."""


def quat_mul(a: Quat, b: Quat) -> Quat:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    return (a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
            a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
            a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
            a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0)


def quat_conj(q: Quat) -> Quat:
    """Inverse of a unit quaternion."""
    return (q[0], -q[1], -q[2], -q[3])


def quat_normalize(q: Quat) -> Quat:
    """``q`` scaled to unit norm, with a non-negative scalar part (one sign per rotation)."""
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if n == 0.0 or not math.isfinite(n):
        raise ValueError(f"cannot normalise quaternion {q}: its norm is {n}")
    s = 1.0 / n if q[0] >= 0.0 else -1.0 / n
    return (q[0] * s, q[1] * s, q[2] * s, q[3] * s)


def quat_to_rotation(q: Quat) -> Mat3:
    """Rotation matrix of a unit quaternion, row-major."""
    w, x, y, z = q
    q00, q01, q02, q03 = w * w, w * x, w * y, w * z
    q11, q12, q13 = x * x, x * y, x * z
    q22, q23, q33 = y * y, y * z, z * z
    return (q00 + q11 - q22 - q33, 2.0 * (q12 - q03), 2.0 * (q13 + q02),
            2.0 * (q12 + q03), q00 - q11 + q22 - q33, 2.0 * (q23 - q01),
            2.0 * (q13 - q02), 2.0 * (q23 + q01), q00 - q11 - q22 + q33)


def rotation_to_quat(r: Sequence[float]) -> Quat:
    """Unit quaternion (w >= 0) of a rotation matrix given as nine entries, row-major."""
    r0, r1, r2, r3, r4, r5, r6, r7, r8 = r
    # Solve for the largest component first, as mju_mat2Quat does, for precision.
    if r0 + r4 + r8 > 0.0:
        w = 0.5 * math.sqrt(1.0 + r0 + r4 + r8)
        q = (w, 0.25 * (r7 - r5) / w, 0.25 * (r2 - r6) / w, 0.25 * (r3 - r1) / w)
    elif r0 > r4 and r0 > r8:
        x = 0.5 * math.sqrt(1.0 + r0 - r4 - r8)
        q = (0.25 * (r7 - r5) / x, x, 0.25 * (r1 + r3) / x, 0.25 * (r2 + r6) / x)
    elif r4 > r8:
        y = 0.5 * math.sqrt(1.0 - r0 + r4 - r8)
        q = (0.25 * (r2 - r6) / y, 0.25 * (r1 + r3) / y, y, 0.25 * (r5 + r7) / y)
    else:
        z = 0.5 * math.sqrt(1.0 - r0 - r4 + r8)
        q = (0.25 * (r3 - r1) / z, 0.25 * (r2 + r6) / z, 0.25 * (r5 + r7) / z, z)
    # mju_mat2Quat's own normalisation (skipped within mjMINVAL of unit norm), kept so
    # that results round as MuJoCo's did before the sign is fixed.
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if n < _MIN_NORM:
        return IDENTITY_QUAT
    if abs(n - 1.0) > _MIN_NORM:
        inv = 1.0 / n
        q = (q[0] * inv, q[1] * inv, q[2] * inv, q[3] * inv)
    return quat_normalize(q)


def quat_to_matrix(q: Quat) -> FloatArray:
    """3x3 rotation matrix of a unit quaternion."""
    return np.array(quat_to_rotation(q)).reshape(3, 3)


def matrix_to_quat(m: FloatArray) -> Quat:
    """Unit quaternion (w >= 0) of a 3x3 rotation matrix."""
    r: list[float] = np.asarray(m, dtype=np.float64).reshape(9).tolist()
    return rotation_to_quat(r)


def rotate(q: Quat, v: Vec3) -> Vec3:
    """Vector ``v`` rotated by ``q``."""
    w, x, y, z = q
    vx, vy, vz = v
    # t = w v + cross(q_xyz, v); then v + 2 cross(q_xyz, t), as mju_rotVecQuat.
    tx = w * vx + y * vz - z * vy
    ty = w * vy + z * vx - x * vz
    tz = w * vz + x * vy - y * vx
    return (vx + 2.0 * (y * tz - z * ty), vy + 2.0 * (z * tx - x * tz),
            vz + 2.0 * (x * ty - y * tx))


def quat_to_rotvec(q: Quat) -> Vec3:
    """Rotation vector (axis times angle [rad], angle in [0, pi]) of ``q``."""
    w, x, y, z = quat_normalize(q)
    s = math.sqrt(x * x + y * y + z * z)
    # w >= 0, so the angle 2 atan2(s, w) is at most pi: no wrap needed (mju_quat2Vel's).
    angle = 2.0 * math.atan2(s, w)
    if s < _MIN_NORM:
        return (angle, 0.0, 0.0)
    inv = 1.0 / s
    return (x * inv * angle, y * inv * angle, z * inv * angle)


def rotvec_to_quat(v: Vec3) -> Quat:
    """Unit quaternion of a rotation vector (axis times angle [rad])."""
    vx, vy, vz = v
    angle = math.sqrt(vx * vx + vy * vy + vz * vz)
    if angle < 1e-12:
        return IDENTITY_QUAT
    s = math.sin(angle * 0.5)
    return quat_normalize((math.cos(angle * 0.5), vx / angle * s, vy / angle * s,
                           vz / angle * s))


def quat_angle(a: Quat, b: Quat) -> float:
    """Angle [rad] of the rotation that takes ``a`` to ``b``, in [0, pi]."""
    d = abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    return 2.0 * math.acos(min(1.0, d))
