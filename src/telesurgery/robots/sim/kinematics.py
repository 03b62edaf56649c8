"""Closed-form kinematics of the dVRK classic PSM with a large needle driver (modified DH).

The table (Craig's modified convention, link transform ``Rx(alpha) Tx(a) Rz(theta) Tz(d)``,
joint offset added to q) is the da Vinci Research Kit's for the classic PSM with the
large needle driver (400006); lengths [m], angles [rad]:

==============  ====  ======  ======  ======  =======  ======  =====
joint           type  alpha   a       d       offset   min     max
==============  ====  ======  ======  ======  =======  ======  =====
outer yaw       R     pi/2    0       0       pi/2     -1.588  1.588
outer pitch     R     -pi/2   0       0       -pi/2    -0.925  0.925
insertion       P     pi/2    0       0       -0.4318  0.0     0.24
instrument roll R     0       0       0.4162  0        -4.538  4.538
wrist pitch     R     -pi/2   0       0       -pi/2    -1.396  1.396
wrist yaw       R     -pi/2   0.0091  0       -pi/2    -1.396  1.396
==============  ====  ======  ======  ======  =======  ======  =====

The base frame is the remote centre of motion (RCM); at q = 0 the shaft points
along -z. The tool tip frame sits on the wrist-yaw (jaw) axis, rotated by the
dVRK's fixed tool-tip offset so that its z axis points along the jaws and its
x axis is the jaw hinge (the jaws open in the tip's y-z plane). Frame 3's origin
is the instrument's back end, ``q3 - 0.4318`` along the shaft; the wrist-pitch
axis is ``q3 - 0.0156`` past the RCM.

Everything here is a pure function of floats: no MuJoCo state, no allocation
beyond small numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from telesurgery.errors import KinematicsError
from telesurgery.geometry import FloatArray, matrix_to_quat, quat_normalize
from telesurgery.types import Pose


@dataclass(frozen=True, slots=True)
class DHLink:
    """One row of the modified DH table: ``alpha`` [rad], ``a`` [m], ``d`` [m], ``offset``
    [rad for revolute, m for prismatic], limits ``lower``/``upper`` of q."""

    name: str
    prismatic: bool
    alpha: float
    a: float
    d: float
    offset: float
    lower: float
    upper: float


_HALF_PI: Final = math.pi / 2.0

PSM_DH: Final = (
    DHLink("outer_yaw", False, _HALF_PI, 0.0, 0.0, _HALF_PI, -1.588, 1.588),
    DHLink("outer_pitch", False, -_HALF_PI, 0.0, 0.0, -_HALF_PI, -0.925, 0.925),
    DHLink("outer_insertion", True, _HALF_PI, 0.0, 0.0, -0.4318, 0.0, 0.24),
    DHLink("outer_roll", False, 0.0, 0.0, 0.4162, 0.0, -4.538, 4.538),
    DHLink("outer_wrist_pitch", False, -_HALF_PI, 0.0, 0.0, -_HALF_PI, -1.396, 1.396),
    DHLink("outer_wrist_yaw", False, -_HALF_PI, 0.0091, 0.0, -_HALF_PI, -1.396, 1.396),
)
"""The PSM's six joints, in chain order (dVRK joint names)."""

JOINT_NAMES: Final = tuple(link.name for link in PSM_DH)
JOINT_LOWER: Final = tuple(link.lower for link in PSM_DH)
JOINT_UPPER: Final = tuple(link.upper for link in PSM_DH)
JAW_LOWER: Final = -0.698
"""Jaw opening lower limit [rad]; negative openings squeeze harder on what is held."""
JAW_UPPER: Final = 1.396
"""Jaw opening upper limit [rad]."""
MIN_TIP_RCM_DISTANCE_M: Final = 0.045
"""The tool tip stays at least this far [m] from the remote centre of motion."""

TOOLTIP_OFFSET: Final = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
"""Fixed rotation from the last DH frame to the tool tip frame (the dVRK's convention)."""

