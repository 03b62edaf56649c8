"""The simulated patient-side robot: two PSMs over a peg-transfer board, in MuJoCo.

``SimRobot`` implements the CRTK ``Robot`` interface on the model of
``model.py``: one ``step`` per servo tick writes every arm's joint setpoints to
its position actuators and advances the physics. Setpoints come from the
closed-form kinematics of ``kinematics.py``, so ``servo_cp`` knows, and
returns, the pose it actually commanded.

Threads: the servo loop owns the robot (every method but ``lock`` and the
read-only ``model``). Another thread that reads ``data`` (the endoscope
renderer) holds ``lock``, which ``step`` holds while the physics advances.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import numpy.typing as npt

from telesurgery.config import FORCE_CAP_N
from telesurgery.errors import KinematicsError, RobotError
from telesurgery.geometry import FloatArray, Vec3, quat_to_rotation
from telesurgery.robots.base import Arm, Robot
from telesurgery.robots.sensor import ForceSensor
from telesurgery.robots.sim.kinematics import (
    JOINT_NAMES,
    clamp_insertion_for_rcm,
    clamp_jaw,
    clamp_joints,
    fk,
    ik,
    ik_nearest,
)
from telesurgery.robots.sim.model import (
    TIMESTEP_S,
    finger_joint_names,
    joint_names,
    load_model,
    ring_body_name,
    tool_body_names,
)
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, PegTransferLayout
from telesurgery.robots.sim.task import (
    SETTLED_ABOVE_REST_M,
    TASK_CHECK_PERIOD_S,
    TaskMonitor,
)
from telesurgery.types import JointState, OperatingState, Pose, Wrench


@dataclass(frozen=True, slots=True)
class PegTransferStatus:
    """The peg transfer at simulated time ``time_s`` [s].

    ``rings``: ring centres [m, world]; ``ring_pegs``: the peg each ring rests
    around (None while lifted or off the pegs); ``pegs``: peg base centres [m,
    world]; ``on_target``: rings resting on their target peg; ``completed``:
    transfers done (a ring leaving one peg and coming to rest around another);
    ``last_completed_s``: simulated time [s] of the latest transfer (0 if none).
    """

    time_s: float
    rings: tuple[Vec3, ...]
    ring_pegs: tuple[int | None, ...]
    pegs: tuple[Vec3, ...]
    on_target: int
    completed: int
    last_completed_s: float


@dataclass(frozen=True, slots=True)
class _Move:
    """A joint-space move with a quintic (minimum-jerk) profile, from ``start_s`` [s]."""

    start: tuple[float, ...]
    goal: tuple[float, ...]
    start_s: float
    duration_s: float

    def at(self, t_s: float) -> tuple[tuple[float, ...], bool]:
        u = min(1.0, max(0.0, (t_s - self.start_s) / self.duration_s))
        s = u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)
        q = tuple(a + (b - a) * s for a, b in zip(self.start, self.goal, strict=True))
        return q, u >= 1.0


class SimArm(Arm):
    """One simulated PSM; created by ``SimRobot``, not directly (``tool_geom``: which of the
    model's geoms are this arm's instrument)."""

    def __init__(self, robot: SimRobot, name: str, tool_geom: npt.NDArray[np.bool_]) -> None:
        self.name = name
        self._robot = robot
        m = robot.model
        # Slices of qpos, qvel and ctrl rather than index arrays: cheaper to read, and
        # one write sets every actuator of the arm (six joints, then the two fingers).
        joints, fingers = joint_names(name), finger_joint_names(name)
        self._qpos = _span(name, "qpos", [int(m.joint(j).qposadr[0]) for j in joints])
        self._qvel = _span(name, "qvel", [int(m.joint(j).dofadr[0]) for j in joints])
        self._finger_qpos = _span(name, "qpos", [int(m.joint(j).qposadr[0]) for j in fingers])
        self._finger_qvel = _span(name, "qvel", [int(m.joint(j).dofadr[0]) for j in fingers])
        self._ctrl = _span(name, "ctrl", [m.actuator(j).id for j in (*joints, *fingers)])
        self._tool_geom = tool_geom
        # Which finger each geom belongs to (1: finger a, 2: finger b, 0: neither), for
        # the grip: what the two jaws squeeze between them.
        finger = np.zeros(m.nbody, dtype=np.int8)
        for side, body in enumerate(fingers, start=1):
            finger[m.joint(body).bodyid[0]] = side
        self._finger_geom = finger[m.geom_bodyid]
        self._force6 = np.zeros(6)
        self._sensor = ForceSensor(7, 1.0 / TIMESTEP_S)
        self._base = robot.layout.base_pose(name)
        self._base_rot = quat_to_rotation(self._base.orientation)
        self._registration = robot.layout.camera.pose_opencv().inverse().compose(self._base)
        self._q_sp = ik(robot.layout.home_tip(name), (0.0,) * len(JOINT_NAMES))
        self._cp_sp: Pose | None = None
        self._jaw_sp = 0.0
        self._move: _Move | None = None
        # Reads that hold until the next physics step (``_invalidate``).
        self._measured: Pose | None = None
        self._wrench: Wrench | None = None

    # -- reads ------------------------------------------------------------------------

    def measured_js(self) -> JointState:
        d = self._robot.data
        return JointState(JOINT_NAMES, tuple(d.qpos[self._qpos].tolist()),
                          tuple(d.qvel[self._qvel].tolist()))

    def measured_cp(self) -> Pose:
        if self._measured is None:
            self._measured = fk(self._joints())
        return self._measured

    def setpoint_cp(self) -> Pose:
        if self._cp_sp is None:
            self._cp_sp = fk(self._q_sp)
        return self._cp_sp

    def setpoint_js(self) -> tuple[float, ...]:
        """Joint setpoint [rad, m] the servo tracks."""
        return self._q_sp

    def measured_cf(self) -> Wrench:
        """The contact wrench on the instrument (wrist and jaws), about the tool tip, in
        the base frame [N, N m], as a sensor at the tip reports it (``robots.sensor``:
        low-passed at 100 Hz); what a grasped ring weighs shows here."""
        if self._wrench is None:
            v = self._sensor.value
            self._wrench = Wrench((v[0], v[1], v[2]), (v[3], v[4], v[5]))
        return self._wrench

    def grip_force(self) -> float:
        """What the jaws squeeze [N]: the smaller of the two fingers' contact forces
        normal to what they touch, low-passed as ``measured_cf``; 0 with nothing held."""
        return self._sensor.value[6]

    def _sense(self, touching: bool) -> None:
        """Feed this physics step's contacts to the sensor (``touching``: the instrument
        touches something); every step, so that the filter sees the contacts at the
        physics rate whoever reads it and when."""
        self._sensor.update(self._contacts() if touching else None)

    def _contacts(self) -> tuple[float, ...] | None:
        """This step's raw contact wrench (base frame, about the tip) and grip [N, N m,
        N], or None when the instrument touches nothing."""
        # In floats, one contact at a time: numpy's small temporaries (a 3x3 product and
        # np.cross per contact) cost 24 to 32 us a contact, 190 to 257 us for the 8 contacts
        # of a tool pressed into the board, against 22 us in floats (timeit, 2-core machine).
        m, d = self._robot.model, self._robot.data
        geoms = d.contact.geom
        on_tool = self._tool_geom[geoms]
        # ndarray.nonzero, not np.flatnonzero: 2.5 against 4.1 us when nothing touches.
        touching = (on_tool[:, 0] != on_tool[:, 1]).nonzero()[0]
        if touching.size == 0:
            return None
        tx, ty, tz = self._base.compose(fk(self._joints())).position
        f6 = self._force6
        fx = fy = fz = mx = my = mz = 0.0
        squeeze = [0.0, 0.0, 0.0]
        for i, tool_first, side, frame, (px, py, pz) in zip(
                touching.tolist(), on_tool[touching, 0].tolist(),
                self._finger_geom[geoms[touching]].max(axis=1).tolist(),
                d.contact.frame[touching].tolist(), d.contact.pos[touching].tolist(),
                strict=True):
            mujoco.mj_contactForce(m, d, i, f6)
            n, t1, t2 = f6[:3].tolist()
            squeeze[side] += n
            # The contact force acts on geom2 along the normal from geom1 to geom2; the
            # frame's rows are the normal and the two tangents, in the world.
            s = -1.0 if tool_first else 1.0
            wx = s * (frame[0] * n + frame[3] * t1 + frame[6] * t2)
            wy = s * (frame[1] * n + frame[4] * t1 + frame[7] * t2)
            wz = s * (frame[2] * n + frame[5] * t1 + frame[8] * t2)
            rx, ry, rz = px - tx, py - ty, pz - tz
            fx, fy, fz = fx + wx, fy + wy, fz + wz
            mx += ry * wz - rz * wy
            my += rz * wx - rx * wz
            mz += rx * wy - ry * wx
        r = self._base_rot
        return (r[0] * fx + r[3] * fy + r[6] * fz, r[1] * fx + r[4] * fy + r[7] * fz,
                r[2] * fx + r[5] * fy + r[8] * fz,
                r[0] * mx + r[3] * my + r[6] * mz, r[1] * mx + r[4] * my + r[7] * mz,
                r[2] * mx + r[5] * my + r[8] * mz, min(squeeze[1], squeeze[2]))

    def jaw_measured_js(self) -> JointState:
        """The jaw opening [rad] and its rate [rad/s]: the two fingers' sum."""
        d = self._robot.data
        a, b = d.qpos[self._finger_qpos].tolist()
        va, vb = d.qvel[self._finger_qvel].tolist()
        return JointState(("jaw",), (a + b,), (va + vb,))

    def jaw_setpoint(self) -> float:
        """Jaw opening [rad] the servo tracks."""
        return self._jaw_sp

    def registration(self) -> Pose:
        """The arm's base (RCM) frame in the endoscope camera frame, OpenCV axes (x right,
        y down, z forward); MuJoCo's own camera frame is this turned half a turn about x."""
        return self._registration

    # -- commands ---------------------------------------------------------------------

    def servo_cp(self, goal: Pose) -> Pose:
        self._robot.require_enabled("servo_cp")
        try:
            q = ik(goal, self._q_sp)
            commanded = goal
        except KinematicsError:
            q = ik_nearest(goal, self._q_sp)
            commanded = fk(q)
        self._move = None
        self._q_sp = q
        self._cp_sp = commanded
        return commanded

    def servo_jp(self, goal: Sequence[float]) -> tuple[float, ...]:
        """Track joints ``goal`` [rad, m], clamped to the limits and inserted far enough to
        keep the tip 45 mm from the RCM; returns the joints commanded."""
        self._robot.require_enabled("servo_jp")
        q = clamp_insertion_for_rcm(goal)
        self._move = None
        self._set_joints(q)
        return q

    def move_cp(self, goal: Pose, duration_s: float) -> None:
        """Move to ``goal`` in ``duration_s`` [s], interpolated in joint space with a
        minimum-jerk profile (as the dVRK does); an unreachable goal is clamped first."""
        self._robot.require_enabled("move_cp")
        if not (math.isfinite(duration_s) and duration_s > 0.0):
            raise RobotError(f"move duration {duration_s} s must be positive and finite; "
                             "give the time the move should take")
        q = ik_nearest(goal, self._q_sp)
        self._move = _Move(self._q_sp, q, self._robot.time_s, duration_s)

    def hold(self) -> None:
        """Stop where the arm is. The jaw keeps its setpoint so that a grasp holds."""
        self._move = None
        self._set_joints(clamp_joints(self._joints()))

    def jaw_servo_jp(self, angle: float) -> float:
        self._robot.require_enabled("jaw_servo_jp")
        self._jaw_sp = clamp_jaw(angle)
        return self._jaw_sp

    # -- servo tick (SimRobot only) -----------------------------------------------------

    def _joints(self) -> tuple[float, ...]:
        return tuple(self._robot.data.qpos[self._qpos].tolist())

    def _set_joints(self, q: tuple[float, ...]) -> None:
        self._q_sp = q
        self._cp_sp = None

    def _place(self) -> None:
        """Put the joints at their setpoints (at start-up, before any physics)."""
        d = self._robot.data
        d.qpos[self._qpos] = self._q_sp
        d.qpos[self._finger_qpos] = self._jaw_sp / 2.0
        self._write()

    def _write(self) -> None:
        if self._move is not None:
            q, done = self._move.at(self._robot.time_s)
            self._set_joints(q)
            if done:
                self._move = None
        self._robot.data.ctrl[self._ctrl] = (*self._q_sp, self._jaw_sp / 2.0,
                                             self._jaw_sp / 2.0)

    def _invalidate(self) -> None:
        self._measured = None
        self._wrench = None


