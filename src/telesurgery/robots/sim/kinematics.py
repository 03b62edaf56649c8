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

Everything here is a pure function of floats: no MuJoCo state. The per-tick functions
(``fk``, ``ik`` and the ``clamp_joints`` it ends with) are written out in Python floats,
with no numpy and no generators: for 3- and 6-element vectors their per-call overhead
(about a microsecond an operation) is most of the cost, and ``servo_cp`` runs ``ik``
for each arm at 1 kHz. So written, ``fk`` costs 2.8 us (8.4 us with a numpy matrix
to quaternion step and generator products) and ``ik`` 5 us (14.6 us) (timeit, 2-core
machine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from telesurgery.errors import KinematicsError
from telesurgery.geometry import FloatArray, Mat3, Vec3, quat_normalize, rotation_to_quat
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
_LOWER_TOL: Final = tuple(lo - _LIMIT_TOL for lo in JOINT_LOWER)
_UPPER_TOL: Final = tuple(hi + _LIMIT_TOL for hi in JOINT_UPPER)
_TWO_PI: Final = 2.0 * math.pi
_OFFSETS: Final = tuple(link.offset for link in PSM_DH)


def _wrist_offset(q4: float, q5: float) -> tuple[float, float, float]:
    """The wrist-yaw axis [m] from the wrist-pitch axis, in DH frame 3."""
    t5 = q5 + PSM_DH[4].offset
    c5 = math.cos(t5)
    return (_WRIST_LENGTH * math.cos(q4) * c5, _WRIST_LENGTH * math.sin(q4) * c5,
            -_WRIST_LENGTH * math.sin(t5))


def _fk(q: Sequence[float]) -> tuple[Mat3, Vec3]:
    """Tool tip rotation (row-major) and position [m] in the base frame.

    Written out in floats rather than 4x4 products: it runs at every servo tick.
    """
    t1, t2 = q[0] + _OFFSETS[0], q[1] + _OFFSETS[1]
    c1, s1, c2, s2 = math.cos(t1), math.sin(t1), math.cos(t2), math.sin(t2)
    t5, t6 = q[4] + _OFFSETS[4], q[5] + _OFFSETS[5]
    c4, s4, c5, s5 = math.cos(q[3]), math.sin(q[3]), math.cos(t5), math.sin(t5)
    c6, s6 = math.cos(t6), math.sin(t6)
    # Frame 6 in frame 3, m = Rz(q4) Rx(-pi/2) Rz(t5) Rx(-pi/2) Rz(t6), entry by entry.
    c4c5, s4c5 = c4 * c5, s4 * c5
    m00, m01, m02 = c4c5 * c6 + s4 * s6, -c4c5 * s6 + s4 * c6, -c4 * s5
    m10, m11, m12 = s4c5 * c6 - c4 * s6, -s4c5 * s6 - c4 * c6, -s4 * s5
    m20, m21, m22 = -s5 * c6, s5 * s6, -c5
    # Frame 3 in the base: rows (c1 c2, -s1, c1 s2), (s2, 0, -c2), (s1 c2, c1, s1 s2).
    c1c2, c1s2, s1c2, s1s2 = c1 * c2, c1 * s2, s1 * c2, s1 * s2
    # The tool-tip offset: tip x = -z6, tip y = -x6, tip z = y6.
    rot = (-(c1c2 * m02 - s1 * m12 + c1s2 * m22), -(c1c2 * m00 - s1 * m10 + c1s2 * m20),
           c1c2 * m01 - s1 * m11 + c1s2 * m21,
           -(s2 * m02 - c2 * m22), -(s2 * m00 - c2 * m20), s2 * m01 - c2 * m21,
           -(s1c2 * m02 + c1 * m12 + s1s2 * m22), -(s1c2 * m00 + c1 * m10 + s1s2 * m20),
           s1c2 * m01 + c1 * m11 + s1s2 * m21)
    # The wrist-yaw axis in frame 3 (``_wrist_offset``, its sines and cosines reused).
    w0, w1 = _WRIST_LENGTH * c4 * c5, _WRIST_LENGTH * s4 * c5
    along = -_WRIST_LENGTH * s5 + q[2] + _SHAFT_TO_WRIST
    pos = (c1c2 * w0 - s1 * w1 + c1s2 * along, s2 * w0 - c2 * along,
           s1c2 * w0 + c1 * w1 + s1s2 * along)
    return rot, pos


def _check_joints(q: Sequence[float]) -> None:
    if len(q) != len(PSM_DH):
        raise KinematicsError(f"expected {len(PSM_DH)} joint values "
                              f"({', '.join(JOINT_NAMES)}), got {len(q)}")
    if not all(map(math.isfinite, q)):
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
    return Pose(pos, rotation_to_quat(rot))


def tip_rcm_distance(pose: Pose) -> float:
    """Distance [m] of the tool tip from the remote centre of motion (the base origin)."""
    x, y, z = pose.position
    return math.sqrt(x * x + y * y + z * z)


def in_limits(q: Sequence[float]) -> bool:
    """True when every joint of ``q`` is within its limits."""
    return all(lo <= v <= hi for v, lo, hi in zip(q, _LOWER_TOL, _UPPER_TOL, strict=True))


def clamp_joints(q: Sequence[float]) -> tuple[float, ...]:
    """``q`` with every joint clamped to its limits [rad, m]."""
    _check_joints(q)
    # min(hi, max(lo, v)) as conditionals (lo < hi): half the cost of the builtins, and
    # this runs at every servo tick.
    return tuple([(v if v < hi else hi) if v > lo else lo
                  for v, lo, hi in zip(map(float, q), JOINT_LOWER, JOINT_UPPER, strict=True)])


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


def _solutions(pose: Pose, q_hint: Sequence[float],
               within_limits: bool) -> list[tuple[float, ...]]:
    """Joint vectors reaching ``pose``, one per wrist branch, the roll turned (by whole
    turns) nearest ``q_hint``; with ``within_limits`` only those inside the limits.

    In floats rather than matrix products: it runs at every servo tick.
    """
    w, x, y, z = quat_normalize(pose.orientation)
    px, py, pz = pose.position
    # Axes of DH frame 6 from the tool tip's: x6 = -y_tip, y6 = z_tip, z6 = -x_tip. Kept
    # as scalars: tuples and zip cost more than the arithmetic here.
    x6x, x6y, x6z = -2.0 * (x * y - w * z), -(1.0 - 2.0 * (x * x + z * z)), -2.0 * (y * z + w * x)
    y6x, y6y, y6z = 2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)
    z6x, z6y, z6z = -(1.0 - 2.0 * (y * y + z * z)), -2.0 * (x * y + w * z), -2.0 * (x * z - w * y)
    # The RCM seen from the yaw frame lies on the shaft line, which is orthogonal to
    # the wrist-pitch axis: that fixes the wrist-yaw angle up to a half turn.
    rcm_x = -(x6x * px + x6y * py + x6z * pz)
    rcm_y = -(y6x * px + y6y * py + y6z * pz)
    out: list[tuple[float, ...]] = []
    if math.hypot(rcm_x, rcm_y) < 1e-12:
        return out
    lo, hi = _LOWER_TOL, _UPPER_TOL
    base_t6 = math.atan2(-rcm_y, rcm_x)
    for t6 in (base_t6, base_t6 + math.pi):
        # The two branches differ by a half turn of the wrist yaw, whose range is less
        # than that: at most one is within limits, and q6 alone tells which.
        q6 = _wrap(t6 - _OFFSETS[5])
        if within_limits and not lo[5] <= q6 <= hi[5]:
            continue
        c6, s6 = math.cos(t6), math.sin(t6)
        x5x, x5y, x5z = c6 * x6x - s6 * y6x, c6 * x6y - s6 * y6y, c6 * x6z - s6 * y6z
        ax = px - _WRIST_LENGTH * x5x
        ay = py - _WRIST_LENGTH * x5y
        az = pz - _WRIST_LENGTH * x5z
        along = math.sqrt(ax * ax + ay * ay + az * az)
        if along < 1e-9:
            continue
        ux, uy, uz = ax / along, ay / along, az / along
        q1 = math.atan2(ux, -uz)
        q2 = math.asin(max(-1.0, min(1.0, -uy)))
        q3 = along - _SHAFT_TO_WRIST
        if within_limits and not (lo[0] <= q1 <= hi[0] and lo[1] <= q2 <= hi[1]
                                  and lo[2] <= q3 <= hi[2]):
            continue
        # R3^T R6 Rz(-t6) Rx(pi/2) = Rz(q4) Rx(-pi/2) Rz(t5), whose columns are those of
        # R3 (x3, y3, u) dotted with (x5, z6, b = -(s6 x6 + c6 y6)); y3 = (-s1, 0, c1).
        t1, t2 = q1 + _OFFSETS[0], q2 + _OFFSETS[1]
        c1, s1, c2 = math.cos(t1), math.sin(t1), math.cos(t2)
        bx, by, bz = -(s6 * x6x + c6 * y6x), -(s6 * x6y + c6 * y6y), -(s6 * x6z + c6 * y6z)
        q4 = math.atan2(-(c1 * c2 * bx + math.sin(t2) * by + s1 * c2 * bz), -s1 * bx + c1 * bz)
        q4 += _TWO_PI * round((q_hint[3] - q4) / _TWO_PI)
        # Against the limits with their tolerance: a roll at its limit, turned by a whole
        # turn in floats, lands a rounding error beyond it and must not turn back.
        if q4 > hi[3]:
            q4 -= _TWO_PI
        elif q4 < lo[3]:
            q4 += _TWO_PI
        t5 = math.atan2(-(ux * x5x + uy * x5y + uz * x5z), -(ux * z6x + uy * z6y + uz * z6z))
        q5 = _wrap(t5 - _OFFSETS[4])
        # With limits, the others were checked above: only q4 and q5 remain.
        if not within_limits or (lo[3] <= q4 <= hi[3] and lo[4] <= q5 <= hi[4]):
            out.append((q1, q2, q3, q4, q5, q6))
    return out