_SHAFT_TO_WRIST: Final = PSM_DH[2].offset + PSM_DH[3].d
"""Wrist-pitch axis along the shaft [m] is ``q3 + _SHAFT_TO_WRIST`` past the RCM."""
_WRIST_LENGTH: Final = PSM_DH[5].a
_MAX_REACH: Final = JOINT_UPPER[2] + _SHAFT_TO_WRIST + _WRIST_LENGTH
_LIMIT_TOL: Final = 1e-9
_TWO_PI: Final = 2.0 * math.pi
def _wrist_offset(q4: float, q5: float) -> tuple[float, float, float]:
    """The wrist-yaw axis [m] from the wrist-pitch axis, in DH frame 3."""
    t5 = q5 + PSM_DH[4].offset
    c5 = math.cos(t5)
    return (_WRIST_LENGTH * math.cos(q4) * c5, _WRIST_LENGTH * math.sin(q4) * c5,
            -_WRIST_LENGTH * math.sin(t5))


def _fk(q: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, float, float]]:
    """Tool tip rotation (row-major 3x3) and position [m] in the base frame.

    Written out in floats rather than 4x4 products: it runs at every servo tick.
    """
    t1, t2 = q[0] + PSM_DH[0].offset, q[1] + PSM_DH[1].offset
    c1, s1, c2, s2 = math.cos(t1), math.sin(t1), math.cos(t2), math.sin(t2)
    r3 = ((c1 * c2, -s1, c1 * s2), (s2, 0.0, -c2), (s1 * c2, c1, s1 * s2))
    t5, t6 = q[4] + PSM_DH[4].offset, q[5] + PSM_DH[5].offset
    c4, s4, c5, s5 = math.cos(q[3]), math.sin(q[3]), math.cos(t5), math.sin(t5)
    c6, s6 = math.cos(t6), math.sin(t6)
    # Frame 5 in frame 3 is Rz(q4) Rx(-pi/2) Rz(t5); frame 6 adds Rx(-pi/2) Rz(t6).
    r35 = ((c4 * c5, -c4 * s5, -s4), (s4 * c5, -s4 * s5, c4), (-s5, -c5, 0.0))
    r36 = tuple((r[0] * c6 - r[2] * s6, -r[0] * s6 - r[2] * c6, r[1]) for r in r35)
    r = tuple(tuple(a[0] * r36[0][j] + a[1] * r36[1][j] + a[2] * r36[2][j] for j in range(3))
              for a in r3)
    # The tool-tip offset: tip x = -z6, tip y = -x6, tip z = y6.
    rot = (-r[0][2], -r[0][0], r[0][1], -r[1][2], -r[1][0], r[1][1],
           -r[2][2], -r[2][0], r[2][1])
    w = _wrist_offset(q[3], q[4])
    along = w[2] + q[2] + _SHAFT_TO_WRIST
    pos = tuple(a[0] * w[0] + a[1] * w[1] + a[2] * along for a in r3)
    return rot, (pos[0], pos[1], pos[2])


def _check_joints(q: Sequence[float]) -> None:
    if len(q) != len(PSM_DH):
        raise KinematicsError(f"expected {len(PSM_DH)} joint values "
                              f"({', '.join(JOINT_NAMES)}), got {len(q)}")
    if not all(math.isfinite(v) for v in q):
        raise KinematicsError(f"joint values {tuple(q)} are not all finite; send finite "
                              "positions [rad, m]")


def fk_matrix(q: Sequence[float]) -> FloatArray:
    """4x4 transform of the tool tip in the base (RCM) frame for joints ``q`` [rad, m]."""
    _check_joints(q)
    rot, pos = _fk(q)
    m = np.eye(4)
    m[:3, :3] = np.reshape(rot, (3, 3))
    m[:3, 3] = pos
    return m


def fk(q: Sequence[float]) -> Pose:
    """Tool tip pose in the base (RCM) frame [m] for joints ``q`` [rad, m]."""
    _check_joints(q)
    rot, pos = _fk(q)
    return Pose(pos, matrix_to_quat(np.array(rot)))


def tip_rcm_distance(pose: Pose) -> float:
    """Distance [m] of the tool tip from the remote centre of motion (the base origin)."""
    x, y, z = pose.position
    return math.sqrt(x * x + y * y + z * z)


