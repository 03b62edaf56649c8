"""The robot interface, in CRTK names and semantics, that every robot implements.

A robot is a set of arms (``psm1``, ``psm2``, ...), each a CRTK device. The
simulator implements it; a driver for a real robot implements the same methods.

Who may call what:

- ``measured_*``, ``setpoint_cp``, ``operating_state`` and ``registration``:
  anyone (read-only).
- ``servo_cp``, ``servo_jp``, ``move_cp``, ``jaw_servo_jp``, ``hold``: only the
  safety supervisor. The patient node hands the robot to the supervisor and
  never commands it itself.
- ``enable``, ``disable``, ``step``: the patient node's servo loop.

Frames and units: every Cartesian pose is the tool tip in the arm's base frame,
which for a patient-side manipulator is its remote centre of motion (RCM) [m];
joint positions are [rad] for revolute and [m] for prismatic joints; the jaw
opening is [rad].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from telesurgery.types import JointState, OperatingState, Pose, Wrench


class Arm(ABC):
    """One manipulator, as a CRTK device."""

    name: str

    @abstractmethod
    def measured_js(self) -> JointState:
        """Joint positions [rad, m] and velocities, jaw excluded."""

    @abstractmethod
    def measured_cp(self) -> Pose:
        """Measured tool-tip pose in the base (RCM) frame [m]."""

    @abstractmethod
    def setpoint_cp(self) -> Pose:
        """The tool-tip pose currently commanded (after inverse kinematics and joint limits)."""

    @abstractmethod
    def measured_cf(self) -> Wrench:
        """Tool-tip wrench from contacts [N, N m], in the base frame."""

    @abstractmethod
    def grip_force(self) -> float:
        """What the jaws squeeze [N] (0 with nothing held)."""

    @abstractmethod
    def servo_cp(self, goal: Pose) -> Pose:
        """Track ``goal`` from the next servo tick; returns the pose actually commanded.

        The goal is clipped to what the joints can reach; no interpolation, so the
        caller (the supervisor) limits speed and acceleration first.
        """

    @abstractmethod
    def servo_jp(self, goal: Sequence[float]) -> tuple[float, ...]:
        """Track joint positions ``goal``; returns the joint positions actually commanded."""

    @abstractmethod
    def move_cp(self, goal: Pose, duration_s: float) -> None:
        """Move to ``goal`` along a smooth trajectory lasting ``duration_s`` [s]."""

    @abstractmethod
    def hold(self) -> None:
        """Stop where the arm is: the setpoint becomes the measured pose."""

    @abstractmethod
    def jaw_measured_js(self) -> JointState:
        """Jaw opening [rad] and its velocity [rad/s]."""

    @abstractmethod
    def jaw_servo_jp(self, angle: float) -> float:
        """Track jaw opening ``angle`` [rad]; returns the angle actually commanded."""

    @abstractmethod
    def registration(self) -> Pose:
        """The arm's base (RCM) frame expressed in the endoscope camera frame."""


class Robot(ABC):
    """A patient-side robot: its arms and its CRTK operating state."""

    @property
    @abstractmethod
    def arms(self) -> Mapping[str, Arm]:
        """Arms by name."""

    @abstractmethod
    def operating_state(self) -> OperatingState:
        """CRTK operating state."""

    @abstractmethod
    def enable(self) -> None:
        """Power the arms; they hold their current pose."""

    @abstractmethod
    def disable(self) -> None:
        """Remove power; the arms no longer track setpoints."""

    @abstractmethod
    def step(self, dt_s: float) -> None:
        """Advance by one servo period ``dt_s`` [s]: write setpoints, read measurements."""

    def close(self) -> None:  # noqa: B027 - optional hook, most robots need nothing
        """Release resources."""
