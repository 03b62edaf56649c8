"""Pure safety checks: command validation, sequence and age, workspace clamp, motion limits.

No threads, no I/O, no clock: every function is given the times it needs. Positions
are [m] in the arm base frame, whose origin is the remote centre of motion (RCM);
angles [rad]; times [ns]; durations [s] where a name ends in ``_s``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from telesurgery.config import SafetyConfig
from telesurgery.errors import SafetyError
from telesurgery.geometry import (
    Quat,
    Vec3,
    quat_angle,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_rotvec,
    rotvec_to_quat,
)
from telesurgery.messages import JawServoJP, ServoCP
from telesurgery.types import Pose

ZERO: Vec3 = (0.0, 0.0, 0.0)
TOLERANCE_M = 1e-9
"""Slack [m] when testing a point against the workspace, for rounding in the clamp."""


class Reason(enum.Enum):
    """Why the safety supervisor rejected a command; the value is the name used in status
    JSON. (The tag gate in front of it counts its own verdicts, ``security.tags.TagReason``.)"""

    MALFORMED = "malformed"
    """Not a command body, a quaternion that is not unit, or a sample taken after sending."""
    NON_FINITE = "non_finite"
    """A NaN or infinite number in the pose or jaw angle."""
    UNKNOWN_ARM = "unknown_arm"
    """The command names an arm this robot does not drive."""
    WRONG_SESSION = "wrong_session"
    """From a console session that does not own the robot."""
    DUPLICATE = "duplicate"
    """The same sequence number as the last command of its stream."""
    OUT_OF_ORDER = "out_of_order"
    """An older sequence number than the last command of its stream."""
    STALE = "stale"
    """Older than the command age limit when it arrived."""
    CLOCK_SKEW = "clock_skew"
    """Sent further in the future than the age limit: the clocks disagree."""
    NOT_ENABLED = "not_enabled"
    """The supervisor is disabled."""
    ESTOPPED = "estopped"
    """The emergency stop is latched."""
    NOT_ENGAGED = "not_engaged"
    """The arm is held and the console has not clutched since."""
    NOT_ALIGNED = "not_aligned"
    """Clutch released with the hand's target too far from the tool: no jump allowed."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the supervisor decided about one command."""

    accepted: bool
    reason: Reason | None = None


ACCEPTED = Verdict(True)
REJECTED: Mapping[Reason, Verdict] = MappingProxyType({r: Verdict(False, r) for r in Reason})
"""One preallocated rejection per reason: the hot path allocates nothing for a verdict."""


def validate_pose(pose: Pose) -> Reason | None:
    """``NON_FINITE`` for NaN or infinity, ``MALFORMED`` for a quaternion that is not unit."""
    p, q = pose.position, pose.orientation
    if not (math.isfinite(p[0]) and math.isfinite(p[1]) and math.isfinite(p[2])
            and math.isfinite(q[0]) and math.isfinite(q[1]) and math.isfinite(q[2])
            and math.isfinite(q[3])):
        return Reason.NON_FINITE
    if not pose.is_finite():
        return Reason.MALFORMED
    return None


def validate_command(body: ServoCP | JawServoJP, sent_ns: int) -> Reason | None:
    """Check the numbers of a decoded command; ``sent_ns`` [ns] is its header's send time.

    The input sample behind a command is taken before the command is sent (both on
    the console's clock), so a later ``sample_ns`` is a malformed message.
    """
    if body.sample_ns > sent_ns:
        return Reason.MALFORMED
    if isinstance(body, ServoCP):
        return validate_pose(body.pose)
    return None if math.isfinite(body.angle) else Reason.NON_FINITE


def check_sequence(last_seq: int | None, seq: int) -> Reason | None:
    """``DUPLICATE`` or ``OUT_OF_ORDER`` against the last accepted ``seq`` of the stream.

    One of three sequence checks on a command (after ``security.tags.ReplayWindow`` and
    ``transport.dualpath.FirstArrival``); only this one keeps an arm's targets in order:
    the other two let through a number older than one already delivered (reordered on
    one path, or with security off), and a late target must never replace a newer one.
    """
    if last_seq is None or seq > last_seq:
        return None
    return Reason.DUPLICATE if seq == last_seq else Reason.OUT_OF_ORDER