def in_limits(q: Sequence[float]) -> bool:
    """True when every joint of ``q`` is within its limits."""
    return all(lo - _LIMIT_TOL <= v <= hi + _LIMIT_TOL
               for v, lo, hi in zip(q, JOINT_LOWER, JOINT_UPPER, strict=True))


def clamp_joints(q: Sequence[float]) -> tuple[float, ...]:
    """``q`` with every joint clamped to its limits [rad, m]."""
    _check_joints(q)
    return tuple(min(hi, max(lo, float(v)))
                 for v, lo, hi in zip(q, JOINT_LOWER, JOINT_UPPER, strict=True))


def clamp_insertion_for_rcm(q: Sequence[float]) -> tuple[float, ...]:
    """``q`` clamped to its limits, with the insertion increased where needed so that the
    tool tip is at least ``MIN_TIP_RCM_DISTANCE_M`` from the RCM."""
    clamped = clamp_joints(q)
    wrist = _wrist_offset(clamped[3], clamped[4])
    lateral2 = wrist[0] ** 2 + wrist[1] ** 2
    reach2 = MIN_TIP_RCM_DISTANCE_M**2 - lateral2
    if reach2 <= 0.0:
        return clamped
    along = clamped[2] + _SHAFT_TO_WRIST + wrist[2]
    if along * along >= reach2 and along > 0.0:
        return clamped
    q3 = math.sqrt(reach2) - wrist[2] - _SHAFT_TO_WRIST
    return (*clamped[:2], min(JOINT_UPPER[2], q3), *clamped[3:])


def clamp_jaw(angle: float) -> float:
    """Jaw opening ``angle`` [rad] clamped to its limits; KinematicsError when not finite."""
    if not math.isfinite(angle):
        raise KinematicsError(f"jaw angle {angle} is not finite; send an angle in "
                              f"[{JAW_LOWER}, {JAW_UPPER}] rad")
    return min(JAW_UPPER, max(JAW_LOWER, angle))


def _wrap(angle: float) -> float:
    """``angle`` [rad] wrapped to (-pi, pi]."""
    a = math.fmod(angle + math.pi, _TWO_PI)
    if a <= 0.0:
        a += _TWO_PI
    return a - math.pi


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _solutions(pose: Pose, q_hint: Sequence[float],
               within_limits: bool) -> list[tuple[float, ...]]:
    """Joint vectors reaching ``pose``, one per wrist branch, the roll turned (by whole
    turns) nearest ``q_hint``; with ``within_limits`` only those inside the limits.

    In floats rather than matrix products: it runs at every servo tick.
    """
    w, x, y, z = quat_normalize(pose.orientation)
    p = pose.position
    # Axes of DH frame 6 from the tool tip's: x6 = -y_tip, y6 = z_tip, z6 = -x_tip.
    x6 = (-2.0 * (x * y - w * z), -(1.0 - 2.0 * (x * x + z * z)), -2.0 * (y * z + w * x))
    y6 = (2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y))
    z6 = (-(1.0 - 2.0 * (y * y + z * z)), -2.0 * (x * y + w * z), -2.0 * (x * z - w * y))
    # The RCM seen from the yaw frame lies on the shaft line, which is orthogonal to
    # the wrist-pitch axis: that fixes the wrist-yaw angle up to a half turn.
    rcm_x, rcm_y = -_dot(x6, p), -_dot(y6, p)
    out: list[tuple[float, ...]] = []
    if math.hypot(rcm_x, rcm_y) < 1e-12:
        return out
    base_t6 = math.atan2(-rcm_y, rcm_x)
    for t6 in (base_t6, base_t6 + math.pi):
        # The two branches differ by a half turn of the wrist yaw, whose range is less
        # than that: at most one is within limits, and q6 alone tells which.
        q6 = _wrap(t6 - PSM_DH[5].offset)
        if within_limits and not JOINT_LOWER[5] - _LIMIT_TOL <= q6 <= JOINT_UPPER[5] + _LIMIT_TOL:
            continue
        c6, s6 = math.cos(t6), math.sin(t6)
        x5 = tuple(c6 * a - s6 * b for a, b in zip(x6, y6, strict=True))
        pitch = tuple(pi - _WRIST_LENGTH * xi for pi, xi in zip(p, x5, strict=True))
        along = math.sqrt(_dot(pitch, pitch))
        if along < 1e-9:
            continue
        u = (pitch[0] / along, pitch[1] / along, pitch[2] / along)
        q1 = math.atan2(u[0], -u[2])
        q2 = math.asin(max(-1.0, min(1.0, -u[1])))
        q3 = along - _SHAFT_TO_WRIST
        if within_limits and not in_limits((q1, q2, q3, 0.0, 0.0, 0.0)):
            continue
        # R3^T R6 Rz(-t6) Rx(pi/2) = Rz(q4) Rx(-pi/2) Rz(t5), whose columns are those of
        # R3 (x3, y3, u) dotted with (x5, z6, -(s6 x6 + c6 y6)).
        t1, t2 = q1 + PSM_DH[0].offset, q2 + PSM_DH[1].offset
        x3 = (math.cos(t1) * math.cos(t2), math.sin(t2), math.sin(t1) * math.cos(t2))
        y3 = (-math.sin(t1), 0.0, math.cos(t1))
        b2 = tuple(-(s6 * a + c6 * b) for a, b in zip(x6, y6, strict=True))
        q4 = math.atan2(-_dot(x3, b2), _dot(y3, b2))
        q4 += _TWO_PI * round((q_hint[3] - q4) / _TWO_PI)
        if q4 > JOINT_UPPER[3]:
            q4 -= _TWO_PI
        elif q4 < JOINT_LOWER[3]:
            q4 += _TWO_PI
        t5 = math.atan2(-_dot(u, x5), -_dot(u, z6))
        q = (q1, q2, q3, q4, _wrap(t5 - PSM_DH[4].offset), q6)
        if not within_limits or in_limits(q):
            out.append(q)
    return out