def _violation(q: Sequence[float], first: int = 0) -> float:
    """How far [rad, m] joints ``first``, ``first + 1``, ... of ``q`` are beyond their limits."""
    # Lists and conditionals rather than generators and max(): a third of the cost.
    return sum([lo - v if v < lo else (v - hi if v > hi else 0.0)
                for v, lo, hi in zip(q, JOINT_LOWER[first:], JOINT_UPPER[first:], strict=True)])


def _distance(q: Sequence[float], hint: Sequence[float]) -> float:
    return sum([(a - b) ** 2 for a, b in zip(q, hint, strict=True)])


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
    # Within the limits only one wrist branch remains (see ``_solutions``).
    return clamp_joints(candidates[0])


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
    target = pose.position
    dist = tip_rcm_distance(pose)
    if dist < MIN_TIP_RCM_DISTANCE_M:
        if dist > 1e-12:
            target = (target[0] / dist * MIN_TIP_RCM_DISTANCE_M,
                      target[1] / dist * MIN_TIP_RCM_DISTANCE_M,
                      target[2] / dist * MIN_TIP_RCM_DISTANCE_M)
        else:
            target = (0.0, 0.0, -MIN_TIP_RCM_DISTANCE_M)
        pose = Pose(target, pose.orientation)
    solutions = _solutions(pose, q_hint, within_limits=False)
    if solutions:
        wrist = min(solutions, key=lambda q: (_violation(q[3:], 3), _distance(q, q_hint)))[3:]
    else:
        wrist = tuple(q_hint[3:])
    q4, q5, q6 = clamp_joints((*q_hint[:3], *wrist))[3:]
    outer = _outer_for_position(target, q4, q5, q6, q_hint)
    return clamp_joints((*outer, q4, q5, q6))


