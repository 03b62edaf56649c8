"""The trainees' attempts, in a local SQLite database (the standard library's ``sqlite3``).

One file, write-ahead log, ``synchronous = FULL``. An attempt is written twice, each time
in its own transaction: when it starts (``running``), and when it ends, with its score,
penalties and metrics, all at once (``done``). A process killed mid-attempt leaves that
attempt ``running`` (read back as interrupted) and every earlier attempt as committed:
SQLite's journal makes each transaction all or nothing.

Schema (version 1)::

    trainees(id, name UNIQUE, created_utc)
    attempts(id, trainee_id, task, started_utc, status, time_s, score, penalties,
             metrics, recording, summary)

``status``: ``running`` or ``done``; ``time_s`` [s] (NULL: not finished within the
cutoff); ``penalties``, ``metrics``, ``summary``: JSON; ``recording``: the session
directory the attempt was recorded into.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from telesurgery.errors import ConfigError, RecordingError
from telesurgery.tasks import Attempt as RuleAttempt

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS trainees (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    trainee_id INTEGER NOT NULL REFERENCES trainees(id),
    task TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done')),
    time_s REAL,
    score REAL,
    penalties TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    recording TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_trainee ON attempts (trainee_id, task, id);
"""


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt as stored: ``time_s`` [s] (None: not finished), ``score`` 0-100 (None:
    interrupted), ``penalties`` by name, ``metrics`` (``tasks.MotionMetrics`` as JSON)."""

    id: int
    trainee: str
    task: str
    started_utc: str
    status: str
    time_s: float | None
    score: float | None
    penalties: Mapping[str, int]
    metrics: Mapping[str, Any]
    recording: str | None

    @property
    def interrupted(self) -> bool:
        """The attempt never ended (its process was stopped or crashed)."""
        return self.status == "running"

    def for_rules(self) -> RuleAttempt:
        """What the proficiency rule reads of it."""
        return RuleAttempt(self.time_s, self.penalties)


class TrainingDB:
    """The database at ``path`` (created with its schema if new); a context manager."""

    def __init__(self, path: Path) -> None:
        if not path.parent.is_dir():
            raise ConfigError(f"--db {path}: its folder {path.parent} does not exist; create "
                              "it or choose another path")
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            # One script, one transaction: executescript commits whatever is pending first.
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}"
                                   f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"training database {path}: {exc}; give a path to a "
                                 "training database or to a new file") from exc
        self.path = path

    def __enter__(self) -> TrainingDB:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    def start(self, trainee: str, task: str, recording: Path | None) -> int:
        """Record that ``trainee`` starts ``task`` (committed at once); returns its id."""
        if not trainee.strip():
            raise ConfigError("--trainee needs a name, e.g. --trainee dr-rossi")
        now = _utc()
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO trainees (name, created_utc) VALUES (?, ?)",
                             (trainee, now))
            (tid,) = self._db.execute("SELECT id FROM trainees WHERE name = ?",
                                      (trainee,)).fetchone()
            cur = self._db.execute(
                "INSERT INTO attempts (trainee_id, task, started_utc, status, recording) "
                "VALUES (?, ?, ?, 'running', ?)",
                (tid, task, now, None if recording is None else str(recording)))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish(self, attempt: int, task: Mapping[str, Any],
               summary: Mapping[str, Any] | None = None) -> None:
        """Store the outcome of ``attempt`` from the summary's ``task`` (score, time,
        penalties, metrics), in one transaction."""
        finished = bool(task.get("finished"))
        with self._transaction():
            self._db.execute(
                "UPDATE attempts SET status = 'done', time_s = ?, score = ?, penalties = ?, "
                "metrics = ?, summary = ? WHERE id = ?",
                (task.get("time_s") if finished else None, float(task.get("score") or 0.0),
                 json.dumps(task.get("penalties", {})), json.dumps(task.get("metrics", {})),
                 None if summary is None else json.dumps(summary), attempt))

    def attempts(self, trainee: str, task: str | None = None) -> list[AttemptRow]:
        """``trainee``'s attempts in order (of ``task`` only, if given)."""
        rows = self._db.execute(
            "SELECT a.id, t.name, a.task, a.started_utc, a.status, a.time_s, a.score, "
            "a.penalties, a.metrics, a.recording FROM attempts a JOIN trainees t "
            "ON a.trainee_id = t.id WHERE t.name = ? AND (? IS NULL OR a.task = ?) "
            "ORDER BY a.id", (trainee, task, task)).fetchall()
        return [AttemptRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]),
                           json.loads(r[8]), r[9]) for r in rows]

    def trainees(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM trainees ORDER BY name")]


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["SCHEMA_VERSION", "AttemptRow", "TrainingDB"]