class SimRobot(Robot):
    """The simulated robot: the scene of ``layout`` with its arms, stepped by the servo loop.

    Starts DISABLED with each tool at its home pose (``layout.home_tip``), jaws closed.
    ``task``: the training task on the board (``layout.task``), its time above
    ``force_cap_n`` [N] counted.
    """

    def __init__(self, layout: PegTransferLayout = DEFAULT_LAYOUT,
                 force_cap_n: float = FORCE_CAP_N) -> None:
        self.layout = layout
        self.model = load_model(layout)
        self.data = mujoco.MjData(self.model)
        self.lock = threading.Lock()
        self._state = OperatingState.DISABLED
        self.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        # Which arm's instrument each geom belongs to (1, 2, ... in arm order; 0: none).
        arm_of_body = np.zeros(self.model.nbody, dtype=np.int8)
        for i, name in enumerate(layout.arms, start=1):
            arm_of_body[[self.model.body(b).id for b in tool_body_names(name)]] = i
        geom_arm = arm_of_body[self.model.geom_bodyid]
        self._geom_arm: list[int] = geom_arm.tolist()
        self._arms = {name: SimArm(self, name, geom_arm == i)
                      for i, name in enumerate(layout.arms, start=1)}
        for arm in self._arms.values():
            arm._place()
        mujoco.mj_forward(self.model, self.data)
        self._rings = [self.model.body(ring_body_name(i)).id for i in range(layout.rings)]
        self.task = TaskMonitor(self, force_cap_n)
        self._next_check_s = 0.0

    @property
    def arms(self) -> Mapping[str, SimArm]:
        return self._arms

    @property
    def time_s(self) -> float:
        """Simulated time [s]."""
        return float(self.data.time)

    def operating_state(self) -> OperatingState:
        return self._state

    def require_enabled(self, what: str) -> None:
        """RobotError unless ENABLED: motion commands need power."""
        if self._state != OperatingState.ENABLED:
            raise RobotError(f"{what} refused: the robot is {self._state.name}; enable it "
                             "first")

    def enable(self) -> None:
        if self._state == OperatingState.ENABLED:
            return
        for arm in self._arms.values():
            arm.hold()
        self.model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        self._state = OperatingState.ENABLED

    def disable(self) -> None:
        self.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        self._state = OperatingState.DISABLED

    def place(self, arms: Mapping[str, tuple[Pose, float]]) -> None:
        """Put each arm of ``arms`` at its tip pose [m, base frame] and jaw [rad] at once,
        everything at rest: a twin resynchronised from a real robot's measured state (a
        simulator may jump; a robot never does)."""
        with self.lock:
            self.data.qvel[:] = 0.0
            for name, (pose, jaw) in arms.items():
                arm = self._arms[name]
                arm._move = None
                arm._set_joints(ik_nearest(pose, arm._q_sp))
                arm._jaw_sp = clamp_jaw(jaw)
                arm._place()
            mujoco.mj_forward(self.model, self.data)
        for arm in self._arms.values():
            arm._invalidate()

    def step(self, dt_s: float) -> None:
        """Advance the physics by ``dt_s`` [s] (whole 1 ms steps, at least one)."""
        if not (math.isfinite(dt_s) and dt_s > 0.0):
            raise RobotError(f"step of {dt_s} s: the servo period must be positive and "
                             "finite")
        steps = max(1, round(dt_s / self.model.opt.timestep))
        with self.lock:
            for _ in range(steps):
                for arm in self._arms.values():
                    arm._write()
                mujoco.mj_step(self.model, self.data)
                self._sense()
        for arm in self._arms.values():
            arm._invalidate()
        if self.data.time >= self._next_check_s:
            self._next_check_s = self.data.time + TASK_CHECK_PERIOD_S
            self.task.check()

    def _sense(self) -> None:
        # One look at the contacts for all arms, in floats: most steps no instrument touches
        # anything, and this look costs 1.6 us (a dozen contacts of rings on the board)
        # where each arm's own numpy look cost 4 us.
        arm_of = self._geom_arm
        which = set()
        for g1, g2 in self.data.contact.geom.tolist():
            a1, a2 = arm_of[g1], arm_of[g2]
            if a1 != a2:
                which.add(a1 or a2)
        for i, arm in enumerate(self._arms.values(), start=1):
            arm._sense(i in which)

    # -- the peg transfer -------------------------------------------------------------

    def peg_under(self, centre: FloatArray | Vec3) -> int | None:
        """The peg a ring centred at ``centre`` [m, world] rests around (None: lifted, or
        off every peg)."""
        lay = self.layout
        hole = lay.ring.radius - lay.ring.tube_radius
        if centre[2] > lay.ring.rest_height + SETTLED_ABOVE_REST_M:
            return None
        for i, (x, y, _) in enumerate(lay.pegs):
            if math.hypot(centre[0] - x, centre[1] - y) < hole - lay.peg_radius:
                return i
        return None

    def peg_transfer(self) -> PegTransferStatus:
        """Where the rings are and how many transfers are done."""
        lay = self.layout
        rings = tuple(_vec(self.data.xpos[b]) for b in self._rings)
        pegs = tuple(self.peg_under(self.data.xpos[b]) for b in self._rings)
        on_target = sum(1 for i, p in enumerate(pegs) if p == lay.target_pegs[i])
        return PegTransferStatus(self.time_s, rings, pegs, lay.pegs, on_target,
                                 self.task.transfers, self.task.last_s)

    def task_status(self, clutches: int = 0) -> dict[str, Any]:
        """The training task as JSON-ready telemetry (the patient node's status and the
        summary's ``task``; ``TaskMonitor.status``)."""
        return self.task.status(clutches)


def _span(arm: str, what: str, indices: list[int]) -> slice:
    """The slice of ``what`` that ``indices`` cover; RobotError unless they are contiguous
    and in order (``model.py`` writes each arm's joints and actuators that way)."""
    first = indices[0]
    if indices != list(range(first, first + len(indices))):
        raise RobotError(f"{arm}'s {what} entries {indices} are not contiguous; the model "
                         "must list each arm's joints then fingers together")
    return slice(first, first + len(indices))


def _vec(a: FloatArray) -> Vec3:
    return (float(a[0]), float(a[1]), float(a[2]))


__all__ = ["TASK_CHECK_PERIOD_S", "PegTransferStatus", "SimArm", "SimRobot"]
