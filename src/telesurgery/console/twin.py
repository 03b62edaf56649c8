"""Outage mode: with both control paths down, the surgeon keeps working on a local twin.

When no state has come from the patient for ``OUTAGE_AFTER_MS`` while this console
drives, the patient's supervisor has long held the arms (its watchdog, 50 ms). The console
then switches its teleoperation to a twin of the patient side inside the console: the same
MuJoCo scene (``SimRobot``) behind its own safety supervisor, each arm placed where the
last measured state had it. The surgeon's commands go to the twin and nowhere else (none
to the patient: any that a returning path delivered would come from a hand re-anchored
on the twin), and the page says that what it shows is the twin. The twin's setpoints are
kept (``buffered``, every ``RECORD_PERIOD_NS``, up to ``MAX_BUFFER_S``) for what happens
when the link returns: discarded by default; the bedside may allow their replay
(``console.replay``).

When states come back the console leaves the twin: it feeds the patient's measured state
to the teleoperation again and clutches every hand for ``RESYNC_CLUTCH_MS``, so the hands
re-anchor on the real instruments and the arms resume where they are, without a jump. The
twin knows the arms only: where the rings lie on the patient side is not sent to the
console, so its rings stay where the scene starts them (a limit the page states).

A JHU study of a twin through link outages (arXiv 2411.13449: peg transfer 23.6 % faster
than stopping teleoperation) replays the twin's commands on return; here that is the
bedside's decision, never the default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from telesurgery.config import SafetyConfig
from telesurgery.messages import Command, JawServoJP, Message, SafetyEvent
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, PegTransferLayout
from telesurgery.safety.supervisor import Supervisor
from telesurgery.types import ArmMode, Pose

log = logging.getLogger(__name__)

OUTAGE_AFTER_MS: Final = 250.0
"""No state from the patient this long [ms] while driving: both paths are down (a state
comes every 2 ms; the patient has held the arms since 50 ms of silence on its side)."""
RESYNC_CLUTCH_MS: Final = 50.0
"""How long [ms] every hand is clutched on entering and leaving the twin: it re-anchors on
the instrument it drives from then on."""
RECORD_PERIOD_NS: Final = 20_000_000
MAX_BUFFER_S: Final = 120.0
"""The longest stretch of twin motion kept [s]; older motion is dropped (and counted)."""
TWIN_SESSION: Final = 1
_PERIOD_NS: Final = 1_000_000
_MAX_STEP_NS: Final = 10_000_000


@dataclass(frozen=True, slots=True)
class Waypoint:
    """A setpoint of the twin: ``arm``'s tip ``pose`` [m, base frame] and ``jaw`` [rad] at
    ``t_ns`` [ns, console clock]."""

    t_ns: int
    arm: str
    pose: Pose
    jaw: float


class LocalTwin:
    """The twin of ``arms`` (see the module docstring). Used from the console's loop only."""

    def __init__(self, arms: tuple[str, ...], config: SafetyConfig | None = None,
                 layout: PegTransferLayout = DEFAULT_LAYOUT) -> None:
        self.arms = arms
        self.layout = layout
        """The board of the session's task (the twin's arms work over the same one)."""
        self.config = config or SafetyConfig()
        self.active = False
        self.entered = 0
        """Outages the console has worked through on the twin."""
        self.since_ns = 0
        self.buffer: list[Waypoint] = []
        self.dropped = 0
        """Waypoints dropped from the buffer's start to keep ``MAX_BUFFER_S``."""
        self.discarded_s = 0.0
        """Twin motion [s] discarded when the link returned."""
        self._robot: SimRobot | None = None
        self._sup: Supervisor | None = None
        self._events: list[SafetyEvent] = []
        self._t_ns = 0
        self._seq = 0
        self._next_record_ns = 0
        self._jaws: dict[str, float] = {}
        self._driven: list[str] = []

    def enter(self, measured: Mapping[str, tuple[Pose, float]], now_ns: int) -> None:
        """Start the twin from the last measured tip poses [m, base frame] and jaws [rad]."""
        if self._robot is None:
            # Built on the first outage (about 15 ms, once): most sessions never need it.
            self._robot = SimRobot(self.layout)
        robot = self._robot
        robot.enable()
        robot.place({a: v for a, v in measured.items() if a in robot.arms})
        self._t_ns = now_ns
        self._events = []
        self._driven = [a for a in self.arms if a in robot.arms]
        self._sup = Supervisor(robot, self.config, self._events.append, clock=self._clock,
                               arms=self._driven)
        self._sup.enable()
        self._seq = 0
        self.buffer = []
        self.dropped = 0
        self._jaws = {a: jaw for a, (_, jaw) in measured.items()}
        self.active = True
        self.entered += 1
        self.since_ns = now_ns
        self._next_record_ns = now_ns
        log.warning("outage: no state from the patient for %.0f ms; the surgeon works on "
                    "the local twin", OUTAGE_AFTER_MS)

    def _clock(self) -> int:
        return self._t_ns

    def submit(self, bodies: list[Command], now_ns: int) -> None:
        """This tick's commands, to the twin's supervisor; its setpoints to the buffer."""
        sup = self._sup
        if sup is None or not bodies:
            return
        self._seq += 1
        msg = Message(TWIN_SESSION, self._seq, now_ns, bodies[0])
        for body in bodies:
            sup.submit(msg, now_ns, body)
            if isinstance(body, JawServoJP):
                self._jaws[body.arm] = body.angle

    def step(self, now_ns: int) -> None:
        """One supervisor tick and the physics up to ``now_ns`` [ns]; a setpoint of each arm
        into the buffer every ``RECORD_PERIOD_NS``."""
        robot, sup = self._robot, self._sup
        if robot is None or sup is None:
            return
        dt = min(max(now_ns - self._t_ns, _PERIOD_NS), _MAX_STEP_NS)
        self._t_ns = now_ns
        sup.tick(now_ns)
        robot.step(dt * 1e-9)
        if now_ns >= self._next_record_ns:
            self._next_record_ns = now_ns + RECORD_PERIOD_NS
            for arm in self._driven:
                if sup.mode(arm) is ArmMode.FOLLOWING:
                    self.buffer.append(Waypoint(now_ns, arm, robot.arms[arm].setpoint_cp(),
                                                self._jaws.get(arm, 0.0)))
            keep = int(MAX_BUFFER_S * 1e9 / RECORD_PERIOD_NS) * len(self.arms)
            if len(self.buffer) > keep:
                self.dropped += len(self.buffer) - keep
                del self.buffer[:len(self.buffer) - keep]

    def states(self) -> list[tuple[str, Pose, float, ArmMode]]:
        """Each arm's measured tip pose [m, base frame], jaw [rad] and what the twin's
        supervisor does with its commands."""
        robot, sup = self._robot, self._sup
        if robot is None or sup is None:
            return []
        return [(a, robot.arms[a].measured_cp(), robot.arms[a].jaw_measured_js().position[0],
                 sup.mode(a)) for a in self._driven]

    @property
    def buffered_s(self) -> float:
        """The twin motion kept [s]."""
        if not self.buffer:
            return 0.0
        return (self.buffer[-1].t_ns - self.buffer[0].t_ns) * 1e-9

    def leave(self) -> list[Waypoint]:
        """The link is back: stop the twin; the buffer, for the caller to discard or
        replay."""
        kept, self.buffer = self.buffer, []
        self.active = False
        return kept

    def status(self, now_ns: int) -> dict[str, Any]:
        """JSON-ready: whether the surgeon works on the twin, since when, what is kept."""
        return {"active": self.active,
                "for_s": round((now_ns - self.since_ns) * 1e-9, 2) if self.active else 0.0,
                "buffered_s": round(self.buffered_s, 2), "entered": self.entered,
                "discarded_s": round(self.discarded_s, 2), "dropped": self.dropped}


__all__ = ["MAX_BUFFER_S", "OUTAGE_AFTER_MS", "RESYNC_CLUTCH_MS", "LocalTwin", "Waypoint"]
