"""Rotation helpers on unit quaternions (w, x, y, z), backed by MuJoCo's C math.

MuJoCo's ``mju_*`` functions are a well-kept, allocation-free implementation that
costs about a microsecond a call, which matters in 1 kHz loops; SciPy's
``Rotation`` costs ten times more.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import numpy.typing as npt

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
FloatArray = npt.NDArray[np.float64]

IDENTITY_QUAT: Quat = (1.0, 0.0, 0.0, 0.0)


def quat_mul(a: Quat, b: Quat) -> Quat:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return _as_quat(out)


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


def quat_to_matrix(q: Quat) -> FloatArray:
    """3x3 rotation matrix of a unit quaternion."""
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, np.asarray(q, dtype=np.float64))
    return out.reshape(3, 3)


def matrix_to_quat(m: FloatArray) -> Quat:
    """Unit quaternion (w >= 0) of a 3x3 rotation matrix."""
    out = np.empty(4)
    mujoco.mju_mat2Quat(out, np.ascontiguousarray(m, dtype=np.float64).reshape(9))
    return quat_normalize(_as_quat(out))


def rotate(q: Quat, v: Vec3) -> Vec3:
    """Vector ``v`` rotated by ``q``."""
    out = np.empty(3)
    mujoco.mju_rotVecQuat(out, np.asarray(v, dtype=np.float64), np.asarray(q, dtype=np.float64))
    return (float(out[0]), float(out[1]), float(out[2]))


def quat_to_rotvec(q: Quat) -> Vec3:
    """Rotation vector (axis times angle [rad], angle in [0, pi]) of ``q``."""
    out = np.empty(3)
    mujoco.mju_quat2Vel(out, np.asarray(quat_normalize(q), dtype=np.float64), 1.0)
    return (float(out[0]), float(out[1]), float(out[2]))


def rotvec_to_quat(v: Vec3) -> Quat:
    """Unit quaternion of a rotation vector (axis times angle [rad])."""
    angle = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if angle < 1e-12:
        return IDENTITY_QUAT
    out = np.empty(4)
    axis = np.array(v, dtype=np.float64) / angle
    mujoco.mju_axisAngle2Quat(out, axis, angle)
    return quat_normalize(_as_quat(out))


def quat_angle(a: Quat, b: Quat) -> float:
    """Angle [rad] of the rotation that takes ``a`` to ``b``, in [0, pi]."""
    d = abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    return 2.0 * math.acos(min(1.0, d))


def _as_quat(a: FloatArray) -> Quat:
    return (float(a[0]), float(a[1]), float(a[2]), float(a[3]))