def _outer_for_position(p: Vec3, q4: float, q5: float, q6: float,
                        q_hint: Sequence[float]) -> tuple[float, float, float]:
    """Outer yaw, pitch and insertion putting the tip at ``p`` with the wrist fixed.

    The tip is ``R3 @ u`` with ``u`` = the wrist offset plus the shaft length; the
    insertion sets |u| = |p|, then outer pitch and yaw rotate ``u`` onto ``p``.
    Falls back to the hint's outer joints where no exact answer exists.
    """
    wx, wy, wz = _wrist_offset(q4, q5)
    lateral2 = wx * wx + wy * wy
    dist2 = p[0] * p[0] + p[1] * p[1] + p[2] * p[2]
    if dist2 <= lateral2:
        return (q_hint[0], q_hint[1], q_hint[2])
    q3 = math.sqrt(dist2 - lateral2) - wz - _SHAFT_TO_WRIST
    q3 = min(JOINT_UPPER[2], max(JOINT_LOWER[2], q3))
    uz = wz + q3 + _SHAFT_TO_WRIST
    # Row 2 of R3 @ u = p_y gives t2; rows 1 and 3 are a planar rotation by t1.
    radius = math.hypot(wx, uz)
    phi = math.atan2(uz, wx)
    ratio = max(-1.0, min(1.0, p[1] / radius)) if radius > 1e-12 else 0.0
    candidates = []
    for t2 in (phi + math.asin(ratio), phi + math.pi - math.asin(ratio)):
        k = math.cos(t2) * wx + math.sin(t2) * uz
        t1 = math.atan2(p[2], p[0]) - math.atan2(wy, k)
        candidates.append((_wrap(t1 - _OFFSETS[0]), _wrap(t2 - _OFFSETS[1]), q3))
    # The first of the least beyond the limits, then nearest the hint.
    return min(candidates, key=lambda c: (_violation((*c, q4, q5, q6)),
                                          _distance(c, q_hint[:3])))


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
