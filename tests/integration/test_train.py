"""``telesurgery train`` as a trainer runs it: a headless attempt of the precision task, in
the database with its score and its recording, and the trainee's report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.tasks import TASKS
from telesurgery.training.db import TrainingDB

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args], capture_output=True,
                          text=True, timeout=400, check=False)


def test_a_headless_attempt_is_scored_stored_linked_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "training.db"
    summary = tmp_path / "summary.json"
    run = _cli("train", "precision", "--trainee", "ada", "--headless", "--db", str(db),
               "--summary", str(summary))
    assert run.returncode == 0, run.stderr
    task = json.loads(summary.read_text())["task"]
    rules = TASKS["precision"]
    assert task["finished"]
    assert task["completed"] == rules.objectives
    assert 0.0 < task["score"] <= 100.0
    assert set(task["metrics"]) >= {"path_m", "economy_mm", "idle_s", "over_force_s",
                                    "collisions", "clutches", "handovers"}
    with TrainingDB(db) as database:
        (row,) = database.attempts("ada")
    assert (row.status, row.task, row.score, row.time_s) == (
        "done", "precision", task["score"], task["time_s"])
    assert row.recording is not None
    assert any(Path(row.recording).glob("*.mcap"))  # the attempt's session, recorded
    out = tmp_path / "ada.html"
    report = _cli("train", "report", "ada", "--db", str(db), "--out", str(out))
    assert report.returncode == 0, report.stderr
    page = out.read_text()
    assert "Proficiency not met yet: 1 attempts at level" in page
    assert "data:image/png;base64," in page  # the learning curve
    bad = _cli("train", "report", "bob", "--db", str(db), "--out", str(out))
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        f"telesurgery: error: no attempts by 'bob' in {db}; trainees: ada"]
