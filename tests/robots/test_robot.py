"""SimRobot as a CRTK robot: states, servo and move semantics, contacts, registration, task."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from telesurgery.errors import KinematicsError, RobotError
from telesurgery.geometry import FloatArray
from telesurgery.robots.sim.kinematics import (
    JAW_UPPER,
    JOINT_LOWER,
    JOINT_UPPER,
    MIN_TIP_RCM_DISTANCE_M,
    fk,
    in_limits,
    tip_rcm_distance,
)
from telesurgery.robots.sim.model import (
    JAW_GRASP_DEPTH_M,
    finger_joint_names,
    joint_names,
    tool_body_names,
)
from telesurgery.robots.sim.robot import SimArm, SimRobot
from telesurgery.robots.sim.scene import JAWS_DOWN
from telesurgery.types import OperatingState, Pose

MM = 1e-3
DT = 0.001


@pytest.fixture
def robot() -> SimRobot:
    r = SimRobot()
    r.enable()
    return r


def run(robot: SimRobot, seconds: float) -> None:
    for _ in range(round(seconds / DT)):
        robot.step(DT)


def glide(robot: SimRobot, arm: SimArm, goal_world: tuple[float, float, float], jaw: float,
          seconds: float) -> None:
    """Servo ``arm``'s tip along a straight line to ``goal_world`` [m], jaws down, then
    let it settle for 0.3 s."""
    base = np.array(robot.layout.base_pose(arm.name).position)
    start = np.array(arm.setpoint_cp().position)
    goal = np.array(goal_world) - base
    ticks = round(seconds / DT)
    for i in range(1, ticks + 1):
        p = start + (goal - start) * i / ticks
        arm.servo_cp(Pose((float(p[0]), float(p[1]), float(p[2])), JAWS_DOWN))
        arm.jaw_servo_jp(jaw)
        robot.step(DT)
    run(robot, 0.3)


def test_starts_disabled_and_refuses_motion_until_enabled() -> None:
    r = SimRobot()
    arm = r.arms["psm1"]
    assert r.operating_state() is OperatingState.DISABLED
    before = arm.setpoint_cp()
    with pytest.raises(RobotError, match="robot is DISABLED; enable it first"):
        arm.servo_cp(Pose((0.0, 0.0, -0.1), JAWS_DOWN))
    with pytest.raises(RobotError, match="enable it first"):
        arm.jaw_servo_jp(0.5)
    assert arm.setpoint_cp() == before
    r.enable()
    assert r.operating_state() is OperatingState.ENABLED
    r.disable()
    assert r.operating_state() is OperatingState.DISABLED
    with pytest.raises(RobotError):
        arm.servo_jp((0.0,) * 6)


def test_enabled_arms_hold_their_home_pose(robot: SimRobot) -> None:
    homes = {name: arm.measured_cp() for name, arm in robot.arms.items()}
    run(robot, 0.5)
    for name, arm in robot.arms.items():
        assert arm.measured_cp().distance(homes[name]) < 0.01 * MM
        assert arm.measured_cp().distance(robot.layout.home_tip(name)) < 0.01 * MM
    assert robot.time_s == pytest.approx(0.5)


def test_servo_cp_returns_the_goal_when_reachable_and_the_arm_gets_there(
        robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    goal = Pose((-0.02, 0.01, -0.15), JAWS_DOWN)
    assert arm.servo_cp(goal) == goal
    assert arm.setpoint_cp() == goal
    run(robot, 0.5)
    assert arm.measured_cp().distance(goal) < 0.05 * MM
    assert fk(arm.measured_js().position).distance(arm.measured_cp()) < 1e-12


@pytest.mark.parametrize("goal", [
    Pose((0.0, 0.0, -0.02), JAWS_DOWN),       # closer than 45 mm to the RCM
    Pose((0.0, 0.0, -0.40), JAWS_DOWN),       # beyond full insertion
    Pose((0.0, 0.0, -0.12)),                   # jaws pointing up the shaft
])
def test_servo_cp_clamps_what_cannot_be_reached_and_says_what_it_commanded(
        robot: SimRobot, goal: Pose) -> None:
    arm = robot.arms["psm2"]
    commanded = arm.servo_cp(goal)
    assert commanded != goal
    assert arm.setpoint_cp() == commanded
    assert in_limits(arm.setpoint_js())
    assert fk(arm.setpoint_js()).distance(commanded) < 1e-12
    assert tip_rcm_distance(commanded) >= MIN_TIP_RCM_DISTANCE_M - 1e-12


def test_servo_cp_of_a_non_finite_goal_raises_and_moves_nothing(robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    before = arm.setpoint_js()
    with pytest.raises(KinematicsError, match="not finite"):
        arm.servo_cp(Pose((math.nan, 0.0, -0.1), JAWS_DOWN))
    assert arm.setpoint_js() == before


def test_servo_jp_clamps_to_the_joint_limits_and_the_rcm_distance(robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    assert arm.servo_jp((0.1, 0.2, 0.12, 0.0, 3.0, -3.0)) == (
        0.1, 0.2, 0.12, 0.0, JOINT_UPPER[4], JOINT_LOWER[5])
    run(robot, 1.0)
    np.testing.assert_allclose(arm.measured_js().position, arm.setpoint_js(), atol=1e-4)
    # Pulled out to the bottom of the insertion, the tip would be 6.5 mm from the RCM.
    q = arm.servo_jp((0.0, 0.0, -1.0, 0.0, 0.0, 0.0))
    assert q[2] > JOINT_LOWER[2]
    assert tip_rcm_distance(fk(q)) == pytest.approx(MIN_TIP_RCM_DISTANCE_M)


def test_move_cp_interpolates_over_its_duration(robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    start = arm.measured_cp()
    goal = Pose((0.02, 0.03, -0.16), JAWS_DOWN)
    arm.move_cp(goal, 1.0)
    run(robot, 0.5)
    mid = arm.setpoint_cp()
    assert 0.2 * start.distance(goal) < mid.distance(goal) < 0.8 * start.distance(goal)
    run(robot, 0.6)
    assert arm.setpoint_cp().distance(goal) < 1e-9
    run(robot, 0.3)
    assert arm.measured_cp().distance(goal) < 0.05 * MM
    with pytest.raises(RobotError, match="must be positive"):
        arm.move_cp(goal, 0.0)


def test_hold_makes_the_setpoint_the_measured_pose(robot: SimRobot) -> None:
    arm = robot.arms["psm2"]
    arm.servo_cp(Pose((0.03, 0.03, -0.17), JAWS_DOWN))
    run(robot, 0.02)
    moving = arm.measured_cp()
    arm.hold()
    assert arm.setpoint_cp().distance(moving) < 1e-12
    run(robot, 0.5)
    assert arm.measured_cp().distance(moving) < 1 * MM


def test_the_jaw_tracks_and_clamps(robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    assert arm.jaw_servo_jp(5.0) == JAW_UPPER
    assert arm.jaw_servo_jp(0.8) == 0.8
    run(robot, 0.5)
    assert arm.jaw_measured_js().position[0] == pytest.approx(0.8, abs=0.01)
    arm.jaw_servo_jp(-0.2)
    run(robot, 0.5)
    # Closing on nothing: the fingers pass the closed position to the commanded squeeze.
    assert arm.jaw_measured_js().position[0] == pytest.approx(-0.2, abs=0.01)


def test_pressing_on_the_board_shows_as_an_upward_force(robot: SimRobot) -> None:
    arm = robot.arms["psm1"]
    assert arm.measured_cf().force == (0.0, 0.0, 0.0)
    board_z = -robot.layout.base_pose("psm1").position[2]
    # Send the tip 3 mm below the board's surface: the board pushes back up.
    glide(robot, arm, (0.05, -0.02, -0.003 + 0.0), 0.0, 1.0)
    assert arm.setpoint_cp().position[2] == pytest.approx(board_z - 0.003)
    force = arm.measured_cf().force
    assert force[2] > 0.5
    assert abs(force[0]) < 0.2 * force[2]
    assert abs(force[1]) < 0.2 * force[2]


def test_registration_is_the_base_in_the_opencv_camera_frame(robot: SimRobot) -> None:
    model, data = robot.model, robot.data
    cam = model.camera("ecm").id
    mujoco.mj_forward(model, data)
    r_cv = data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    for name, arm in robot.arms.items():
        base = data.xpos[model.body(f"{name}_base").id]
        expected = r_cv.T @ (base - data.cam_xpos[cam])
        reg = arm.registration()
        np.testing.assert_allclose(reg.position, expected, atol=1e-9)
        # A tool tip seen through the registration lands where MuJoCo puts its site.
        tip_world = data.site_xpos[model.site(f"{name}_tip").id]
        tip_cam = reg.compose(arm.measured_cp()).position
        np.testing.assert_allclose(tip_cam, r_cv.T @ (tip_world - data.cam_xpos[cam]),
                                   atol=1e-9)
    # psm1 enters on the right of the view, psm2 on the left; both in front of the lens.
    assert robot.arms["psm1"].registration().position[0] > 0.0
    assert robot.arms["psm2"].registration().position[0] < 0.0
    assert robot.arms["psm1"].registration().position[2] > 0.0


def test_step_advances_whole_physics_steps(robot: SimRobot) -> None:
    robot.step(0.002)
    assert robot.time_s == pytest.approx(0.002)
    robot.step(0.0001)
    assert robot.time_s == pytest.approx(0.003)
    with pytest.raises(RobotError, match="positive and finite"):
        robot.step(math.nan)


def test_the_jaws_grasp_a_ring_and_carry_it_to_another_peg(robot: SimRobot) -> None:
    lay = robot.layout
    arm = robot.arms["psm2"]
    status = robot.peg_transfer()
    assert status.ring_pegs == lay.start_pegs
    assert (status.completed, status.on_target) == (0, 0)

    def tip_over_tab(peg: int, above: float) -> tuple[float, float, float]:
        x, y, z = np.add(lay.ring_on_peg(peg), lay.ring.tab_offset())
        grasp_z = z + lay.ring.tab_half[2] - 0.003
        return (float(x), float(y), float(grasp_z + JAW_GRASP_DEPTH_M + above))

    glide(robot, arm, tip_over_tab(0, 0.03), 0.8, 1.0)
    glide(robot, arm, tip_over_tab(0, 0.0), 0.8, 0.5)
    assert arm.grip_force() == 0.0  # open jaws astride the tab squeeze nothing
    glide(robot, arm, tip_over_tab(0, 0.0), -0.2, 0.3)
    # Closed on the tab, both fingers press on it: what the finger actuators' torque
    # (0.01 N m) gives at the middle of the 10 mm fingers, 2 N at most.
    assert 0.1 < arm.grip_force() < 2.0
    held_jaw = arm.jaw_measured_js().position[0]
    assert held_jaw > -0.1  # stopped by the tab, not closed on nothing
    glide(robot, arm, tip_over_tab(0, 0.03), -0.2, 0.5)
    lifted = robot.peg_transfer()
    assert lifted.ring_pegs[0] is None
    assert lifted.rings[0][2] > lay.peg_height
    # The ring's weight (5 g) hangs from the jaws.
    assert arm.measured_cf().force[2] == pytest.approx(-lay.ring.mass * 9.81, rel=0.2)
    glide(robot, arm, tip_over_tab(3, 0.03), -0.2, 1.5)
    glide(robot, arm, tip_over_tab(3, 0.003), -0.2, 0.5)
    glide(robot, arm, tip_over_tab(3, 0.003), 0.8, 0.3)
    glide(robot, arm, tip_over_tab(3, 0.03), 0.8, 0.3)
    done = robot.peg_transfer()
    assert done.ring_pegs == (3, 1, 2)
    assert (done.completed, done.on_target) == (1, 1)
    assert 0.0 < done.last_completed_s <= done.time_s
    task = robot.task_status()
    assert (task["name"], task["completed"], task["on_target"]) == ("peg_transfer", 1, 1)
    assert task["sim_time_s"] == round(done.time_s, 3)
    # One of six objectives (each ring across and back): no score until the last.
    assert (task["finished"], task["score"]) == (False, None)
    assert task["penalties"] == {"drops": 0}


def _wrench_by_numpy(robot: SimRobot, arm: SimArm) -> tuple[FloatArray, FloatArray, int, int]:
    """The tool-tip wrench [N, N m, base frame] as measured_cf first computed it, contact by
    contact in numpy; with how many tool contacts have the tool as geom1, and as geom2."""
    m, d = robot.model, robot.data
    is_tool = np.zeros(m.nbody, dtype=bool)
    is_tool[[m.body(b).id for b in tool_body_names(arm.name)]] = True
    on_tool = is_tool[m.geom_bodyid[d.contact.geom]]
    touching = np.flatnonzero(on_tool[:, 0] != on_tool[:, 1])
    base = robot.layout.base_pose(arm.name)
    tip = np.asarray(base.compose(arm.measured_cp()).position)
    force, torque, f6 = np.zeros(3), np.zeros(3), np.zeros(6)
    for i in touching:
        mujoco.mj_contactForce(m, d, int(i), f6)
        f_world = d.contact.frame[i].reshape(3, 3).T @ f6[:3]
        if on_tool[i, 0]:
            f_world = -f_world
        force += f_world
        torque += np.cross(d.contact.pos[i] - tip, f_world)
    rot_t = base.matrix()[:3, :3].T
    first = int(np.count_nonzero(on_tool[touching, 0]))
    return rot_t @ force, rot_t @ torque, first, touching.size - first


def test_measured_cf_sums_every_tool_contact_about_the_tip(robot: SimRobot) -> None:
    lay = robot.layout
    arm = robot.arms["psm2"]
    tab = np.add(lay.ring_on_peg(0), lay.ring.tab_offset())
    tab_top = float(tab[2] + lay.ring.tab_half[2])
    first = second = 0
    # Jaws open astride ring 0's tab, then down until the wrist touches the tab (a capsule
    # before a box: the tool is geom1) and the jaws the board and the ring (geom2).
    for below_top, seconds in ((-0.03, 0.8), (0.0015, 0.5), (0.0055, 0.5)):
        glide(robot, arm, (float(tab[0]), float(tab[1]), tab_top - below_top), 0.8, seconds)
        force, torque, n1, n2 = _wrench_by_numpy(robot, arm)
        first, second = first + n1, second + n2
        raw = arm._contacts() or (0.0,) * 7
        np.testing.assert_allclose(raw[:3], force, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(raw[3:6], torque, rtol=1e-12, atol=1e-12)
        # The sensor's reading is that, low-passed: after half a second pressed, close to it
        # (the jaws still stick and slip on the tab, moving the wrench by a few per cent
        # within the sensor's delay).
        cf = arm.measured_cf()
        np.testing.assert_allclose(cf.force, force, rtol=0.1, atol=0.1)
        assert arm.measured_cf() is cf  # the same wrench until the physics steps
    assert first > 0
    assert second > 0
    assert any(f != 0.0 for f in cf.force)
    robot.step(DT)
    assert arm.measured_cf() is not cf


def test_joint_reads_are_the_model_joints(robot: SimRobot) -> None:
    arm = robot.arms["psm2"]
    arm.jaw_servo_jp(0.6)
    arm.servo_jp((0.1, -0.2, 0.12, 0.3, 0.2, -0.1))
    run(robot, 0.05)
    m, d = robot.model, robot.data
    js, jaw = arm.measured_js(), arm.jaw_measured_js()
    assert js.position == tuple(float(d.qpos[m.joint(j).qposadr[0]]) for j in joint_names("psm2"))
    assert js.velocity == tuple(float(d.qvel[m.joint(j).dofadr[0]]) for j in joint_names("psm2"))
    a, b = (m.joint(j) for j in finger_joint_names("psm2"))
    assert jaw.position == (float(d.qpos[a.qposadr[0]] + d.qpos[b.qposadr[0]]),)
    assert jaw.velocity == (float(d.qvel[a.dofadr[0]] + d.qvel[b.dofadr[0]]),)
    assert any(v != 0.0 for v in js.velocity)
    assert d.ctrl[m.actuator(joint_names("psm2")[2]).id] == arm.setpoint_js()[2]
    assert d.ctrl[m.actuator(finger_joint_names("psm2")[0]).id] == 0.3
