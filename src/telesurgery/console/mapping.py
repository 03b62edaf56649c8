"""Teleoperation mapping of one arm: clutch, motion scaling, tremor filter, camera frame.

Frames: the hand moves in the view frame, whose axes are the endoscope camera's
(x right, y down, z forward); the instrument is commanded in its arm's base
frame; the patient side gives the registration, the arm base frame expressed
in the camera frame. Positions [m], angles [rad], times [ns].

While engaged (clutch released), with the anchors ``H0`` (hand) and ``T0`` (the
measured tool pose in the view frame) taken at the release::

    target.position    = T0.position + sum over ticks of scale * d(filter(H.position - H0.position))
    target.orientation = filter(H.rot * H0.rot^-1) * T0.rot      (in the view frame)

then expressed in the base frame. Motion is scaled down (0.2, the dVRK default)
and orientation is not (1:1, so the instrument turns as the wrist does). The
tremor filter sees displacements from the anchor, including the rotation vector
of the relative hand rotation: orientation tremor is not scaled down, so it
needs the filter more than position does. While the clutch is pressed the
target stays where it was and nothing moves; the next release re-anchors on the
measured tool pose, so the arm never jumps. A change of registration
re-anchors too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from telesurgery.config import TremorConfig
from telesurgery.console.tremor import TremorFilter
from telesurgery.errors import ConfigError
from telesurgery.geometry import (
    Quat,
    Vec3,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_rotvec,
    rotvec_to_quat,
)
from telesurgery.input.base import HandSample
from telesurgery.messages import JawServoJP, ServoCP
from telesurgery.types import Pose

DEFAULT_SCALE = 0.2
"""Motion scale, tool displacement over hand displacement (dVRK PSM teleoperation default)."""
JAW_CLOSED_RAD = -0.2
"""Jaw target [rad] for a closed grip (0): slightly past closed, so the jaw squeezes."""
JAW_OPEN_RAD = 1.0
"""Jaw target [rad] for a fully open grip (1)."""
_TWO_PI = 2.0 * math.pi


def grip_to_jaw(grip: float) -> float:
    """Jaw target [rad] of a grip in [0 closed, 1 open]; values outside are clamped."""
    g = min(1.0, max(0.0, grip))
    return JAW_CLOSED_RAD + (JAW_OPEN_RAD - JAW_CLOSED_RAD) * g


def unwrap_rotvec(v: Vec3, previous: Vec3) -> Vec3:
    """The rotation vector of the same rotation as ``v`` nearest to ``previous`` [rad].

    ``v`` has an angle in [0, pi]; the result may exceed pi so that a rotation
    growing past half a turn stays continuous, as a linear filter needs.
    """
    angle = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if angle > 1e-12:
        axis = (v[0] / angle, v[1] / angle, v[2] / angle)
    else:
        # Near identity the axis is free: a full turn about the previous axis is
        # the same rotation, so follow that axis.
        p = math.sqrt(previous[0] ** 2 + previous[1] ** 2 + previous[2] ** 2)
        if p < 1e-12:
            return v
        axis = (previous[0] / p, previous[1] / p, previous[2] / p)
    along = axis[0] * previous[0] + axis[1] * previous[1] + axis[2] * previous[2]
    turns = round((along - angle) / _TWO_PI)
    if turns == 0:
        return v
    a = angle + _TWO_PI * turns
    return (axis[0] * a, axis[1] * a, axis[2] * a)


@dataclass(frozen=True, slots=True)
class ArmCommand:
    """What the console sends for one arm this tick: the pose target and, once a jaw
    target is known, the jaw target. ``rejected``: an input was not finite, so the
    tick held."""

    servo: ServoCP
    jaw: JawServoJP | None
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Taken at clutch release: the hand (``hand_rot_inv`` = H0.rot^-1), the measured tool
    pose in the view frame, and the registration both conversions use."""

    hand_position: Vec3
    hand_rot_inv: Quat
    tool_in_view: Pose
    registration: Pose
    view_to_base: Pose


