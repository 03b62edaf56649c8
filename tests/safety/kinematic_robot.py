"""A stiff, position-controlled test robot: each arm reaches its servo setpoint in one period.

A fake of hardware for the supervisor's tests (the MuJoCo robot is tested on its
own): a stiff arm with a fast position loop, whose measured pose equals the last
setpoint after a step. Like a real driver it refuses motion unless ENABLED, clips
the jaw to the instrument's range (and, given ``reach_x_m``, the tip to what its joints
reach) and returns what it applied, and it records every setpoint per step so that
tests can check what the tool tip was commanded to do. Poses [m] are in the arm
base (RCM) frame; the jaw [rad].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from telesurgery.errors import RobotError
from telesurgery.robots.base import Arm, Robot
from telesurgery.types import JointState, OperatingState, Pose, Wrench

JAW_MIN_RAD, JAW_MAX_RAD = -0.698, 1.396
"""Jaw range of the large needle driver (design brief, section 4)."""
JOINTS = ("outer_yaw", "outer_pitch", "insertion")


class KinematicArm(Arm):
    """One arm that tracks setpoints exactly; ``history`` holds the setpoint after each step."""

    def __init__(self, robot: KinematicRobot, name: str, pose: Pose, jaw: float) -> None:
        self.name = name
        self._robot = robot
        self._setpoint = self._measured = pose
        self._jaw_setpoint = self._jaw_measured = jaw
        self.history: list[Pose] = [pose]
        self.jaw_history: list[float] = [jaw]
        self.servo_calls = 0
        self.hold_calls = 0
        self.connected = True

    def disconnect(self) -> None:
        """What a lost controller link does: every later motion call fails."""
        self.connected = False

    def _require_enabled(self, what: str) -> None:
        if not self.connected:
            raise RobotError(f"{self.name}.{what} failed: connection to the arm controller "
                             "lost; check its cable and restart the node")
        state = self._robot.operating_state()
        if state is not OperatingState.ENABLED:
            raise RobotError(f"{self.name}.{what} refused: the robot is {state.name}; "
                             "enable it first")

    def measured_js(self) -> JointState:
        # The RCM kinematics of the outer joints: yaw and pitch aim the shaft, insertion
        # is the tip's distance from the RCM (the wrist is treated as rigid).
        x, y, z = self._measured.position
        yaw = math.atan2(x, -z)
        pitch = math.atan2(-y, math.hypot(x, z))
        return JointState(JOINTS, (yaw, pitch, math.hypot(x, y, z)), (0.0, 0.0, 0.0))

    def measured_cp(self) -> Pose:
        return self._measured

    def setpoint_cp(self) -> Pose:
        return self._setpoint

    def measured_cf(self) -> Wrench:
        return Wrench()

    def grip_force(self) -> float:
        return 0.0

    def servo_cp(self, goal: Pose) -> Pose:
        self._require_enabled("servo_cp")
        self.servo_calls += 1
        reach = self._robot.reach_x_m
        x, y, z = goal.position
        if reach is not None and x > reach:
            goal = Pose((reach, y, z), goal.orientation)
        self._setpoint = goal
        return goal

    def servo_jp(self, goal: Sequence[float]) -> tuple[float, ...]:
        raise RobotError(f"{self.name}: this test arm takes Cartesian commands only; "
                         "use servo_cp")

    def move_cp(self, goal: Pose, duration_s: float) -> None:
        raise RobotError(f"{self.name}: this test arm has no trajectory generator; "
                         "use servo_cp")

    def hold(self) -> None:
        self._require_enabled("hold")
        self.hold_calls += 1
        self._setpoint = self._measured
        self._jaw_setpoint = self._jaw_measured

    def jaw_measured_js(self) -> JointState:
        return JointState(("jaw",), (self._jaw_measured,), (0.0,))

    def jaw_servo_jp(self, angle: float) -> float:
        self._require_enabled("jaw_servo_jp")
        self._jaw_setpoint = min(max(angle, JAW_MIN_RAD), JAW_MAX_RAD)
        return self._jaw_setpoint

    def registration(self) -> Pose:
        return Pose()

    def step(self) -> None:
        """One servo period: the arm arrives at its setpoint."""
        if self._robot.operating_state() is OperatingState.ENABLED:
            self._measured = self._setpoint
            self._jaw_measured = self._jaw_setpoint
        self.history.append(self._setpoint)
        self.jaw_history.append(self._jaw_setpoint)


class KinematicRobot(Robot):
    """Arms at ``poses`` (tool tip in each base frame [m]), jaws at 0 rad, DISABLED;
    ``reach_x_m`` [m]: a joint limit that stops every tip at that x (None: no limit)."""

    def __init__(self, poses: Mapping[str, Pose], reach_x_m: float | None = None) -> None:
        self._arms = {name: KinematicArm(self, name, pose, 0.0) for name, pose in poses.items()}
        self._state = OperatingState.DISABLED
        self.reach_x_m = reach_x_m

    @property
    def arms(self) -> Mapping[str, KinematicArm]:
        return self._arms

    def operating_state(self) -> OperatingState:
        return self._state

    def enable(self) -> None:
        for arm in self._arms.values():
            arm._setpoint = arm._measured
        self._state = OperatingState.ENABLED

    def disable(self) -> None:
        self._state = OperatingState.DISABLED

    def fault(self) -> None:
        """What a drive fault does: the robot stops obeying until enabled again."""
        self._state = OperatingState.FAULT

    def step(self, dt_s: float) -> None:
        for arm in self._arms.values():
            arm.step()
