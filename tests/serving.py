"""A real patient node serving in a thread of the test process, for attacker-style tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from telesurgery.config import PatientConfig, SecurityConfig, VideoConfig, ZenohConfig
from telesurgery.patient.node import PatientNode
from telesurgery.robots.sim.robot import SimRobot


def patient_config(session: str, endpoint: str, security: SecurityConfig,
                   record_dir: Path | None = None) -> PatientConfig:
    """A patient node listening on ``endpoint``, no video, no real-time priority;
    ``record_dir``: where its audit trail goes (None: no trail)."""
    return PatientConfig(session=session, realtime=False, video=VideoConfig(enabled=False),
                         zenoh=ZenohConfig(listen=[endpoint], gossip=False),
                         security=security, record_dir=record_dir)


@contextmanager
def serving(cfg: PatientConfig, name: str) -> Iterator[tuple[PatientNode, Callable[[], None]]]:
    """The node of ``cfg`` (simulated robot) running in thread ``name``, and a check that
    raises if it stopped with an error; stopped and joined (the join checked) on exit."""
    robot = SimRobot()
    node = PatientNode(cfg, robot)
    stop = threading.Event()
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            node.run(stop)
        except BaseException as exc:  # reported by the check
            failed.append(exc)

    def check() -> None:
        assert not failed, failed

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        yield node, check
    finally:
        stop.set()
        thread.join(30.0)
        robot.close()
        assert not thread.is_alive(), f"{name} did not stop"
