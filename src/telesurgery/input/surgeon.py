"""A surgeon model that looks: the autopilot's peg transfer, done as people do it under delay.

A model, not a surgeon. The ``Autopilot`` steers its hand continuously on the latest view
of the instrument, which converges at any delay but is not what people do: past a few
hundred milliseconds of round trip, operators stop steering continuously and *move and
wait* (Ferrell 1965, "Remote manipulation with transmission delay", IEEE Trans. Human
Factors in Electronics HFE-6: task time grows about linearly with the delay, by the
number of waits; Kim et al. 2005, Surg. Endosc. 19:683: dexterity worse from 250 ms,
move-and-wait by 400 ms). This model does the same task by the same plan (``Autopilot``'s
phases and tolerances) and moves its hand in *sub-movements*:

1. **Look.** It reads the instrument from what reaches the console: the delayed measured
   tip and jaw (``feedback``), or, with the predictive display on, the ghost the console
   draws where it has commanded the tool (``foresee``), which has no transmission delay.
2. **Aim and move.** It aims the hand at the remaining error in one ballistic move, at the
   autopilot's hand speed and acceleration, missing by a random ``aim_error`` fraction of
   the move's length on each axis (endpoint scatter grows in proportion to the movement's
   amplitude: Schmidt et al. 1979, Psychol. Rev. 86:415). A move longer than the hand's
   reach is made in pieces with the clutch in between, as at a master console.
3. **Wait and see.** It then waits until what it looks at could have shown the move's
   result (its learnt ``lag``: from the start of a move to the view's first response) and
   has stood still for ``SETTLE_S``, and decides ``reaction_s`` later (a visual choice
   reaction time of about 0.2-0.3 s, e.g. Welford 1980). Then it moves again, or ends the
   phase when the view is within the phase's tolerance.
4. **Confirm with the real instrument.** Whatever it looks at, before it closes the jaws,
   before it lifts what it closed them on, before it opens them over the target and
   before it leaves a released ring, it waits to *see on the delayed state* that the tool
   is there and that the jaws have stopped, as a surgeon waits to see the grasp close
   before lifting. With the ghost those are the only waits that cost the round trip; the
   rest of the motion is steered on the ghost.

Parameters: ``reaction_s`` [s], ``aim_error`` [fraction of a move's length, standard
deviation per axis], ``settle_s`` [s], ``max_moves`` (sub-movements per phase before it
accepts where the tool is: a tool held back by the safety supervisor or a contact never
gets closer, and a person moves on), ``seed`` (the aim's scatter). It is deterministic for
a seed and a sequence of views.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from telesurgery.errors import ConfigError
from telesurgery.geometry import FloatArray
from telesurgery.input.autopilot import Autopilot, Phase, _approach, _Hand, _Step
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, PegTransferLayout
from telesurgery.types import Pose

REACTION_S: Final = 0.25
"""Time [s] from seeing a result to acting on it (a visual choice reaction)."""
AIM_ERROR: Final = 0.05
"""Endpoint scatter of a move, as a fraction of its length (standard deviation per axis)."""
SETTLE_S: Final = 0.1
"""How long [s] the view must stand still before the model trusts it."""
STILL_M: Final = 0.0002
"""The view stands still while the tip stays within this [m] of where it came to rest."""
STILL_JAW_RAD: Final = 0.02
"""The view's jaw stands still while it stays within this [rad]."""
SEEN_MOVE_M: Final = 0.0003
"""The lag [s]: from the hand's having moved the tool this far [m] to the delayed view's
showing as much."""
FIRST_LAG_S: Final = 0.3
"""The lag [s] the model assumes before it has seen one (a surgeon told "a long link")."""
MAX_MOVES: Final = 8
_CONFIRMED: Final = frozenset({Phase.DESCEND, Phase.CLOSE, Phase.LOWER, Phase.RELEASE})
"""Phases whose end the model confirms on the delayed state, even with the ghost."""
_ARRIVED_M: Final = 0.0003


class Act(enum.Enum):
    """What a hand of the model is doing within a phase."""

    LOOK = "look"
    MOVE = "move"
    WAIT = "wait"


@dataclass(slots=True)
class _View:
    """One stream of what the model sees of an instrument: where its tip is [m, view frame],
    its jaw [rad], and since when [s] each has stood still."""

    tip: FloatArray | None = None
    jaw: float = 0.0
    tip_rest: FloatArray | None = None
    jaw_rest: float = 0.0
    tip_still_since: float = 0.0
    jaw_still_since: float = 0.0

    def see(self, tip: FloatArray, jaw: float, now_s: float) -> None:
        self.tip, self.jaw = tip, jaw
        if self.tip_rest is None or float(np.linalg.norm(tip - self.tip_rest)) > STILL_M:
            self.tip_rest, self.tip_still_since = tip, now_s
        if abs(jaw - self.jaw_rest) > STILL_JAW_RAD:
            self.jaw_rest, self.jaw_still_since = jaw, now_s

    def still(self, since_s: float, now_s: float) -> bool:
        """True when tip and jaw have stood still for ``SETTLE_S`` and since ``since_s``."""
        rest = max(since_s, self.tip_still_since, self.jaw_still_since)
        return self.tip is not None and now_s - rest >= SETTLE_S