class TeleopMapping:
    """The hand-to-instrument mapping of one arm; pure (no I/O), one ``step`` per tick.

    ``scale``: tool over hand displacement, which may change between ticks (the delay's
    scaling): each tick's hand motion is scaled by the scale of that tick, so a change never
    moves the target; ``rate_hz`` [Hz]: the rate of ``step`` calls, for which the tremor
    filter is designed. ``rejected`` counts ticks
    whose inputs were not finite; those ticks hold, as a pressed clutch does.
    """

    def __init__(self, arm: str, scale: float = DEFAULT_SCALE,
                 tremor: TremorConfig | None = None, rate_hz: float = 1000.0) -> None:
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"motion scale {scale} must be in (0, 1]; the dVRK uses "
                              f"{DEFAULT_SCALE}")
        self.arm = arm
        self.scale = scale
        self.rejected = 0
        # Three position channels, then the relative hand rotation vector.
        self._filter = TremorFilter(tremor or TremorConfig(), rate_hz, channels=6)
        self._anchor: _Anchor | None = None
        self._rotvec: Vec3 = (0.0, 0.0, 0.0)
        # The hand's filtered displacement at the last tick, and the tool's scaled one: a
        # new scale applies to the motion from then on, so the target never jumps.
        self._hand: Vec3 = (0.0, 0.0, 0.0)
        self._tool: Vec3 = (0.0, 0.0, 0.0)
        self._target: Pose | None = None
        self._jaw: float | None = None

    @property
    def engaged(self) -> bool:
        """True while the hand drives the instrument (anchored, clutch released)."""
        return self._anchor is not None

    @property
    def target(self) -> Pose | None:
        """The last pose target in the base frame [m]; None before any measured pose."""
        return self._target

    def hold(self, sample: HandSample) -> ServoCP:
        """A clutched heartbeat at the last target, for ticks when the registration or the
        measured pose is not yet known. The identity pose stands in before any target:
        receivers never move an arm on a clutched command."""
        self._anchor = None
        return ServoCP(self.arm, self._target or Pose(), sample.t_ns, clutch=True)

    def step(self, sample: HandSample, measured: Pose, measured_jaw: float,
             registration: Pose) -> ArmCommand:
        """Map one hand sample to this tick's command.

        ``measured``: the tool tip pose in the base frame [m]; ``measured_jaw`` [rad];
        ``registration``: the base frame expressed in the camera frame.
        """
        anchor = self._anchor
        # The registration the anchor holds was checked when it was taken.
        known = anchor is not None and registration is anchor.registration
        if not (sample.pose.is_finite() and math.isfinite(sample.grip)
                and measured.is_finite() and math.isfinite(measured_jaw)
                and (known or registration.is_finite())):
            self.rejected += 1
            return ArmCommand(self.hold(sample), self._jaw_body(sample), rejected=True)
        if self._target is None:
            self._target = measured
            self._jaw = measured_jaw
        if sample.clutch:
            self._anchor = None
            return ArmCommand(ServoCP(self.arm, self._target, sample.t_ns, clutch=True),
                              self._jaw_body(sample))
        if anchor is None or (not known and anchor.registration != registration):
            anchor = self._reanchor(sample, measured, registration)
        hand = sample.pose
        h0 = anchor.hand_position
        rel = quat_to_rotvec(quat_mul(hand.orientation, anchor.hand_rot_inv))
        self._rotvec = unwrap_rotvec(rel, self._rotvec)
        d = self._filter.step((hand.position[0] - h0[0], hand.position[1] - h0[1],
                               hand.position[2] - h0[2], *self._rotvec))
        t0 = anchor.tool_in_view
        s = self.scale
        h, t = self._hand, self._tool
        t = self._tool = (t[0] + s * (d[0] - h[0]), t[1] + s * (d[1] - h[1]),
                          t[2] + s * (d[2] - h[2]))
        self._hand = (d[0], d[1], d[2])
        in_view = Pose(
            (t0.position[0] + t[0], t0.position[1] + t[1], t0.position[2] + t[2]),
            quat_normalize(quat_mul(rotvec_to_quat((d[3], d[4], d[5])), t0.orientation)),
        )
        self._target = anchor.view_to_base.compose(in_view)
        self._jaw = grip_to_jaw(sample.grip)
        return ArmCommand(ServoCP(self.arm, self._target, sample.t_ns, clutch=False),
                          self._jaw_body(sample))

    def _reanchor(self, sample: HandSample, measured: Pose, registration: Pose) -> _Anchor:
        self._filter.reset()
        self._rotvec = (0.0, 0.0, 0.0)
        self._hand = self._tool = (0.0, 0.0, 0.0)
        self._anchor = _Anchor(
            hand_position=sample.pose.position,
            hand_rot_inv=quat_conj(sample.pose.orientation),
            tool_in_view=registration.compose(measured),
            registration=registration,
            view_to_base=registration.inverse(),
        )
        return self._anchor

    def _jaw_body(self, sample: HandSample) -> JawServoJP | None:
        if self._jaw is None:
            return None
        return JawServoJP(self.arm, self._jaw, sample.t_ns)


__all__ = ["DEFAULT_SCALE", "JAW_CLOSED_RAD", "JAW_OPEN_RAD", "ArmCommand", "TeleopMapping",
           "grip_to_jaw", "unwrap_rotvec"]
