"""``telesurgery drill`` end to end: the console-crash drill, its score sheet as the contract
says, and a bad drill file in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.training.drill import load_drill

pytestmark = pytest.mark.integration

DRILLS = Path(__file__).resolve().parents[2] / "configs" / "drills"


def test_the_shipped_drills_load() -> None:
    names = {load_drill(f).name for f in DRILLS.glob("*.toml")}
    assert names == {"path-loss", "latency-spike", "console-crash"}


def test_the_console_crash_drill_scores_the_bedside_take_over(tmp_path: Path) -> None:
    sheet_path = tmp_path / "sheet.json"
    # The shipped drill, with a shorter tail: the take-over is what is judged here.
    drill = tmp_path / "console-crash.toml"
    text = (DRILLS / "console-crash.toml").read_text()
    assert "after_s = 15.0" in text
    drill.write_text(text.replace("after_s = 15.0", "after_s = 2.0"))
    run = subprocess.run([sys.executable, "-m", "telesurgery", "drill",
                          str(drill), "--summary", str(sheet_path),
                          "--workdir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=400, check=False)
    sheet = json.loads(sheet_path.read_text())
    assert sheet["drill"] == "console-crash"
    (event,) = sheet["events"]
    assert set(event) >= {"fault", "alarm_s", "response_s", "passed"}
    assert event["fault"] == "console_crash"
    # The surgeon's console was SIGKILLed: control went to the bedside, which the team took
    # (the backup console's one action) without moving the instruments.
    assert event["team_acted_s"] is not None
    assert event["response_s"] is not None
    assert event["response_s"] >= 0.0
    assert sheet["backup"]["actions"]["take_over"] >= 1
    assert event["takeover_motion_mm"] is not None
    assert event["passed"] == (event["alarm_s"] is not None and event["alarm_s"] <= 3.0
                               and event["response_s"] <= 3.0
                               and event["takeover_motion_mm"] <= 1.0)
    assert sheet["passed"] == event["passed"]
    assert run.returncode == (0 if sheet["passed"] else 1), run.stderr


def test_a_bad_drill_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[events]]\nat_s = 1\nfault = "meteor"\n')
    run = subprocess.run([sys.executable, "-m", "telesurgery", "drill", str(bad)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0
    (line,) = run.stderr.strip().splitlines()
    assert "unknown fault 'meteor'; choose one of" in line
