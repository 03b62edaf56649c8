"""A test rig: the supervisor over the kinematic test robot, a console, and a simulated clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from telesurgery.config import SafetyConfig
from telesurgery.messages import AnyBody, JawServoJP, Message, SafetyEvent, ServoCP
from telesurgery.robots.base import Robot
from telesurgery.safety import Supervisor, Verdict
from telesurgery.types import Pose, SafetyState

from .kinematic_robot import KinematicRobot

HOME = {"psm1": Pose((0.03, 0.0, -0.12)), "psm2": Pose((-0.03, 0.0, -0.12))}
"""Tool tips inside the default workspace [m]."""
PERIOD_NS = 1_000_000


class Console:
    """Numbers each stream 1, 2, ... like the transport's publishers, under one session id."""

    def __init__(self, session: int = 0x5E55) -> None:
        self.session = session
        self._seq: dict[tuple[str, type], int] = {}

    def message(self, body: ServoCP | JawServoJP, sent_ns: int,
                seq: int | None = None) -> Message:
        """The next message of ``body``'s stream, or number ``seq`` (numbering goes on
        from there)."""
        key = (body.arm, type(body))
        self._seq[key] = self._seq.get(key, 0) + 1 if seq is None else seq
        return Message(self.session, self._seq[key], sent_ns, body)


R = TypeVar("R", bound=Robot)


class Rig(Generic[R]):
    """The supervisor, enabled, over ``robot``; time advances only by ``tick``."""

    def __init__(self, robot: R, config: SafetyConfig | None = None,
                 admits: Callable[[int], bool] | None = None) -> None:
        self.config = config or SafetyConfig()
        self.t_ns = 1_000_000_000_000
        self.robot = robot
        self.events: list[SafetyEvent] = []
        self.owner: int | None = None
        """The only console session admitted (None: any), unless ``admits`` decides."""
        self.sup = Supervisor(self.robot, self.config, self.events.append,
                              period_s=PERIOD_NS * 1e-9, clock=lambda: self.t_ns,
                              admits=admits or (lambda s: self.owner in (None, s)))
        self.console = Console()
        self.robot.enable()
        self.sup.enable()
        self.tick()

    def tick(self, n: int = 1) -> None:
        """``n`` servo periods: supervisor tick, then robot step, as the patient node does."""
        for _ in range(n):
            self.sup.tick(self.t_ns)
            self.robot.step(PERIOD_NS * 1e-9)
            self.t_ns += PERIOD_NS

    def submit(self, body: AnyBody, *, age_ns: int = 0, console: Console | None = None,
               seq: int | None = None) -> Verdict:
        """Deliver ``body`` sent ``age_ns`` ago (its input sampled at sending)."""
        c = console or self.console
        if isinstance(body, ServoCP | JawServoJP):
            msg = c.message(body, self.t_ns - age_ns, seq)
        else:
            msg = Message(c.session, seq or 1, self.t_ns - age_ns, body)
        return self.sup.submit(msg, self.t_ns)

    def servo(self, arm: str, pose: Pose, *, clutch: bool = False, age_ns: int = 0,
              console: Console | None = None) -> Verdict:
        """A ``servo_cp`` command for ``arm``."""
        return self.submit(ServoCP(arm, pose, self.t_ns - age_ns, clutch), age_ns=age_ns,
                           console=console)

    def state(self) -> SafetyState:
        """The supervisor's state (a call, so that type checkers do not pin it)."""
        return self.sup.state

    def tip(self, arm: str = "psm1") -> Pose:
        """The pose the robot is commanded to [m]."""
        return self.robot.arms[arm].setpoint_cp()

    def engage(self, arm: str = "psm1", console: Console | None = None) -> None:
        """The clutch cycle on the tool where it is: clutch, then release."""
        assert self.servo(arm, self.tip(arm), clutch=True, console=console).accepted
        self.tick()
        assert self.servo(arm, self.tip(arm), console=console).accepted
        assert self.state() is SafetyState.ENGAGED


KinematicRig = Rig[KinematicRobot]


def moved(p: Pose, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Pose:
    """``p`` translated by (dx, dy, dz) [m]."""
    x, y, z = p.position
    return Pose((x + dx, y + dy, z + dz), p.orientation)


def kinematic_rig(config: SafetyConfig | None = None,
                  poses: Mapping[str, Pose] | None = None,
                  admits: Callable[[int], bool] | None = None) -> KinematicRig:
    """The rig over a ``KinematicRobot`` with its tools at ``poses`` (default ``HOME``);
    ``admits`` decides which console sessions hold control (default: ``Rig.owner``)."""
    return Rig(KinematicRobot(poses or HOME), config, admits)