def _violation(q: Sequence[float], first: int = 0) -> float:
    """How far [rad, m] joints ``first``, ``first + 1``, ... of ``q`` are beyond their limits."""
    return sum(max(0.0, lo - v) + max(0.0, v - hi)
               for v, lo, hi in zip(q, JOINT_LOWER[first:], JOINT_UPPER[first:], strict=True))


def _distance(q: Sequence[float], hint: Sequence[float]) -> float:
    return sum((a - b) ** 2 for a, b in zip(q, hint, strict=True))


def _check_pose(pose: Pose) -> None:
    if not pose.is_finite():
        raise KinematicsError(f"pose {pose} is not finite or its quaternion is not unit; "
                              "send a finite position [m] and a unit quaternion")


def ik(pose: Pose, q_hint: Sequence[float]) -> tuple[float, ...]:
    """Joints [rad, m] that put the tool tip at ``pose`` (base frame), nearest ``q_hint``.

    Raises ``KinematicsError`` when the pose is closer to the RCM than
    ``MIN_TIP_RCM_DISTANCE_M``, beyond the insertion range, or needs a joint
    outside its limits; ``ik_nearest`` clamps instead.
    """
    _check_pose(pose)
    _check_joints(q_hint)
    dist = tip_rcm_distance(pose)
    if dist < MIN_TIP_RCM_DISTANCE_M:
        raise KinematicsError(f"tool tip {dist * 1e3:.1f} mm from the RCM is closer than "
                              f"{MIN_TIP_RCM_DISTANCE_M * 1e3:.0f} mm; move the target deeper")
    if dist > _MAX_REACH + 1e-9:
        raise KinematicsError(f"tool tip {dist * 1e3:.1f} mm from the RCM is beyond the "
                              f"instrument's reach ({_MAX_REACH * 1e3:.1f} mm); move the "
                              "target closer")
    candidates = _solutions(pose, q_hint, within_limits=True)
    if not candidates:
        raise KinematicsError(f"pose {pose} needs a joint outside its limits; turn the "
                              "wrist less or move the target toward the shaft axis")
    best = min(candidates, key=lambda q: _distance(q, q_hint))
    return clamp_joints(best)