@dataclass(slots=True)
class _Gaze:
    """What one hand of the model looks at and where it is in its sub-movements."""

    seen: _View = field(default_factory=_View)
    ghost: _View = field(default_factory=_View)
    act: Act = Act.LOOK
    remaining: FloatArray = field(default_factory=lambda: np.zeros(3))
    piece_goal: FloatArray | None = None
    acted_s: float = 0.0
    decide_at_s: float | None = None
    moves: int = 0
    phase: Phase | None = None
    lag_probe: FloatArray | None = None
    """Where the delayed view showed the tip when the latest move began [m]."""
    move_start: FloatArray | None = None
    """Where the hand was when the latest move began [m]."""
    moved_at_s: float | None = None
    """When the hand had moved the tool by ``SEEN_MOVE_M`` in the latest move [s]."""


class Surgeon(Autopilot):
    """The peg transfer of ``layout`` by sub-movements on what reaches the console; with
    ``ghost`` it steers on the predictive display (see the module docstring)."""

    def __init__(self, arms: tuple[str, ...] = ("psm1", "psm2"), scale: float = 0.2,
                 layout: PegTransferLayout = DEFAULT_LAYOUT, *, ghost: bool = False,
                 seed: int = 0, reaction_s: float = REACTION_S, aim_error: float = AIM_ERROR,
                 max_moves: int = MAX_MOVES, hand_speed_m_s: float = 0.2,
                 hand_accel_m_s2: float = 1.5, reach_m: float = 0.1) -> None:
        super().__init__(arms, scale, layout, hand_speed_m_s=hand_speed_m_s,
                         hand_accel_m_s2=hand_accel_m_s2, reach_m=reach_m)
        for name, value in (("reaction_s", reaction_s), ("aim_error", aim_error)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(f"surgeon model {name} = {value} must be zero or positive")
        if max_moves < 1:
            raise ConfigError(f"surgeon model max_moves = {max_moves} must be at least 1")
        self.ghost = ghost
        self.reaction_s = reaction_s
        self.aim_error = aim_error
        self.max_moves = max_moves
        self.lag_s = FIRST_LAG_S
        """The model's belief of the delay [s] between its hand and the delayed view."""
        self.moves = 0
        """Sub-movements made, over both hands."""
        self._rng = random.Random(seed)
        self._now_s = 0.0
        self._gaze = {a: _Gaze() for a in self.arms}

    def act(self, arm: str) -> Act:
        """What ``arm``'s hand does within its phase: looking, moving or waiting."""
        return self._gaze[arm].act

    # -- what it sees ----------------------------------------------------------------------

    def feedback(self, arm: str, tip_in_view: Pose, jaw: float) -> None:
        super().feedback(arm, tip_in_view, jaw)
        gaze = self._gaze.get(arm)
        if gaze is None or not (tip_in_view.is_finite() and math.isfinite(jaw)):
            return
        tip = np.array(tip_in_view.position)
        gaze.seen.see(tip, jaw, self._now_s)
        probe, moved = gaze.lag_probe, gaze.moved_at_s
        if probe is not None and moved is not None \
                and float(np.linalg.norm(tip - probe)) > SEEN_MOVE_M:
            # The delayed view shows as much of the move as the hand made a lag ago.
            self.lag_s = 0.7 * self.lag_s + 0.3 * (self._now_s - moved)
            gaze.lag_probe = None

    def foresee(self, arm: str, commanded_in_view: Pose, jaw: float) -> None:
        gaze = self._gaze.get(arm)
        if self.ghost and gaze is not None and commanded_in_view.is_finite() \
                and math.isfinite(jaw):
            gaze.ghost.see(np.array(commanded_in_view.position), jaw, self._now_s)

    # -- acting ----------------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        self._now_s += dt
        super()._advance(dt)

    def _work(self, arm: str, hand: _Hand, step: _Step, dt: float) -> None:
        gaze = self._gaze[arm]
        now = self._now_s
        if gaze.phase is not step.phase:
            gaze.phase, gaze.act, gaze.moves, gaze.decide_at_s = step.phase, Act.LOOK, 0, None
            gaze.acted_s = now
        self._turn(arm, hand, dt)
        grip = _approach(hand.grip, step.grip, 3.0 * dt)
        if grip != hand.grip:
            hand.grip = grip
            gaze.acted_s = now
        if gaze.act is Act.MOVE:
            self._move(hand, gaze, step.tolerance_m, dt)
            return
        self._steer(hand, np.zeros(3), dt)
        if hand.grip != step.grip:
            return
        # Looking: on the ghost if there is one, else on the delayed state; the phases that
        # touch something end only once the delayed state shows it.
        on_ghost = self.ghost and gaze.ghost.tip is not None
        view = gaze.ghost if on_ghost else gaze.seen
        lag = 0.0 if on_ghost else self.lag_s
        if not (now - gaze.acted_s >= lag and view.still(gaze.acted_s, now)):
            return
        assert view.tip is not None
        error = step.target - view.tip
        if (float(np.linalg.norm(error)) <= step.tolerance_m or gaze.moves >= self.max_moves) \
                and on_ghost and step.phase in _CONFIRMED:
            if not (now - gaze.acted_s >= self.lag_s and gaze.seen.still(gaze.acted_s, now)):
                return
            assert gaze.seen.tip is not None
            real = step.target - gaze.seen.tip
            if float(np.linalg.norm(real)) > 2.0 * step.tolerance_m \
                    and gaze.moves < self.max_moves:
                # The tool is not where its ghost is (held back, or the ghost ran ahead of
                # a clamp): correct by what the delayed state shows.
                error = real
        if gaze.decide_at_s is None:
            gaze.decide_at_s = now + self.reaction_s
        if now < gaze.decide_at_s:
            return
        gaze.decide_at_s = None
        if float(np.linalg.norm(error)) <= step.tolerance_m or gaze.moves >= self.max_moves:
            self._end_phase(hand, gaze)
            return
        self._aim(hand, gaze, error)

    def _end_phase(self, hand: _Hand, gaze: _Gaze) -> None:
        step = hand.steps[0]
        hand.dwell_s = step.dwell_s
        self._finish(hand, step)
        gaze.phase = None

    def _aim(self, hand: _Hand, gaze: _Gaze, error: FloatArray) -> None:
        """One sub-movement of the hand toward the tool's ``error`` [m, view frame], with
        the scatter of a real hand."""
        spread = self.aim_error * float(np.linalg.norm(error))
        miss = np.array([self._rng.gauss(0.0, spread) for _ in range(3)])
        gaze.remaining = (error + miss) / self.scale
        gaze.piece_goal = None
        gaze.act = Act.MOVE
        gaze.moves += 1
        self.moves += 1
        gaze.lag_probe, gaze.moved_at_s = gaze.seen.tip, None

    def _move(self, hand: _Hand, gaze: _Gaze, tolerance_m: float, dt: float) -> None:
        """Carry out the sub-movement: piece by piece within the hand's reach, re-indexing
        with the clutch in between."""
        if gaze.piece_goal is None:
            length = float(np.linalg.norm(gaze.remaining))
            part = _within_reach(hand.position - hand.neutral, gaze.remaining, self.reach)
            if part < min(length, 0.2 * self.reach):
                self._start_reindex(hand, gaze.remaining)
                return
            step = gaze.remaining * (part / length)
            if gaze.moved_at_s is None:
                gaze.move_start = hand.position
            gaze.piece_goal = hand.position + step
            gaze.remaining = gaze.remaining - step
        error = gaze.piece_goal - hand.position
        distance = float(np.linalg.norm(error))
        # Ballistic: at the hand's speed, braking at its acceleration to arrive.
        speed = min(self.hand_speed, math.sqrt(2.0 * self.hand_accel * distance))
        self._steer(hand, error / distance * speed if distance > 1e-9 else np.zeros(3), dt)
        if gaze.moved_at_s is None and gaze.move_start is not None and float(
                np.linalg.norm(hand.position - gaze.move_start)) * self.scale > SEEN_MOVE_M:
            gaze.moved_at_s = self._now_s
        if distance < max(_ARRIVED_M, 0.1 * tolerance_m / self.scale):
            gaze.piece_goal = None
            if float(np.linalg.norm(gaze.remaining)) < 1e-9:
                hand.velocity = np.zeros(3)
                gaze.act = Act.WAIT
                gaze.acted_s = self._now_s


def _within_reach(offset: FloatArray, move: FloatArray, reach: float) -> float:
    """How far [m] the hand can go along ``move`` from ``offset`` (from its neutral position)
    and stay within ``reach`` of neutral: the whole move if it fits."""
    length = float(np.linalg.norm(move))
    if length < 1e-12:
        return 0.0
    u = move / length
    b = float(np.dot(offset, u))
    c = float(np.dot(offset, offset)) - reach * reach
    disc = b * b - c
    if disc < 0.0:
        return 0.0
    return max(0.0, min(length, -b + math.sqrt(disc)))


__all__ = ["AIM_ERROR", "REACTION_S", "Act", "Surgeon"]
