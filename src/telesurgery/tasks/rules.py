"""Each task's rules: its FLS-style score and its proficiency rule.

The FLS (Fundamentals of Laparoscopic Surgery) scores a task as ``cutoff - time -
penalty``, normalised; the peg transfer's cutoff is 300 s and its proficiency level 48 s
with no drops, met on 2 consecutive attempts and on 10 more (Ritter and Scott's
proficiency-based curriculum, issue 17). We normalise to 0-100 by the cutoff: an
attempt done in no time without penalty would score 100, one that does not finish
within the cutoff, or whose penalties eat the time left, scores 0. The penalty weights
(seconds a penalty event costs) are not published for our board: ours, stated in
``docs/training.md``, are a choice. Times [s].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from telesurgery.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Penalty:
    """A kind of error a task penalises: ``name`` (the key in ``penalties``), what it is
    in words, and what one costs [s]."""

    name: str
    what: str
    cost_s: float


@dataclass(frozen=True, slots=True)
class TaskRules:
    """One task's rules: ``objectives`` to complete (transfers, handovers, waypoints),
    ``cutoff_s`` [s], the penalties it counts, and its proficiency level: done within
    ``level_s`` [s] with none of ``flawless`` penalised, on ``consecutive`` attempts in
    a row and on ``more`` attempts besides."""

    name: str
    title: str
    objectives: int
    cutoff_s: float
    penalties: tuple[Penalty, ...]
    level_s: float
    flawless: tuple[str, ...]
    consecutive: int = 2
    more: int = 10
    source: str = "our choice"

    def penalty(self, name: str) -> Penalty:
        """The penalty called ``name``; ConfigError listing the task's penalties."""
        for p in self.penalties:
            if p.name == name:
                return p
        raise ConfigError(f"task {self.name} has no penalty {name!r}; its penalties are "
                          f"{', '.join(p.name for p in self.penalties)}")


@dataclass(frozen=True, slots=True)
class Score:
    """An attempt's score: ``time_s`` [s] to the last objective (None: not finished),
    ``done`` objectives, ``penalties`` by name (counts), ``penalty_s`` [s] they cost,
    ``raw`` = cutoff - time - penalty [s] (0 at worst) and ``score`` (0-100)."""

    task: str
    time_s: float | None
    done: int
    penalties: Mapping[str, int]
    penalty_s: float
    raw: float
    score: float
    timed_out: bool

    def to_json(self) -> dict[str, object]:
        """JSON-ready: the summary's ``task`` fields."""
        return {"score": round(self.score, 1), "raw_s": round(self.raw, 2),
                "penalty_s": round(self.penalty_s, 2), "penalties": dict(self.penalties),
                "timed_out": self.timed_out}


def score(rules: TaskRules, time_s: float | None, done: int,
          penalties: Mapping[str, int]) -> Score:
    """Score an attempt that completed ``done`` objectives, the last at ``time_s`` [s]
    (None: not all done), with ``penalties`` counted by name."""
    for name, n in penalties.items():
        if n < 0:
            raise ConfigError(f"penalty {name} counted {n} times; a count is 0 or more")
    cost = sum(rules.penalty(name).cost_s * n for name, n in penalties.items())
    finished = time_s is not None and done >= rules.objectives and time_s <= rules.cutoff_s
    raw = max(0.0, rules.cutoff_s - time_s - cost) if finished and time_s is not None else 0.0
    return Score(rules.name, time_s if finished else None, done, dict(penalties), cost, raw,
                 100.0 * raw / rules.cutoff_s, not finished)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the proficiency rule reads of one attempt: its time [s] (None: not finished)
    and penalties by name."""

    time_s: float | None
    penalties: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Proficiency:
    """Where a trainee stands: ``at_level`` flags each attempt meeting the level;
    ``met_at`` is the attempt (1-based) at which the rule was first met (None: not yet);
    ``streak`` the longest run at level; ``count`` attempts at level."""

    at_level: tuple[bool, ...]
    met_at: int | None
    streak: int
    count: int


def at_level(rules: TaskRules, attempt: Attempt) -> bool:
    """The attempt finished within the level's time with none of its flawless penalties."""
    return (attempt.time_s is not None and attempt.time_s <= rules.level_s
            and all(attempt.penalties.get(name, 0) == 0 for name in rules.flawless))


def proficiency(rules: TaskRules, attempts: Sequence[Attempt]) -> Proficiency:
    """The proficiency rule over ``attempts`` in order: met once ``consecutive`` attempts
    in a row are at level and ``more`` other attempts (before or after, in any order)
    are too."""
    flags = tuple(at_level(rules, a) for a in attempts)
    met_at = None
    run = best = count = 0
    for i, ok in enumerate(flags, start=1):
        run = run + 1 if ok else 0
        count += ok
        best = max(best, run)
        if met_at is None and best >= rules.consecutive \
                and count >= rules.consecutive + rules.more:
            met_at = i
    return Proficiency(flags, met_at, best, count)


FLS: Final = ("FLS peg transfer: cutoff 300 s, proficiency 48 s with no drops on 2 "
              "consecutive attempts and 10 more (issue 17; Ritter and Scott's curriculum)")

TASKS: Final[Mapping[str, TaskRules]] = {
    "peg_transfer": TaskRules(
        "peg_transfer", "Peg transfer: each ring across and back", 6, 300.0,
        (Penalty("drops", "a ring that comes to rest off every peg (out of reach)", 20.0),),
        48.0, ("drops",), source=FLS),
    "handover": TaskRules(
        "handover", "Bimanual handover: each ring passed from PSM2 to PSM1 in the air", 3,
        300.0,
        (Penalty("drops", "a ring that comes to rest off every peg", 20.0),
         Penalty("unpassed", "a ring placed without having been held by both arms", 30.0)),
        60.0, ("drops", "unpassed"),
        source="our rules, in the FLS form (cutoff 300 s as the peg transfer)"),
    "precision": TaskRules(
        "precision", "Precision: trace the circle's marks in order within 2 mm", 13, 180.0,
        (Penalty("excursions", "the tip leaving the 2 mm corridor between two marks", 5.0),),
        30.0, ("excursions",),
        source="our rules, in the FLS form (after the pattern cut's tolerance line)"),
}
"""The tasks by name."""


DEFAULT_TASK: Final = "peg_transfer"


def rules_for(name: str) -> TaskRules:
    """The rules of task ``name``; ConfigError listing the tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of "
                          f"{', '.join(sorted(TASKS))}") from None


__all__ = ["DEFAULT_TASK", "FLS", "TASKS", "Attempt", "Penalty", "Proficiency", "Score",
           "TaskRules", "at_level", "proficiency", "rules_for", "score"]