def ik_nearest(pose: Pose, q_hint: Sequence[float]) -> tuple[float, ...]:
    """Joints [rad, m] within limits whose tip pose is nearest ``pose``, position first.

    Where ``ik`` succeeds this is its answer. Otherwise the wrist joints of the
    closest solution are clamped and the outer joints re-solved so the tip keeps
    the asked position where it can (orientation gives way first); a tip closer
    to the RCM than ``MIN_TIP_RCM_DISTANCE_M`` is pushed out along its direction.
    Raises ``KinematicsError`` only for non-finite input.
    """
    _check_pose(pose)
    _check_joints(q_hint)
    try:
        return ik(pose, q_hint)
    except KinematicsError:
        pass
    target = np.array(pose.position, dtype=np.float64)
    dist = float(np.linalg.norm(target))
    if dist < MIN_TIP_RCM_DISTANCE_M:
        direction = target / dist if dist > 1e-12 else np.array([0.0, 0.0, -1.0])
        target = direction * MIN_TIP_RCM_DISTANCE_M
        pose = Pose((float(target[0]), float(target[1]), float(target[2])), pose.orientation)
    solutions = _solutions(pose, q_hint, within_limits=False)
    if solutions:
        wrist = min(solutions, key=lambda q: (_violation(q[3:], 3), _distance(q, q_hint)))[3:]
    else:
        wrist = tuple(q_hint[3:])
    q4, q5, q6 = clamp_joints((*q_hint[:3], *wrist))[3:]
    outer = _outer_for_position(target, q4, q5, q6, q_hint)
    return clamp_joints((*outer, q4, q5, q6))


def _outer_for_position(p: FloatArray, q4: float, q5: float, q6: float,
                        q_hint: Sequence[float]) -> tuple[float, float, float]:
    """Outer yaw, pitch and insertion putting the tip at ``p`` with the wrist fixed.

    The tip is ``R3 @ u`` with ``u`` = the wrist offset plus the shaft length; the
    insertion sets |u| = |p|, then outer pitch and yaw rotate ``u`` onto ``p``.
    Falls back to the hint's outer joints where no exact answer exists.
    """
    wx, wy, wz = _wrist_offset(q4, q5)
    lateral2 = wx * wx + wy * wy
    dist2 = float(p @ p)
    if dist2 <= lateral2:
        return (q_hint[0], q_hint[1], q_hint[2])
    q3 = math.sqrt(dist2 - lateral2) - wz - _SHAFT_TO_WRIST
    q3 = min(JOINT_UPPER[2], max(JOINT_LOWER[2], q3))
    uz = wz + q3 + _SHAFT_TO_WRIST
    # Row 2 of R3 @ u = p_y gives t2; rows 1 and 3 are a planar rotation by t1.
    radius = math.hypot(wx, uz)
    phi = math.atan2(uz, wx)
    ratio = max(-1.0, min(1.0, float(p[1]) / radius)) if radius > 1e-12 else 0.0
    best: tuple[float, float, float] | None = None
    for t2 in (phi + math.asin(ratio), phi + math.pi - math.asin(ratio)):
        k = math.cos(t2) * wx + math.sin(t2) * uz
        t1 = math.atan2(float(p[2]), float(p[0])) - math.atan2(wy, k)
        q1 = _wrap(t1 - PSM_DH[0].offset)
        q2 = _wrap(t2 - PSM_DH[1].offset)
        cand = (q1, q2, q3)
        if best is None or (_violation((*cand, q4, q5, q6)), _distance(cand, q_hint[:3])) < (
                _violation((*best, q4, q5, q6)), _distance(best, q_hint[:3])):
            best = cand
    assert best is not None
    return best


__all__ = [
    "JAW_LOWER",
    "JAW_UPPER",
    "JOINT_LOWER",
    "JOINT_NAMES",
    "JOINT_UPPER",
    "MIN_TIP_RCM_DISTANCE_M",
    "PSM_DH",
    "TOOLTIP_OFFSET",
    "DHLink",
    "clamp_insertion_for_rcm",
    "clamp_jaw",
    "clamp_joints",
    "fk",
    "fk_matrix",
    "ik",
    "ik_nearest",
    "in_limits",
    "tip_rcm_distance",
]
