"""``telesurgery train``: one attempt at a task, a whole session, recorded in the trainee's
database.

The attempt is the demo's session with the task's board (``DemoOptions.task``): headless,
the autopilot performs it; otherwise the trainee drives from the console page (its URL
is printed). The attempt ends when the task's last objective is done or its cutoff
passes on the task's clock, then its summary's ``task`` (score, time, penalties,
metrics) goes into the database beside the session's recording.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from telesurgery.demo.monitor import Monitor
from telesurgery.demo.run import DemoOptions, run_demo
from telesurgery.tasks import rules_for
from telesurgery.training.db import TrainingDB

START_SLACK_S: Final = 120.0
"""What [s] the session may take beyond the task's cutoff: the nodes' start-up and the
console's engagement come before the task's clock starts."""


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """What ``train`` was asked for: the ``task``, the ``trainee``, the database ``db``,
    ``headless`` (the autopilot performs it), ``record`` (the folder each attempt's
    session is recorded in; None: not recorded)."""

    task: str
    trainee: str
    db: Path
    headless: bool = True
    record: Path | None = None
    log_level: str = "warning"


def attempt_done(task: dict[str, Any] | None) -> bool:
    """The task's status says the attempt is over: every objective done, or the cutoff
    passed on its clock."""
    if not task:
        return False
    return bool(task.get("finished")) or float(task.get("time_s", 0.0)) > float(
        task.get("cutoff_s", float("inf")))


def run_attempt(opts: TrainOptions, stop: threading.Event,
                on_tick: Callable[[Monitor, float], None] | None = None
                ) -> tuple[int, dict[str, Any]]:
    """Run one attempt and store it; returns its id in the database and the summary."""
    rules = rules_for(opts.task)
    with TrainingDB(opts.db) as db:
        record = None
        if opts.record is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            record = opts.record / f"{opts.trainee}-{opts.task}-{stamp}"
        attempt = db.start(opts.trainee, opts.task, record)
        # The demo's loop checks its event between ticks: the attempt's end and the user's
        # stop both end it.
        ended = threading.Event()

        def tick(monitor: Monitor, elapsed_s: float) -> None:
            if stop.is_set() or attempt_done(monitor.status.get("patient", {}).get("task")):
                ended.set()
            if on_tick is not None:
                on_tick(monitor, elapsed_s)

        summary = run_demo(DemoOptions(duration_s=rules.cutoff_s + START_SLACK_S,
                                       task=opts.task, record=record,
                                       device="autopilot" if opts.headless else "web",
                                       # Headless, nobody watches: without video a loaded
                                       # machine's late frames cannot clutch the arms.
                                       video=not opts.headless, log_level=opts.log_level),
                           ended, on_tick=tick)
        task = summary.get("task") or {"name": opts.task, "finished": False}
        db.finish(attempt, task, summary)
    return attempt, summary


__all__ = ["START_SLACK_S", "TrainOptions", "attempt_done", "run_attempt"]
