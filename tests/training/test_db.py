"""The training database keeps every finished attempt through a crash mid-attempt, and the
report says when the proficiency rule is met."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.errors import ConfigError
from telesurgery.tasks import TASKS
from telesurgery.training.db import TrainingDB
from telesurgery.training.report import render_trainee

# A real process: two attempts finished, a third started, then its outcome half written
# in an open transaction when the process is killed.
_CRASHING = """
import sqlite3, sys
from pathlib import Path
from telesurgery.training.db import TrainingDB
path = Path(sys.argv[1])
with TrainingDB(path) as db:
    for t in (70.0, 45.0):
        a = db.start("ada", "peg_transfer", Path("/rec") / str(t))
        db.finish(a, {"finished": True, "time_s": t, "score": 100 * (300 - t) / 300,
                      "penalties": {"drops": 0}, "metrics": {"idle_s": 1.0}})
    third = db.start("ada", "peg_transfer", None)
raw = sqlite3.connect(path, isolation_level=None)
raw.execute("BEGIN IMMEDIATE")
raw.execute("UPDATE attempts SET status = 'done', score = 99 WHERE id = ?", (third,))
print("mid-write", flush=True)
sys.stdin.read()
"""


def test_a_crash_mid_attempt_keeps_the_earlier_attempts(tmp_path: Path) -> None:
    path = tmp_path / "training.db"
    with subprocess.Popen([sys.executable, "-c", _CRASHING, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mid-write"
        child.kill()
    with TrainingDB(path) as db:
        rows = db.attempts("ada")
    assert [(r.status, r.time_s) for r in rows] == [("done", 70.0), ("done", 45.0),
                                                     ("running", None)]
    assert rows[2].interrupted
    assert rows[2].score is None
    assert rows[0].recording == str(Path("/rec") / "70.0")
    assert rows[1].penalties == {"drops": 0}
    assert rows[1].metrics == {"idle_s": 1.0}
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        check.close()


def _attempt(db: TrainingDB, trainee: str, time_s: float | None, drops: int = 0) -> None:
    a = db.start(trainee, "peg_transfer", None)
    db.finish(a, {"finished": time_s is not None, "time_s": time_s,
                  "score": 0.0 if time_s is None else 100 * (300 - time_s) / 300,
                  "penalties": {"drops": drops}, "metrics": {}})


def test_the_report_says_when_proficiency_is_met(tmp_path: Path) -> None:
    level = TASKS["peg_transfer"].level_s
    with TrainingDB(tmp_path / "t.db") as db:
        _attempt(db, "ada", None)  # timed out
        _attempt(db, "ada", level + 30)
        for _ in range(6):
            _attempt(db, "ada", level - 5)
            _attempt(db, "ada", level - 5, drops=1)  # fast but dropped: not at level
        _attempt(db, "ada", level - 1)
        assert "Proficiency not met yet: 7 attempts at level, the longest run 1" in \
            render_trainee(db, "ada")
        for _ in range(5):
            _attempt(db, "ada", level - 2)
        page = render_trainee(db, "ada")
        assert "Proficiency met at attempt 20" in page
        assert page.count("<tr>") == 1 + 20  # the header and every attempt
        with pytest.raises(ConfigError, match=r"no attempts by 'bob'.*trainees: ada"):
            render_trainee(db, "bob")


def test_a_database_in_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; create it"):
        TrainingDB(tmp_path / "nowhere" / "t.db")
    with pytest.raises(ConfigError, match="--trainee needs a name"), \
            TrainingDB(tmp_path / "t.db") as db:
        db.start(" ", "peg_transfer", None)