def check_age(sent_ns: int, now_ns: int, max_age_ns: int) -> Reason | None:
    """``STALE`` when older than ``max_age_ns``; ``CLOCK_SKEW`` when as far in the future.

    ``sent_ns`` must already be on the local clock (add the peer's clock offset first).
    """
    age = now_ns - sent_ns
    if age > max_age_ns:
        return Reason.STALE
    if age < -max_age_ns:
        return Reason.CLOCK_SKEW
    return None


def _sub(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _add(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _scale(a: Vec3, s: float) -> Vec3:
    return (a[0] * s, a[1] * s, a[2] * s)


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm(a: Vec3) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where the tool tip may be: inside the box ``lo``..``hi`` [m] and at least
    ``rcm_min_m`` [m] from the RCM (the origin)."""

    lo: Vec3
    hi: Vec3
    rcm_min_m: float

    def __post_init__(self) -> None:
        if not all(a < b for a, b in zip(self.lo, self.hi, strict=True)):
            raise SafetyError(f"workspace box {self.lo}..{self.hi} is empty; "
                              "make every workspace_min_m below workspace_max_m")
        if _norm(self._far_corner()) < self.rcm_min_m:
            raise SafetyError(f"workspace box {self.lo}..{self.hi} lies entirely within "
                              f"{self.rcm_min_m} m of the RCM; enlarge the box")

    @classmethod
    def from_config(cls, cfg: SafetyConfig) -> Workspace:
        """The workspace that ``cfg`` describes."""
        return cls(cfg.workspace_min_m, cfg.workspace_max_m, cfg.rcm_min_distance_m)

    def _far_corner(self) -> Vec3:
        lo, hi = self.lo, self.hi
        return (lo[0] if abs(lo[0]) > abs(hi[0]) else hi[0],
                lo[1] if abs(lo[1]) > abs(hi[1]) else hi[1],
                lo[2] if abs(lo[2]) > abs(hi[2]) else hi[2])

    def clip_box(self, p: Vec3) -> Vec3:
        """``p`` clipped to the box, axis by axis (the nearest point of the box)."""
        lo, hi = self.lo, self.hi
        return (min(max(p[0], lo[0]), hi[0]), min(max(p[1], lo[1]), hi[1]),
                min(max(p[2], lo[2]), hi[2]))

    def contains(self, p: Vec3) -> bool:
        """True when ``p`` is in the box and far enough from the RCM (within 1 nm)."""
        lo, hi, t = self.lo, self.hi, TOLERANCE_M
        return (lo[0] - t <= p[0] <= hi[0] + t and lo[1] - t <= p[1] <= hi[1] + t
                and lo[2] - t <= p[2] <= hi[2] + t
                and _dot(p, p) >= (self.rcm_min_m - t) ** 2)

    def clamp(self, p: Vec3) -> Vec3:
        """A point of the workspace near ``p``: ``p`` itself when it is inside.

        Clipped to the box, then pushed radially out of the RCM sphere; where the box
        cuts that sphere and the push leaves the box, the point moves toward the box
        corner farthest from the RCM until it clears the sphere.
        """
        q = self.clip_box(p)
        r_min = self.rcm_min_m
        n = _norm(q)
        if n >= r_min - TOLERANCE_M:
            return q
        # At the RCM itself the direction is meaningless: push down (-z), the way an
        # instrument enters.
        out = _scale(q, r_min / n) if n > TOLERANCE_M else (0.0, 0.0, -r_min)
        if self.contains(out):
            return out
        return _exit_sphere(q, _sub(self._far_corner(), q), r_min)


def _exit_sphere(q: Vec3, d: Vec3, radius: float) -> Vec3:
    """The first point of ``q + t d`` (t in [0, 1]) at ``radius`` from the origin; ``q``
    is inside the sphere and ``q + d`` outside."""
    a, b, c = _dot(d, d), 2.0 * _dot(q, d), _dot(q, q) - radius * radius
    t = min(1.0, (-b + math.sqrt(b * b - 4.0 * a * c)) / (2.0 * a))
    return _add(q, _scale(d, t))


@dataclass(frozen=True, slots=True)
class MotionLimits:
    """Speed [m/s], acceleration [m/s^2], angular speed [rad/s] and jaw speed [rad/s]."""

    linear_speed_m_s: float
    linear_accel_m_s2: float
    angular_speed_rad_s: float
    jaw_speed_rad_s: float

    @classmethod
    def from_config(cls, cfg: SafetyConfig) -> MotionLimits:
        """The limits that ``cfg`` sets."""
        return cls(cfg.max_linear_speed_m_s, cfg.max_linear_accel_m_s2,
                   cfg.max_angular_speed_rad_s, cfg.max_jaw_speed_rad_s)


@dataclass(frozen=True, slots=True)
class Setpoint:
    """A commanded tool-tip ``pose`` and the linear ``velocity`` [m/s] that reached it."""

    pose: Pose
    velocity: Vec3 = ZERO


def _braking_speed(distance: float, accel: float, dt_s: float) -> float:
    """The highest speed [m/s] from which steps of ``dt_s`` decelerating at ``accel``
    stop within ``distance`` [m]: solves v^2 / (2 a) + v dt / 2 = distance."""
    half = 0.5 * dt_s
    return accel * (math.sqrt(half * half + 2.0 * distance / accel) - half)


def next_setpoint(prev: Setpoint, goal: Pose, limits: MotionLimits, workspace: Workspace,
                  dt_s: float) -> Setpoint:
    """The setpoint one servo period ``dt_s`` [s] after ``prev``, moving toward ``goal``.

    Linear speed stays within the speed limit; acceleration within the acceleration
    limit except where the workspace boundary stops the tip; rotation within the
    angular speed limit. From a setpoint inside ``workspace`` the result is inside it;
    from one outside (an arm parked out of the box) the tip moves toward ``goal``,
    which the caller has clamped into the workspace.
    """
    p, v = prev.pose.position, prev.velocity
    v_max, a_max = limits.linear_speed_m_s, limits.linear_accel_m_s2
    d = _sub(goal.position, p)
    dist = _norm(d)
    v_des = ZERO
    if dist > 0.0:
        speed = min(v_max, dist / dt_s, _braking_speed(dist, a_max, dt_s))
        v_des = _scale(d, speed / dist)
    dv = _sub(v_des, v)
    dv_norm, dv_max = _norm(dv), a_max * dt_s
    if dv_norm > dv_max:
        dv = _scale(dv, dv_max / dv_norm)
    step = _scale(_add(v, dv), dt_s)
    step_norm, step_max = _norm(step), v_max * dt_s
    if step_norm > step_max:  # rounding only: v + dv lies between two vectors within v_max
        step = _scale(step, step_max / step_norm)
    target = _add(p, step)
    if workspace.contains(p) and not workspace.contains(target):
        target = _stay_inside(p, step, workspace)
        step = _sub(target, p)
    return Setpoint(Pose(target, _rotate_toward(prev.pose.orientation, goal.orientation,
                                                limits.angular_speed_rad_s * dt_s)),
                    _scale(step, 1.0 / dt_s))


def applied_setpoint(prev: Setpoint, planned: Setpoint, applied: Pose,
                     dt_s: float) -> Setpoint:
    """The setpoint after the robot was sent ``planned`` and reports it ``applied`` (the
    pose it clipped to what its joints reach), one period ``dt_s`` [s] after ``prev``.

    As planned: ``planned``. Clipped: the applied pose, with the velocity [m/s] of the step
    the tip really made, no faster than planned, so that the motion limiter continues
    from where the tool is and not from a pose the robot never took (which would stall
    the tip at the limit while the plan runs back, then start it with a jump).
    """
    if applied == planned.pose:
        return planned
    step = _scale(_sub(applied.position, prev.pose.position), 1.0 / dt_s)
    speed, planned_speed = _norm(step), _norm(planned.velocity)
    if speed > planned_speed:
        step = _scale(step, planned_speed / speed)
    return Setpoint(applied, step)


def _stay_inside(p: Vec3, step: Vec3, workspace: Workspace) -> Vec3:
    """Where a step from ``p`` (inside) ends when the workspace stops it, never longer.

    Clipping to the box is a projection onto a convex set and cannot lengthen the step;
    removing the component toward the RCM slides along the sphere and cannot bring the
    tip closer to it; failing both, the tip stays.
    """
    clipped = workspace.clip_box(_add(p, step))
    if workspace.contains(clipped):
        return clipped
    n = _norm(p)
    inward = _dot(step, p) / n if n > 0.0 else 0.0
    if inward < 0.0:
        slid = workspace.clip_box(_add(p, _sub(step, _scale(p, inward / n))))
        if workspace.contains(slid):
            return slid
    return p


def _rotate_toward(q: Quat, goal: Quat, max_angle: float) -> Quat:
    angle = quat_angle(q, goal)
    if angle <= max_angle:
        return quat_normalize(goal)
    delta = quat_to_rotvec(quat_mul(goal, quat_conj(q)))
    return quat_normalize(quat_mul(rotvec_to_quat(_scale(delta, max_angle / angle)), q))


def stopping_pose(prev: Setpoint, limits: MotionLimits, dt_s: float) -> Pose:
    """Where the tip comes to rest braking at the acceleration limit in steps of ``dt_s``
    [s], orientation kept: v^2 / (2 a) + v dt / 2 ahead [m]."""
    speed = _norm(prev.velocity)
    if speed == 0.0:
        return prev.pose
    travel = speed / (2.0 * limits.linear_accel_m_s2) + 0.5 * dt_s
    return Pose(_add(prev.pose.position, _scale(prev.velocity, travel)), prev.pose.orientation)


CONTACT_ADMITTANCE_M_S_N = 0.005
"""Speed [m/s] per newton of force error at which a tip held at the force cap moves along
the contact's normal (out over the cap, in under it). Our choice: against the arm's own
stiffness on a rigid surface (about 24 N/mm, the 237 N of ``bench holds``' 10 mm press) it
corrects an eighth of the error each 1 ms tick, a time constant of about 8 ms, several
times the force sensor's 2.3 ms delay, so the loop settles without ringing."""
MAX_RETREAT_M_S = 0.05
"""Fastest [m/s] a tip held at the force cap backs out by itself. Our choice: a fifth of
the speed limit; it only undoes the last millimetres pressed."""
MAX_APPROACH_M_S = 0.01
"""Fastest [m/s] a tip held at the force cap moves toward the contact, however hard the
hand pushes. Our choice: a tip meeting a rigid surface at that speed adds about 3 N (the
servo trails by 2 v / omega = 0.13 mm at 150 rad/s, against some 24 N/mm), where the
full 0.25 m/s adds tens of newtons; a hand that presses on the tissue it already touches
loses nothing by it."""
MAX_SLIDE_M_S = 0.05
"""Fastest [m/s] a tip held at the force cap slides along the surface. Our choice: dragged
faster while pressing, the friction (a coefficient of 1 on the board) sticks and slips and
adds several newtons to the force; at this pace the limiter keeps up with it."""
CAP_FREE_FRACTION = 0.05
"""Under this fraction of the force cap, the tip feels next to nothing."""
CAP_FREE_S = 0.1
"""How long [s] a tip held at the force cap may feel next to nothing before the cap lets
go: longer than it takes a tip that bounced off the surface to come back to it (about
40 ms on the board), short beside a hand lifting the tool away."""
CAP_CLEAR_FRACTION = 0.9
"""A force or grip cap reached holds until the reading falls below this fraction of the cap
(and, for the force, the hand moves away from the contact): hysteresis, so that a reading
hovering at the cap neither chatters nor floods the trail."""


def _no_slower_out(step: Vec3, direction: Vec3, least: float) -> Vec3:
    """``step`` [m] with its component along the unit ``direction`` at least ``least`` [m]."""
    along = _dot(step, direction)
    return step if along >= least else _add(step, _scale(direction, least - along))


@dataclass(frozen=True, slots=True)
class ContactCap:
    """A force cap that holds: ``normal``, the unit direction the contact pushed the tip
    when the force reached the cap; ``free_s`` [s], how long the tip has felt next to
    nothing since (it bounced off, or was lifted)."""

    normal: Vec3
    free_s: float = 0.0


def limit_contact(prev: Setpoint, planned: Setpoint, goal: Vec3, force: Vec3, tip: Vec3,
                  cap_n: float, held: ContactCap | None, workspace: Workspace,
                  dt_s: float) -> tuple[Setpoint, ContactCap | None]:
    """The setpoint one period ``dt_s`` [s] after ``prev`` that keeps the force at the tip
    at the cap ``cap_n`` [N] once it reached it, and the cap while it holds (``held``:
    what the last tick returned; None: not at the cap); ``goal``: where the hand wants the
    tip [m]; ``tip``: where the tip is [m].

    At the cap, motion along the normal is force-controlled: the tip moves out at
    ``CONTACT_ADMITTANCE_M_S_N`` per newton over the cap and in, no faster than the hand
    asks nor than ``MAX_APPROACH_M_S``, per newton under it, whatever the hand does;
    along the surface the tip slides no faster than ``MAX_SLIDE_M_S``; motion away from
    it faster than the force control is the hand's. The cap is
    let go when the force falls under ``CAP_CLEAR_FRACTION`` of it while the hand moves
    away from the contact, or once the tip has felt next to nothing for
    ``CAP_FREE_S``; until then a tip that bounced off does not strike again at full speed.
    """
    magnitude = _norm(force)
    reached = held is None and magnitude >= cap_n
    if reached:
        # Kept while the cap holds: once the tip slides, friction tilts the force up to
        # the friction cone's angle (45 degrees at the model's friction of 1) and the
        # force's direction no longer says where the surface is.
        held = ContactCap(_scale(force, 1.0 / magnitude))
    if held is None:  # NaN from a broken sensor lands here too: no reading to act on
        return planned, None
    if magnitude < CAP_CLEAR_FRACTION * cap_n and _dot(_sub(goal, tip), held.normal) >= 0.0:
        return planned, None
    if magnitude < CAP_FREE_FRACTION * cap_n:
        if held.free_s >= CAP_FREE_S:
            return planned, None
        held = ContactCap(held.normal, held.free_s + dt_s)
    elif held.free_s:
        held = ContactCap(held.normal)
    step = _sub(planned.pose.position, prev.pose.position)
    controlled = min(max(CONTACT_ADMITTANCE_M_S_N * (magnitude - cap_n), -MAX_APPROACH_M_S),
                     MAX_RETREAT_M_S)
    along = _dot(step, held.normal)
    across = _sub(step, _scale(held.normal, along))
    slide = _norm(across)
    if slide > MAX_SLIDE_M_S * dt_s:
        step = _sub(step, _scale(across, 1.0 - MAX_SLIDE_M_S * dt_s / slide))
    step = _no_slower_out(step, held.normal, controlled * dt_s)
    if magnitude >= cap_n and not reached:
        # Sliding on, the tip meets the surface where it is now, which the force's present
        # direction tells as well as the first: over the cap, no step goes into it either.
        step = _no_slower_out(step, _scale(force, 1.0 / magnitude), 0.0)
    velocity = _scale(step, 1.0 / dt_s)
    if reached:
        # The servo trails a moving setpoint (3.3 mm at 0.25 m/s, 2 v / omega): the tip
        # stopped by the contact, the setpoint runs on into it, and the force with it.
        # Brought back level with the tip, it presses no deeper than the tip went.
        ahead = _dot(_sub(tip, _add(prev.pose.position, step)), held.normal)
        if ahead > 0.0:
            step = _add(step, _scale(held.normal, ahead))
    position = workspace.clamp(_add(prev.pose.position, step))
    return Setpoint(Pose(position, planned.pose.orientation), velocity), held


GRIP_ADMITTANCE_RAD_S_N = 5.0
"""Speed [rad/s] per newton over the grip cap at which the jaws open by themselves. Our
choice: the simulated fingers' servos (0.1 N m/rad each, gripping 5.5 mm from their hinge)
squeeze about 9 N more per radian the jaw closes, so this takes back about a twentieth of
the excess a tick, slow beside the fingers' 100 rad/s servos and the sensor's delay."""


GRIP_GENTLE_FRACTION = 0.5
"""From this fraction of the grip cap on, the jaws close slowly (``GRIP_GENTLE_RAD_S``)."""
GRIP_GENTLE_RAD_S = 0.5
"""Fastest [rad/s] jaws already squeezing at half the cap close. Our choice: closing at the
full 8 rad/s, the fingers' servos (100 rad/s) trail their setpoint by 0.16 rad, which they
squeeze into the object a few milliseconds later, past the cap; at this pace, 0.01 rad."""


def limit_grip(prev: float, planned: float, grip_n: float, cap_n: float,
               dt_s: float) -> float:
    """The jaw angle [rad] one period ``dt_s`` [s] after ``prev``, given the ``planned``
    one and the grip ``grip_n`` [N]: at the cap ``cap_n`` [N] the jaws close no further,
    and over it they open at ``GRIP_ADMITTANCE_RAD_S_N`` per newton, so the grip settles
    at the cap; from ``GRIP_GENTLE_FRACTION`` of the cap they close no faster than
    ``GRIP_GENTLE_RAD_S``. Opening faster, as the hand asks, is the hand's."""
    if grip_n >= cap_n:
        return max(planned, prev + GRIP_ADMITTANCE_RAD_S_N * (grip_n - cap_n) * dt_s)
    if grip_n >= GRIP_GENTLE_FRACTION * cap_n:
        return max(planned, prev - GRIP_GENTLE_RAD_S * dt_s)
    return planned


def next_jaw(prev: float, goal: float, max_speed_rad_s: float, dt_s: float) -> float:
    """The jaw angle [rad] one period ``dt_s`` [s] after ``prev``, toward ``goal``."""
    step = max_speed_rad_s * dt_s
    return prev + min(max(goal - prev, -step), step)


def misalignment(setpoint: Pose, goal: Pose) -> tuple[float, float]:
    """Distance [m] and rotation angle [rad] between the tool's setpoint and a target."""
    return setpoint.distance(goal), quat_angle(setpoint.orientation, goal.orientation)


__all__ = [
    "ACCEPTED",
    "CAP_CLEAR_FRACTION",
    "CAP_FREE_FRACTION",
    "CAP_FREE_S",
    "CONTACT_ADMITTANCE_M_S_N",
    "GRIP_ADMITTANCE_RAD_S_N",
    "GRIP_GENTLE_FRACTION",
    "GRIP_GENTLE_RAD_S",
    "MAX_APPROACH_M_S",
    "MAX_RETREAT_M_S",
    "MAX_SLIDE_M_S",
    "REJECTED",
    "ContactCap",
    "MotionLimits",
    "Reason",
    "Setpoint",
    "Verdict",
    "Workspace",
    "applied_setpoint",
    "check_age",
    "check_sequence",
    "limit_contact",
    "limit_grip",
    "misalignment",
    "next_jaw",
    "next_setpoint",
    "stopping_pose",
    "validate_command",
    "validate_pose",
]
