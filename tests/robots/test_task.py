"""The task monitor on the real MuJoCo board: scripted attempts with known outcomes, and the
precision task done by its autopilot."""

from __future__ import annotations

import numpy as np
import pytest

from telesurgery.bench.tasks import run_task
from telesurgery.robots.sim.model import ring_body_name
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.robots.sim.scene import task_layout
from telesurgery.robots.sim.task import segment_distance
from telesurgery.tasks import TASKS
from tests.robots.test_robot import glide, run


def _put_ring(robot: SimRobot, ring: int, x: float, y: float, z: float) -> None:
    """Put ``ring`` at (x, y, z) [m], flat and at rest, as a hand that let go there."""
    adr = robot.model.joint(ring_body_name(ring)).qposadr[0]
    robot.data.qpos[adr:adr + 7] = (x, y, z, 1.0, 0.0, 0.0, 0.0)
    robot.data.qvel[:] = 0.0


def test_a_ring_dropped_off_the_pegs_costs_a_drop_once() -> None:
    robot = SimRobot()
    robot.enable()
    run(robot, 0.1)
    _put_ring(robot, 0, 0.0, -0.05, 0.01)  # let go in the middle of the board
    run(robot, 0.5)
    run(robot, 0.5)  # still lying there: the same drop
    task = robot.task_status()
    assert task["penalties"] == {"drops": 1}
    assert task["penalty_s"] == TASKS["peg_transfer"].penalty("drops").cost_s
    assert task["score"] is None  # not finished: no score yet


def test_a_ring_placed_without_being_passed_is_penalised() -> None:
    robot = SimRobot(task_layout("handover"))
    robot.enable()
    run(robot, 0.1)
    lay = robot.layout
    x, y, z = lay.ring_on_peg(lay.target_pegs[0])
    _put_ring(robot, 0, x, y, z + 0.002)
    run(robot, 0.5)
    task = robot.task_status()
    assert (task["completed"], task["on_target"]) == (1, 1)
    assert task["penalties"] == {"drops": 0, "unpassed": 1}


def test_the_handover_board_rings_carry_two_tabs_the_arms_can_both_hold() -> None:
    robot = SimRobot(task_layout("handover"))
    robot.enable()
    lay = robot.layout

    def over_tab(side: int, above: float) -> tuple[float, float, float]:
        x, y, z = np.add(lay.ring_on_peg(0), lay.ring.tab_offset(side))
        return (float(x), float(y), float(z + lay.ring.tab_half[2] - 0.003 + 0.0055 + above))

    for arm, side in (("psm2", -1), ("psm1", 1)):
        glide(robot, robot.arms[arm], over_tab(side, 0.02), 0.8, 0.6)
        glide(robot, robot.arms[arm], over_tab(side, 0.0), 0.8, 0.4)
        glide(robot, robot.arms[arm], over_tab(side, 0.0), -0.2, 0.3)
    assert robot.task._holders() == {0: {1, 2}}  # both instruments on ring 0


def test_segment_distance() -> None:
    a, b = (0.0, 0.0, 0.0), (0.01, 0.0, 0.0)
    assert segment_distance((0.005, 0.002, 0.0), a, b) == pytest.approx(0.002)
    assert segment_distance((-0.003, 0.0, 0.004), a, b) == pytest.approx(0.005)
    assert segment_distance((0.0, 0.001, 0.0), a, a) == pytest.approx(0.001)


def test_the_autopilot_traces_the_precision_task_and_scores() -> None:
    task = run_task("precision", timeout_s=60.0)
    rules = TASKS["precision"]
    assert task["finished"]
    assert task["completed"] == rules.objectives
    assert task["penalties"] == {"excursions": 0}
    assert task["score"] == pytest.approx(100.0 * (rules.cutoff_s - task["time_s"])
                                          / rules.cutoff_s, abs=0.1)
    assert task["metrics"]["path_m"]["psm1"] > 0.12  # at least the circle, 2 pi 20 mm
    assert task["metrics"]["path_m"]["psm2"] == 0.0
