"""The replay of an outage's twin motion on the robot, at a safe pace.

The twin (``console.twin``) keeps each arm's setpoints every 20 ms while the surgeon works
on it. When the link returns, that motion is discarded unless the console offers it and
the bedside allows it (``ControlAction.REPLAY``, ``ALLOW_REPLAY``); then the console sends
it to the robot, through the safety supervisor like any command, as a path per arm that
starts where the instrument really is and passes through every kept setpoint, at no more
than ``REPLAY_SPEED_M_S``, one command bundle every ``REPLAY_PERIOD_NS`` (each audited by
the patient). The pace is slower than the surgeon's: a replay is a motion nobody at the
bedside is steering, and they must be able to stop it (``hold``, the e-stop) before it
goes far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from telesurgery.console.twin import Waypoint
from telesurgery.geometry import quat_normalize
from telesurgery.types import Pose

REPLAY_SPEED_M_S: Final = 0.02
"""The replayed tip's speed [m/s] at most (our choice: a tenth of the supervisor's limit)."""
REPLAY_PERIOD_NS: Final = 20_000_000
"""One replayed command bundle every 20 ms: the twin's own record rate, and well inside
the supervisor's 50 ms watchdog."""
REPLAY_WAIT_S: Final = 60.0
"""How long [s] an offered replay waits for the bedside before it is discarded."""


class ReplayPlan:
    """Per arm, the path from ``start`` (the measured tip [m, base frame] and jaw [rad])
    through the arm's ``waypoints``, walked at ``speed_m_s``."""

    def __init__(self, waypoints: Sequence[Waypoint], start: Mapping[str, tuple[Pose, float]],
                 speed_m_s: float = REPLAY_SPEED_M_S) -> None:
        self.speed = speed_m_s
        self._paths: dict[str, list[tuple[Pose, float]]] = {}
        for arm, first in start.items():
            points = [(w.pose, w.jaw) for w in waypoints if w.arm == arm]
            if points:
                self._paths[arm] = [first, *points]
        self._at = dict.fromkeys(self._paths, 0)
        """Each arm's index of the point it last passed."""
        self._along = dict.fromkeys(self._paths, 0.0)
        """How far [m] past that point it is."""
        self.length_m = sum(_length(p) for p in self._paths.values())
        """The paths' length, all arms together [m]."""

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms with motion to replay."""
        return tuple(self._paths)

    @property
    def done(self) -> bool:
        """True once every arm has reached its last point."""
        return all(self._at[a] >= len(p) - 1 for a, p in self._paths.items())

    def remaining_s(self) -> float:
        """Time [s] the slowest arm still needs at ``speed``."""
        left = [_length(p[self._at[a]:]) - self._along[a] for a, p in self._paths.items()]
        return max(left, default=0.0) / self.speed

    def start(self) -> dict[str, tuple[Pose, float]]:
        """Each arm's first point: where its instrument is."""
        return {a: p[0] for a, p in self._paths.items()}

    def step(self, dt_s: float) -> dict[str, tuple[Pose, float]]:
        """Advance every arm ``speed * dt_s`` along its path; each one's target now."""
        out = {}
        for arm, path in self._paths.items():
            budget = self.speed * dt_s + self._along[arm]
            i = self._at[arm]
            while i < len(path) - 1:
                seg = path[i][0].distance(path[i + 1][0])
                if budget < seg:
                    break
                budget -= seg
                i += 1
            self._at[arm] = i
            if i >= len(path) - 1:
                self._along[arm] = 0.0
                out[arm] = path[-1]
                continue
            self._along[arm] = budget
            (a, jaw_a), (b, jaw_b) = path[i], path[i + 1]
            seg = a.distance(b)
            f = budget / seg if seg > 0.0 else 1.0
            out[arm] = (_between(a, b, f), jaw_a + (jaw_b - jaw_a) * f)
        return out


def _length(path: Sequence[tuple[Pose, float]]) -> float:
    return sum(path[i][0].distance(path[i + 1][0]) for i in range(len(path) - 1))


def _between(a: Pose, b: Pose, f: float) -> Pose:
    """The pose a fraction ``f`` of the way from ``a`` to ``b`` (orientation by normalised
    linear interpolation: the kept setpoints are 20 ms apart, so their turns are small)."""
    qa, qb = a.orientation, b.orientation
    if sum(x * y for x, y in zip(qa, qb, strict=True)) < 0.0:
        qb = (-qb[0], -qb[1], -qb[2], -qb[3])
    q = quat_normalize((qa[0] + (qb[0] - qa[0]) * f, qa[1] + (qb[1] - qa[1]) * f,
                        qa[2] + (qb[2] - qa[2]) * f, qa[3] + (qb[3] - qa[3]) * f))
    pa, pb = a.position, b.position
    return Pose((pa[0] + (pb[0] - pa[0]) * f, pa[1] + (pb[1] - pa[1]) * f,
                 pa[2] + (pb[2] - pa[2]) * f), q)


__all__ = ["REPLAY_PERIOD_NS", "REPLAY_SPEED_M_S", "REPLAY_WAIT_S", "ReplayPlan"]
