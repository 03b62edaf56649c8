"""``bench tasks``: each training task performed by its autopilot, in one process.

The console's teleoperation mapping, the safety supervisor and the simulated robot of
the task's board run tick by tick on simulated time [1 ms], with no network between
them: the task's score and robot metrics as its pilot earns them, the yardstick the
trainees' scores are read against (``docs/training.md``). Seconds [s] of simulated time.
"""

from __future__ import annotations

import time
from typing import Any, Final

from telesurgery.bench.machine import machine_info
from telesurgery.config import ConsoleConfig, SafetyConfig
from telesurgery.console.teleop import Teleop
from telesurgery.input.autopilot import autopilot_for
from telesurgery.messages import CommandBundle, Message, SafetyCause, SafetyEvent
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.robots.sim.scene import task_layout
from telesurgery.safety.supervisor import Supervisor
from telesurgery.tasks import TASKS

PERIOD_NS: Final = 1_000_000
STATE_EVERY: Final = 2
"""State reaches the hands every second tick (500 Hz), as from the patient node."""
SESSION: Final = 1


def run_task(task: str, timeout_s: float | None = None) -> dict[str, Any]:
    """``task`` performed by its autopilot until it is done or ``timeout_s`` [s, simulated]
    (None: the task's cutoff) passes; the robot's task status (the summary's ``task``)
    with ``wall_s`` [s] it took to compute."""
    layout = task_layout(task)
    robot = SimRobot(layout)
    cutoff = robot.task.rules.cutoff_s if timeout_s is None else timeout_s
    console = ConsoleConfig()
    t_ns = 0
    events: list[SafetyEvent] = []
    sup = Supervisor(robot, SafetyConfig(), events.append, period_s=PERIOD_NS * 1e-9,
                     clock=lambda: t_ns, admits=lambda s: s == SESSION)
    robot.enable()
    sup.enable()
    pilot = autopilot_for(layout, scale=console.scale)
    teleop = Teleop(pilot, scale=console.scale, tremor=console.tremor,
                    rate_hz=console.rate_hz)
    for arm in pilot.arms:
        teleop.register(arm, robot.arms[arm].registration())
    started = time.perf_counter()
    seq = 0
    for tick in range(round(cutoff * 1e9 / PERIOD_NS)):
        bodies = teleop.tick(pilot.read(t_ns), True)
        if bodies:
            seq += 1
            msg = Message(SESSION, seq, t_ns, CommandBundle(tuple(bodies)))
            for body in bodies:
                sup.submit(msg, t_ns, body)
        sup.tick(t_ns)
        robot.step(PERIOD_NS * 1e-9)
        if tick % STATE_EVERY == 0:
            for arm in pilot.arms:
                a = robot.arms[arm]
                teleop.observe(arm, a.measured_cp(), a.jaw_measured_js().position[0],
                               sup.mode(arm))
        t_ns += PERIOD_NS
        if robot.task.finished:
            break
    clutches = sum(1 for e in events if e.cause is SafetyCause.CLUTCH_PRESSED)
    out = robot.task_status(clutches)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def bench_tasks(tasks: list[str]) -> dict[str, Any]:
    """``run_task`` for each of ``tasks`` (none: every task), with the machine."""
    return {"what": "each training task performed by its autopilot in one process, on "
                    "simulated time, no network: the task's status at its end",
            "machine": machine_info(),
            "tasks": {t: run_task(t) for t in tasks or sorted(TASKS)}}


__all__ = ["bench_tasks", "run_task"]
