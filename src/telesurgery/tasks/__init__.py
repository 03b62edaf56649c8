"""Surgical training tasks as rules: FLS-style scores, the proficiency rule, robot metrics.

Pure values and functions (no simulator, no I/O): the simulated robot feeds them what it
sees, the training database and reports read what they return.
"""

from telesurgery.tasks.metrics import HandoverMotion, MotionMetrics, MotionTracker
from telesurgery.tasks.rules import (
    DEFAULT_TASK,
    TASKS,
    Attempt,
    Penalty,
    Proficiency,
    Score,
    TaskRules,
    proficiency,
    rules_for,
    score,
)

__all__ = ["DEFAULT_TASK", "TASKS", "Attempt", "HandoverMotion", "MotionMetrics",
           "MotionTracker", "Penalty", "Proficiency", "Score", "TaskRules", "proficiency",
           "rules_for", "score"]
