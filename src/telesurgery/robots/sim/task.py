"""What the simulated board tells of the training task under way: objectives, penalties,
the score, and the robot metrics (``telesurgery.tasks``).

``TaskMonitor.check`` runs on the servo thread every ``TASK_CHECK_PERIOD_S`` of simulated
time (50 Hz): it reads the rings, the tips and their forces from MuJoCo's data, counts
what the task's rules count, and feeds the motion metrics. ``status`` is read by the
patient node's housekeeping thread; it reads only plain values the check wrote.

- peg transfer: a transfer is a ring leaving one peg and coming to rest around another;
  the task is done when every ring went across and came back (6 transfers);
- handover: a ring held by both arms at once has been passed; the task is done when
  every ring rests on its target peg; one placed there without being passed is
  ``unpassed``;
- precision: the tip of the tracing arm (psm1) reaches each mark in order within the
  layout's tolerance; leaving the corridor between the last mark reached and the next
  is an ``excursion``.

A drop, in the ring tasks: a ring that comes to rest on the board off every peg.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from telesurgery.robots.sim.model import ring_body_name, tip_site_name, tool_body_names
from telesurgery.tasks import MotionTracker, TaskRules, rules_for, score

if TYPE_CHECKING:
    from telesurgery.robots.sim.robot import SimRobot

Vec3 = tuple[float, float, float]

TASK_CHECK_PERIOD_S: Final = 0.02
"""How often [s, simulated] the task is checked."""
SETTLED_ABOVE_REST_M: Final = 0.005
"""A ring whose centre is at most this [m] above its resting height rests (on a peg or
the board)."""
DROP_ABOVE_REST_M: Final = 0.004
"""A ring whose centre is within this [m] of its resting height, off every peg, lies on
the board: dropped."""
TRACER: Final = "psm1"
"""The arm that traces the precision task's marks."""


def new_drops(rings: Sequence[Vec3], pegs: Sequence[int | None], rest_height: float,
              lying: set[int]) -> int:
    """Rings that have just come to lie on the board off every peg; ``lying`` keeps those
    that lie there now, so each drop counts once."""
    new = 0
    for i, (centre, peg) in enumerate(zip(rings, pegs, strict=True)):
        down = peg is None and centre[2] < rest_height + DROP_ABOVE_REST_M
        if down and i not in lying:
            new += 1
            lying.add(i)
        elif not down:
            lying.discard(i)
    return new


def segment_distance(p: Vec3, a: Vec3, b: Vec3) -> float:
    """Distance [m] from ``p`` to the segment from ``a`` to ``b``."""
    ab = [b[i] - a[i] for i in range(3)]
    ap = [p[i] - a[i] for i in range(3)]
    length2 = sum(v * v for v in ab)
    u = 0.0 if length2 == 0.0 else max(0.0, min(1.0, sum(x * y for x, y in
                                                         zip(ap, ab, strict=True)) / length2))
    return math.dist(p, tuple(a[i] + u * ab[i] for i in range(3)))


