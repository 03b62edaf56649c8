"""Robot metrics of an attempt, from the instruments' tips sampled at a fixed period.

Fed by the simulated robot at its task-check period (50 Hz): each tip's position [m],
the force at each tip [N] and, for the handover, what the passed object did. Pure
floats, no numpy: a sample costs a few microseconds beside the servo loop.

- ``path_m``: each tip's path length [m];
- ``economy_mm``: both tips' path per objective done [mm] (lower is better; None before
  the first);
- ``idle_s``: time [s] with every tip slower than ``idle_speed_m_s`` while the task
  runs (after the first motion, before the last objective);
- ``over_force_s``: time [s] with any tip's force at or above the cap;
- ``collisions``: times the two instruments' tips came within ``collision_m`` [m] of each
  other (the model lets instruments pass through each other; a real pair would clash);
- ``handovers``: each handover's duration [s] and the object's motion during it [mm];
- ``clutches``: clutch presses, counted by whoever sees them (the supervisor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

Vec3 = tuple[float, float, float]

IDLE_SPEED_M_S: Final = 0.002
"""A tip slower than this [m/s] is idle (2 mm/s: a hand held still drifts less)."""
START_M: Final = 0.005
"""The attempt starts when a tip has moved this far [m] from where it was first seen."""
HANDOVER_GAP_S: Final = 1.5
"""A break shorter than this [s] in the holding by both arms is the same handover: the
giver's jaws, opening and leaving, brush the object again (seen 0.6 s after the first
window with the autopilot)."""
COLLISION_M: Final = 0.006
"""Tips closer than this [m] count as the instruments touching (jaws are ~3 mm wide)."""


@dataclass(frozen=True, slots=True)
class HandoverMotion:
    """One handover: when it started [s], how long both arms held the object [s], and how
    far the object moved meanwhile [mm]."""

    start_s: float
    duration_s: float
    motion_mm: float


@dataclass(frozen=True, slots=True)
class MotionMetrics:
    """The metrics of the module docstring, JSON-ready through ``to_json``."""

    path_m: Mapping[str, float]
    economy_mm: float | None
    idle_s: float
    over_force_s: float
    collisions: int
    clutches: int
    handovers: tuple[HandoverMotion, ...]

    def to_json(self) -> dict[str, object]:
        return {"path_m": {a: round(v, 4) for a, v in self.path_m.items()},
                "economy_mm": None if self.economy_mm is None else round(self.economy_mm, 1),
                "idle_s": round(self.idle_s, 2), "over_force_s": round(self.over_force_s, 2),
                "collisions": self.collisions, "clutches": self.clutches,
                "handovers": [{"start_s": round(h.start_s, 2),
                               "duration_s": round(h.duration_s, 2),
                               "motion_mm": round(h.motion_mm, 1)} for h in self.handovers]}


@dataclass
class MotionTracker:
    """Accumulates ``MotionMetrics`` from samples (``sample``) and handover windows
    (``handover``). ``force_cap_n`` [N]: the supervisor's cap."""

    force_cap_n: float
    idle_speed_m_s: float = IDLE_SPEED_M_S
    collision_m: float = COLLISION_M
    _last_t: float | None = None
    _tips: dict[str, Vec3] = field(default_factory=dict)
    _path: dict[str, float] = field(default_factory=dict)
    _idle_s: float = 0.0
    _pending_idle_s: float = 0.0
    _moved: bool = False
    _started_s: float | None = None
    _origin: dict[str, Vec3] = field(default_factory=dict)
    _over_s: float = 0.0
    _touching: bool = False
    _collisions: int = 0
    _handovers: list[HandoverMotion] = field(default_factory=list)
    _held_since: float | None = None
    _held_at: Vec3 | None = None
    _held_path: float = 0.0
    _let_go_s: float | None = None

    def sample(self, t_s: float, tips: Mapping[str, Vec3], forces: Mapping[str, float],
               running: bool = True) -> None:
        """Tips [m, world] and tip forces [N] at ``t_s`` [s]; ``running``: the task is
        under way (idle time counts only then)."""
        dt = 0.0 if self._last_t is None else max(0.0, t_s - self._last_t)
        self._last_t = t_s
        fastest = 0.0
        for arm, p in tips.items():
            before = self._tips.get(arm)
            step = 0.0 if before is None else math.dist(p, before)
            self._path[arm] = self._path.get(arm, 0.0) + step
            self._tips[arm] = p
            if dt > 0.0:
                fastest = max(fastest, step / dt)
        if dt > 0.0 and fastest >= self.idle_speed_m_s:
            if self._moved and running:
                # A pause counts once the hands move again: the wait for the first move
                # and the stillness after the last objective are not idling.
                self._idle_s += self._pending_idle_s
            self._pending_idle_s = 0.0
            self._moved = True
        elif dt > 0.0:
            self._pending_idle_s += dt
        if self._started_s is None:
            for arm, p in tips.items():
                if math.dist(p, self._origin.setdefault(arm, p)) >= START_M:
                    self._started_s = t_s
        if any(f >= self.force_cap_n for f in forces.values()):
            self._over_s += dt
        points = list(tips.values())
        touching = len(points) >= 2 and math.dist(points[0], points[1]) < self.collision_m
        if touching and not self._touching:
            self._collisions += 1
        self._touching = touching

    @property
    def started_s(self) -> float | None:
        """When [s] a tip first moved faster than the idle speed (None: not yet)."""
        return self._started_s

    @property
    def handing_over(self) -> bool:
        """A handover window is open."""
        return self._held_since is not None

    def handover(self, t_s: float, held_by_both: bool, obj: Vec3) -> None:
        """The passed object at ``obj`` [m] at ``t_s`` [s], ``held_by_both`` arms or not:
        a window of holding by both is one handover."""
        if held_by_both:
            if self._held_since is None:
                self._held_since, self._held_path = t_s, 0.0
            elif self._held_at is not None:
                self._held_path += math.dist(obj, self._held_at)
            self._held_at = obj
            self._let_go_s = None
        elif self._held_since is not None:
            if self._let_go_s is None:
                self._let_go_s = t_s
            if t_s - self._let_go_s >= HANDOVER_GAP_S:
                self._handovers.append(HandoverMotion(
                    self._held_since, self._let_go_s - self._held_since,
                    self._held_path * 1000.0))
                self._held_since = self._held_at = self._let_go_s = None

    def metrics(self, done: int, clutches: int = 0) -> MotionMetrics:
        """The metrics so far, ``done`` objectives completed, ``clutches`` counted."""
        total = sum(self._path.values())
        return MotionMetrics(dict(self._path), total * 1000.0 / done if done else None,
                             self._idle_s, self._over_s, self._collisions, clutches,
                             tuple(self._handovers))


__all__ = ["COLLISION_M", "HANDOVER_GAP_S", "IDLE_SPEED_M_S", "START_M", "HandoverMotion",
           "MotionMetrics", "MotionTracker"]
