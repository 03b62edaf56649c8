"""The demo's own checklist, the owner's credential and ``audit who`` on a real session
(issue 19): the whole demo with the bedside console, a take-over drill and a recording.

The demo passes its checklist by itself: the bedside console, the credential and the
recording are GO for real, only what a demo cannot meet is overridden with a reason;
``audit who`` names the surgeon between its claim and the take-over and the bedside
after it, from the verified trail.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from telesurgery.demo.run import DemoOptions, run_demo
from telesurgery.record.responsibility import load_timeline
from telesurgery.security.node import DEMO_AUTHORITY, DEMO_JURISDICTION

SURGEON = "surgeon:dr-rossi"
BEDSIDE = "backup:bedside-team"


def _who(session: Path, at: float) -> str:
    proc = subprocess.run([sys.executable, "-m", "telesurgery", "audit", "who", str(session),
                           "--at", f"{at:.6f}"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[0]


def test_the_demo_passes_its_checklist_and_audit_who_follows_the_take_over(
        tmp_path: Path) -> None:
    session = tmp_path / "session"
    summary: dict[str, Any] = run_demo(
        DemoOptions(duration_s=8.0, workdir=tmp_path / "work", video=False, backup=True,
                    takeover_at_s=4.0, record=session), threading.Event())
    sec = summary["security"]
    checklist = sec["checklist"]
    assert checklist["required"] is True
    assert checklist["cleared"] is True
    assert checklist["confirmed_by"] == "demo"
    states = {i["item"]: i["state"] for i in checklist["items"]}
    assert states == {"link": "overridden", "bedside": "go", "credential": "go",
                      "recording": "go", "video": "overridden"}
    assert all(i["reason"] for i in checklist["items"] if i["state"] == "overridden")
    assert sec["owner"] == BEDSIDE
    assert sec["credential"]["authority"] == DEMO_AUTHORITY
    assert sec["credential"]["jurisdiction"] == DEMO_JURISDICTION

    timeline = load_timeline(session)
    assert [s.owner for s in timeline.spans] == [SURGEON, BEDSIDE]
    claim, take_over = timeline.spans[0].start_s, timeline.spans[1].start_s
    assert _who(session, claim / 2) == "nobody"
    assert _who(session, (claim + take_over) / 2) == SURGEON
    assert _who(session, take_over + 1.0) == BEDSIDE
    cleared = next(e for e in timeline.events if e.kind == "checklist")
    assert cleared.at_s <= claim
    proc = subprocess.run([sys.executable, "-m", "telesurgery", "audit", "verify",
                           str(session)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
