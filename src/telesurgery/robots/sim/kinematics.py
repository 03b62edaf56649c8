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
from telesurgery.geometry import FloatArray
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
_PEEL: Final = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""``Rx(pi/2)``."""


def _rx_rz(alpha: float, theta: float) -> FloatArray:
    """``Rx(alpha) Rz(theta)`` for alpha in {0, +pi/2, -pi/2} (the table's only values)."""
    c, s = math.cos(theta), math.sin(theta)
    if alpha == 0.0:
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    sa = 1.0 if alpha > 0.0 else -1.0
    return np.array([[c, -s, 0.0], [0.0, 0.0, -sa], [sa * s, sa * c, 0.0]])


def _shaft_rotation(q1: float, q2: float) -> FloatArray:
    """Rotation of DH frame 3 (z along the shaft, into the patient) for outer yaw/pitch."""
    c1, s1 = math.cos(q1 + PSM_DH[0].offset), math.sin(q1 + PSM_DH[0].offset)
    c2, s2 = math.cos(q2 + PSM_DH[1].offset), math.sin(q2 + PSM_DH[1].offset)
    return np.array([[c1 * c2, -s1, c1 * s2], [s2, 0.0, -c2], [s1 * c2, c1, s1 * s2]])


def _wrist(q4: float, q5: float, q6: float) -> tuple[FloatArray, FloatArray]:
    """Rotation of DH frame 6 in frame 3 and the yaw-axis origin in frame 3 minus the
    shaft part (so that position = R3 @ (offset + (0, 0, q3 + _SHAFT_TO_WRIST)))."""
    r34 = _rx_rz(0.0, q4)
    r45 = _rx_rz(PSM_DH[4].alpha, q5 + PSM_DH[4].offset)
    r35 = r34 @ r45
    r36 = r35 @ _rx_rz(PSM_DH[5].alpha, q6 + PSM_DH[5].offset)
    return r36, _WRIST_LENGTH * r35[:, 0]


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
    r3 = _shaft_rotation(q[0], q[1])
    r36, wrist = _wrist(q[3], q[4], q[5])
    m = np.eye(4)
    m[:3, :3] = r3 @ r36 @ TOOLTIP_OFFSET
    local = wrist.copy()
    local[2] += q[2] + _SHAFT_TO_WRIST
    m[:3, 3] = r3 @ local
    return m


def fk(q: Sequence[float]) -> Pose:
    """Tool tip pose in the base (RCM) frame [m] for joints ``q`` [rad, m]."""
    return Pose.from_matrix(fk_matrix(q))


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
    _, wrist = _wrist(clamped[3], clamped[4], clamped[5])
    lateral2 = float(wrist[0] ** 2 + wrist[1] ** 2)
    reach2 = MIN_TIP_RCM_DISTANCE_M**2 - lateral2
    if reach2 <= 0.0:
        return clamped
    along = clamped[2] + _SHAFT_TO_WRIST + float(wrist[2])
    if along * along >= reach2 and along > 0.0:
        return clamped
    q3 = math.sqrt(reach2) - float(wrist[2]) - _SHAFT_TO_WRIST
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
    turns) nearest ``q_hint``; with ``within_limits`` only those inside the limits."""
    m = pose.matrix()
    p = m[:3, 3]
    r6 = m[:3, :3] @ TOOLTIP_OFFSET.T
    # The RCM seen from the yaw frame lies on the shaft line, which is orthogonal to
    # the wrist-pitch axis: that fixes the wrist-yaw angle up to a half turn.
    rcm = -(r6.T @ p)
    out: list[tuple[float, ...]] = []
    if math.hypot(rcm[0], rcm[1]) < 1e-12:
        return out
    base_t6 = math.atan2(-rcm[1], rcm[0])
    for t6 in (base_t6, base_t6 + math.pi):
        # The two branches differ by a half turn of the wrist yaw, whose range is less
        # than that: at most one is within limits, and q6 alone tells which.
        q6 = _wrap(t6 - PSM_DH[5].offset)
        if within_limits and not JOINT_LOWER[5] - _LIMIT_TOL <= q6 <= JOINT_UPPER[5] + _LIMIT_TOL:
            continue
        x5 = r6 @ np.array([math.cos(t6), -math.sin(t6), 0.0])
        pitch_point = p - _WRIST_LENGTH * x5
        along = math.sqrt(float(pitch_point @ pitch_point))
        if along < 1e-9:
            continue
        ux, uy, uz = (float(v) / along for v in pitch_point)
        q1 = math.atan2(ux, -uz)
        q2 = math.asin(max(-1.0, min(1.0, -uy)))
        q3 = along - _SHAFT_TO_WRIST
        if within_limits and not in_limits((q1, q2, q3, 0.0, 0.0, 0.0)):
            continue
        # r3^T r6 = Rz(q4) Rx(-pi/2) Rz(t5) Rx(-pi/2) Rz(t6): peel off the last two.
        w = _shaft_rotation(q1, q2).T @ r6 @ _rx_rz(0.0, -t6) @ _PEEL
        q4 = math.atan2(-float(w[0, 2]), float(w[1, 2]))
        q4 += _TWO_PI * round((q_hint[3] - q4) / _TWO_PI)
        if q4 > JOINT_UPPER[3]:
            q4 -= _TWO_PI
        elif q4 < JOINT_LOWER[3]:
            q4 += _TWO_PI
        t5 = math.atan2(-float(w[2, 0]), -float(w[2, 1]))
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
    _, wrist = _wrist(q4, q5, q6)
    lateral2 = float(wrist[0] ** 2 + wrist[1] ** 2)
    dist2 = float(p @ p)
    if dist2 <= lateral2:
        return (q_hint[0], q_hint[1], q_hint[2])
    q3 = math.sqrt(dist2 - lateral2) - float(wrist[2]) - _SHAFT_TO_WRIST
    q3 = min(JOINT_UPPER[2], max(JOINT_LOWER[2], q3))
    u = wrist.copy()
    u[2] += q3 + _SHAFT_TO_WRIST
    # Row 2 of R3 @ u = p_y gives t2; rows 1 and 3 are a planar rotation by t1.
    radius = math.hypot(float(u[0]), float(u[2]))
    phi = math.atan2(float(u[2]), float(u[0]))
    ratio = max(-1.0, min(1.0, float(p[1]) / radius)) if radius > 1e-12 else 0.0
    best: tuple[float, float, float] | None = None
    for t2 in (phi + math.asin(ratio), phi + math.pi - math.asin(ratio)):
        k = math.cos(t2) * float(u[0]) + math.sin(t2) * float(u[2])
        t1 = math.atan2(float(p[2]), float(p[0])) - math.atan2(float(u[1]), k)
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