class TaskMonitor:
    """The task of ``robot.layout.task`` on ``robot``; ``force_cap_n`` [N] the cap above
    which time is counted."""

    def __init__(self, robot: SimRobot, force_cap_n: float) -> None:
        self._robot = robot
        lay = robot.layout
        self.rules: TaskRules = rules_for(lay.task)
        m = robot.model
        self._sites = {a: m.site(tip_site_name(a)).id for a in lay.arms}
        self._rings = [m.body(ring_body_name(i)).id for i in range(lay.rings)]
        # Which ring each body is (-1: none) and which arm's instrument (0: none, 1, 2...).
        self._ring_of_body = [-1] * m.nbody
        for i, b in enumerate(self._rings):
            self._ring_of_body[b] = i
        self._arm_of_body = [0] * m.nbody
        for k, arm in enumerate(lay.arms, start=1):
            for name in tool_body_names(arm):
                self._arm_of_body[m.body(name).id] = k
        self.tracker = MotionTracker(force_cap_n)
        self._rested_on: list[int | None] = list(lay.start_pegs)
        self._transfers = [0] * lay.rings
        self._in_hand = -1
        self._passed = [False] * lay.rings
        self._lying: set[int] = set()
        self._penalties = {p.name: 0 for p in self.rules.penalties}
        self._done = 0
        self._last_s = 0.0
        self._finished_s: float | None = None
        self._next_mark = 0
        self._outside = False
        self._started_s: float | None = None

    # -- the servo thread ------------------------------------------------------------

    def check(self) -> None:
        """Look at the board once (servo thread, every ``TASK_CHECK_PERIOD_S``)."""
        r = self._robot
        d = r.data
        t = r.time_s
        tips = {a: _vec(d.site_xpos[s]) for a, s in self._sites.items()}
        forces = {a: _norm3(arm.measured_cf().force) for a, arm in r.arms.items()}
        self.tracker.sample(t, tips, forces, running=self._finished_s is None)
        if self._rings:
            self._check_rings(t)
        if r.layout.marks:
            self._check_marks(t, tips[TRACER])

    def _check_rings(self, t: float) -> None:
        lay = self._robot.layout
        d = self._robot.data
        rings = [_vec(d.xpos[b]) for b in self._rings]
        pegs = [self._robot.peg_under(c) for c in rings]
        self._penalties["drops"] += new_drops(rings, pegs, lay.ring.rest_height, self._lying)
        if lay.task == "handover":
            held = self._holders()
            for i, c in enumerate(rings):
                both = len(held.get(i, ())) >= 2
                self._passed[i] = self._passed[i] or both
                # One ring in the air at a time: its window is the handover, until the
                # tracker closes it.
                if both or i == self._in_hand:
                    self.tracker.handover(t, both, c)
                    self._in_hand = i if both or self.tracker.handing_over else -1
        for i, peg in enumerate(pegs):
            if peg is None or peg == self._rested_on[i]:
                continue
            self._rested_on[i] = peg
            self._transfers[i] += 1
            if lay.task == "handover" and peg == lay.target_pegs[i] \
                    and not self._passed[i]:
                self._penalties["unpassed"] += 1
            self._last_s = t
        if lay.task == "handover":
            done = sum(1 for i, p in enumerate(self._rested_on) if p == lay.target_pegs[i])
        else:
            # Across and back: each ring's first two transfers count.
            done = sum(min(2, n) for n in self._transfers)
        self._progress(done, t)

    def _holders(self) -> dict[int, set[int]]:
        """Which arms' instruments touch each ring now."""
        d = self._robot.data
        out: dict[int, set[int]] = {}
        bodies = self._robot.model.geom_bodyid
        for g1, g2 in d.contact.geom.tolist():
            b1, b2 = int(bodies[g1]), int(bodies[g2])
            ring, arm = self._ring_of_body[b1], self._arm_of_body[b2]
            if ring < 0:
                ring, arm = self._ring_of_body[b2], self._arm_of_body[b1]
            if ring >= 0 and arm:
                out.setdefault(ring, set()).add(arm)
        return out

    def _check_marks(self, t: float, tip: Vec3) -> None:
        marks = self._robot.layout.marks
        tol = self._robot.layout.mark_tolerance_m
        if self._next_mark < len(marks) and math.dist(tip, marks[self._next_mark]) <= tol:
            self._next_mark += 1
            self._last_s = t
            self._outside = False
        elif 0 < self._next_mark < len(marks):
            off = segment_distance(tip, marks[self._next_mark - 1],
                                   marks[self._next_mark]) > tol
            if off and not self._outside:
                self._penalties["excursions"] += 1
            self._outside = off
        self._progress(self._next_mark, t)

    def _progress(self, done: int, t: float) -> None:
        self._done = done
        if done >= self.rules.objectives and self._finished_s is None:
            self._finished_s = self._last_s

    @property
    def finished(self) -> bool:
        """Every objective is done."""
        return self._finished_s is not None

    @property
    def transfers(self) -> int:
        """Rings that left one peg and came to rest around another, so far."""
        return sum(self._transfers)

    @property
    def last_s(self) -> float:
        """Simulated time [s] of the latest objective (0 before the first)."""
        return self._last_s

    def clock_s(self) -> float:
        """The attempt's clock [s]: from the instruments' first motion (as the FLS starts
        timing when the trainee starts), stopped at the last objective."""
        start = self.tracker.started_s
        if start is None:
            return 0.0
        end = self._finished_s if self._finished_s is not None else self._robot.time_s
        return max(0.0, end - start)

    # -- any thread ------------------------------------------------------------------

    def status(self, clutches: int = 0) -> dict[str, Any]:
        """The task as JSON-ready telemetry (the patient's status and the summary's
        ``task``): name, objectives ``completed``, ``time_s`` [s] of the latest one,
        the score (``telesurgery.tasks.Score``), ``penalties`` by name, ``metrics``;
        ``clutches``: the clutch presses the supervisor saw."""
        clock = self.clock_s()
        finished = self._finished_s is not None
        s = score(self.rules, clock if finished else None, self._done, dict(self._penalties))
        out: dict[str, Any] = {
            "name": self.rules.name, "completed": self._done,
            "objectives": self.rules.objectives, "time_s": round(clock, 3),
            "sim_time_s": round(self._robot.time_s, 3), "cutoff_s": self.rules.cutoff_s,
            "finished": finished,
            **s.to_json(),
            "metrics": self.tracker.metrics(self._done, clutches).to_json()}
        if self._rings:
            lay = self._robot.layout
            out["on_target"] = sum(1 for i, p in enumerate(self._rested_on)
                                   if p == lay.target_pegs[i])
        if not finished and clock <= self.rules.cutoff_s:
            # Still under way: no score yet, only where the clock stands.
            out["score"] = None
        return out


def _vec(a: Any) -> Vec3:
    return (float(a[0]), float(a[1]), float(a[2]))


def _norm3(v: Sequence[float] | Mapping[int, float]) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


__all__ = ["DROP_ABOVE_REST_M", "SETTLED_ABOVE_REST_M", "TASK_CHECK_PERIOD_S", "TRACER",
           "TaskMonitor", "new_drops", "segment_distance"]
