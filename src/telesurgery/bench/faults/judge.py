"""Judging one fault from what was observed: pure functions on traces, no I/O.

Every time is the patient node's send stamp [ns] (one machine, one monotonic clock),
never a receive time: a sample that queued on a loaded machine still belongs to the
instant the robot was there. A trace is split wherever its sender changes (a restarted
patient node is a new simulation whose arm starts where the model starts: that is not
a motion of the arm, and is reported as ``restarts``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from telesurgery.messages import SafetyEvent
from telesurgery.types import ArmMode, Pose

SPEED_MARGIN: Final = 0.25
"""Tolerated excess over the speed bound between two samples (fraction): the arm tracks
its clamped setpoint through physics and overshoots it a little."""
STEP_MARGIN_M: Final = 2e-4
"""Tolerated step [m] beyond the speed bound between two samples: state sample timing
noise on a loaded machine."""
HELD_DRIFT_M: Final = 0.002
"""The most a held arm may move from where the hold caught it [m]."""
NOT_MOVING: Final = frozenset({ArmMode.HELD, ArmMode.ARMED})
"""Arm modes in which the supervisor holds the arm still."""


@dataclass(frozen=True, slots=True)
class TipSample:
    """One measured tool tip: its ``sender`` (the patient node's session id), ``seq``, the
    patient's send time ``sent_ns`` [ns], the ``tip`` pose [m], the arm's ``mode`` and the
    number of the command its setpoint came from (``applied_seq``)."""

    sender: int
    seq: int
    sent_ns: int
    tip: Pose
    mode: ArmMode
    applied_seq: int


@dataclass(frozen=True, slots=True)
class Hold:
    """An arm the supervisor held at ``sent_ns`` [ns], and why (``SafetyCause`` label)."""

    sent_ns: int
    arm: str
    cause: str

    @classmethod
    def of(cls, sent_ns: int, event: SafetyEvent) -> Hold | None:
        """The hold ``event`` announces; None for any other transition."""
        return cls(sent_ns, event.arm, event.cause.label) \
            if event.held and event.arm is not None else None


@dataclass(frozen=True, slots=True)
class Motion:
    """The worst motion of one arm's trace against the speed bound."""

    samples: int
    max_step_mm: float
    max_speed_m_s: float
    """Over pairs at least 10 ms apart (shorter pairs magnify send-time noise)."""
    over_bound: int
    """Consecutive samples further apart than the bound allows."""
    worst_excess_mm: float
    """The largest step beyond its bound [mm] (0 when none)."""
    restarts: int


def _ordered(samples: Sequence[TipSample]) -> list[TipSample]:
    return sorted(samples, key=lambda s: (s.sent_ns, s.seq))


def motion(samples: Sequence[TipSample], max_speed_m_s: float) -> Motion:
    """Judge consecutive samples of one arm: a step of ``d`` [m] over ``dt`` [s] is over the
    bound when ``d > max_speed_m_s * dt * (1 + SPEED_MARGIN) + STEP_MARGIN_M``."""
    max_step = max_speed = worst = 0.0
    over = restarts = 0
    for a, b in itertools.pairwise(_ordered(samples)):
        if a.sender != b.sender:
            restarts += 1
            continue
        dt = (b.sent_ns - a.sent_ns) * 1e-9
        d = a.tip.distance(b.tip)
        max_step = max(max_step, d)
        if dt >= 0.01:
            max_speed = max(max_speed, d / dt)
        excess = d - (max_speed_m_s * max(dt, 0.0) * (1 + SPEED_MARGIN) + STEP_MARGIN_M)
        if excess > 0:
            over += 1
            worst = max(worst, excess)
    return Motion(len(samples), round(max_step * 1e3, 3), round(max_speed, 4), over,
                  round(worst * 1e3, 3), restarts)


def held_drift_mm(samples: Sequence[TipSample]) -> float:
    """The most the arm moved [mm] while held (``NOT_MOVING``), from where each hold began:
    a run of held samples of one sender under one applied command (a held arm applies
    none, so a newer one means it followed in between, in samples that were lost)."""
    worst = 0.0
    origin: TipSample | None = None
    for s in _ordered(samples):
        if s.mode not in NOT_MOVING or (origin is not None and (
                origin.sender != s.sender or origin.applied_seq != s.applied_seq)):
            origin = None
        if s.mode in NOT_MOVING:
            origin = origin or s
            worst = max(worst, origin.tip.distance(s.tip))
    return round(worst * 1e3, 3)


def mode_at(samples: Sequence[TipSample], t_ns: int) -> ArmMode | None:
    """The arm's mode in its last sample sent at or before ``t_ns`` (None before any)."""
    before = [s for s in samples if s.sent_ns <= t_ns]
    return max(before, key=lambda s: (s.sent_ns, s.seq)).mode if before else None


def recovery_s(samples: Sequence[TipSample], fault_end_ns: int,
               horizon_ns: int = 2**63) -> float | None:
    """Seconds from the fault's end until the arm follows a command newer than the one it
    had before: after its last held sample (``NOT_MOVING``) sent before ``horizon_ns``
    [ns] if that came after the fault's end, else after the fault's end. None if it never
    did. A hold that begins after the horizon is not the fault's (it is still counted
    among the holds seen)."""
    ordered = _ordered(samples)
    held = [i for i, s in enumerate(ordered) if s.mode in NOT_MOVING
            and s.sent_ns < horizon_ns]
    first_after = next((i for i, s in enumerate(ordered) if s.sent_ns >= fault_end_ns),
                       len(ordered))
    start = max(first_after, held[-1] + 1 if held else 0)
    before = ordered[start - 1] if start > 0 else None
    for s in ordered[start:]:
        if s.mode is ArmMode.FOLLOWING and (before is None or s.sender != before.sender
                                            or s.applied_seq != before.applied_seq):
            return round(max(0, s.sent_ns - fault_end_ns) * 1e-9, 3)
    return None


def growth(counts: Sequence[tuple[int, int]], begin_ns: int, end_ns: int) -> int | None:
    """How much a running count (``(sent_ns, count)`` samples of one sender) grew from its
    last sample at or before ``begin_ns`` to its first at or after ``end_ns``; None without
    a sample on each side (the window is then not judged from it)."""
    ordered = sorted(counts)
    before = [c for t, c in ordered if t <= begin_ns]
    after = [c for t, c in ordered if t >= end_ns]
    return after[0] - before[-1] if before and after else None


@dataclass(frozen=True, slots=True)
class Losses:
    """Messages of a stream missing from a recording: ``lost`` of ``recorded`` + lost, and
    the longest run of them as the time [s] between the recorded messages around it."""

    recorded: int
    lost: int
    longest_s: float


def recording_losses(seqs: Iterable[tuple[int, int, int]]) -> Losses:
    """Losses of one stream from its recorded (sender, seq, sent_ns); a sender's numbers
    count up by one, so a missing number is a message the recorder lost."""
    by_sender: dict[int, list[tuple[int, int]]] = {}
    for sender, seq, sent in seqs:
        by_sender.setdefault(sender, []).append((seq, sent))
    recorded = lost = 0
    longest = 0.0
    for items in by_sender.values():
        items.sort()
        recorded += len(items)
        for (s1, t1), (s2, t2) in itertools.pairwise(items):
            if s2 - s1 > 1:
                lost += s2 - s1 - 1
                longest = max(longest, (t2 - t1) * 1e-9)
    return Losses(recorded, lost, round(longest, 3))


@dataclass(frozen=True, slots=True)
class Verdict:
    """A fault's judgement: ``passed`` is every check's, each check named with its figure."""

    checks: dict[str, bool]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(self.checks.values())

    @property
    def failed(self) -> list[str]:
        """The checks that failed, by name."""
        return [k for k, ok in self.checks.items() if not ok]


def judge(arms: dict[str, dict[str, Any]], audit_ok: bool | None, losses: Losses | None,
          max_recorder_loss_s: float, recovery_limit_s: float) -> Verdict:
    """The checks of one fault from each arm's figures (``motion``, ``held_drift_mm``,
    ``recovery_s``), the audit verdict and the recording's losses (None: unreadable)."""
    checks = {
        "speed_bound": all(a["motion"]["over_bound"] == 0 for a in arms.values()),
        "held_still": all(a["held_drift_mm"] <= HELD_DRIFT_M * 1e3 for a in arms.values()),
        "recovered": all(a["recovery_s"] is not None and a["recovery_s"] <= recovery_limit_s
                         for a in arms.values()),
        "audit_verifies": audit_ok is True,
        # An unreadable recording (None) lost everything.
        "recorder_loss": losses is not None and losses.longest_s <= max_recorder_loss_s,
    }
    return Verdict(checks)


__all__ = ["HELD_DRIFT_M", "Hold", "Losses", "Motion", "TipSample", "Verdict", "growth",
           "held_drift_mm", "judge", "mode_at", "motion", "recording_losses", "recovery_s"]
