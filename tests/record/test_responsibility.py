"""Who was responsible (issue 19): the timeline from a signed trail, ``audit who``, and its
refusal to answer from an altered trail.

The trail is written by the real ``AuditWriter`` with the records the patient node
writes (``key_agreed`` with the licence, ``checklist``, ``handover``, ``hold``); times
asked are taken between the records' own times, so no test waits on a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from telesurgery.errors import RecordingError
from telesurgery.record.audit import AuditKind, AuditWriter
from telesurgery.record.responsibility import NOBODY, answer, check_timeline, load_timeline

SURGEON = "surgeon:dr-rossi"
BEDSIDE = "backup:bedside-team"
LICENCE = {"number": "RM-12345", "authority": "FNOMCeO", "jurisdiction": "IT",
           "specialty": "urology", "valid_until": "2099-06-30"}


def _write(session: Path, *, surgeon_before_checklist: bool = False) -> None:
    with AuditWriter(session, "patient", "or1") as w:
        w.append(AuditKind.KEY_AGREED, {"session": "01", "name": BEDSIDE, "reason": None,
                                        "licence": None})
        w.append(AuditKind.KEY_AGREED, {"session": "02", "name": SURGEON, "reason": None,
                                        "licence": LICENCE})
        w.append(AuditKind.CHECKLIST, {"items": [], "confirmed_by": "sister-chen",
                                       "cleared": False, "latched": False})
        if not surgeon_before_checklist:
            w.append(AuditKind.CHECKLIST, {"items": [], "confirmed_by": "sister-chen",
                                           "cleared": True, "latched": True})
        w.append(AuditKind.HANDOVER, {"owner": SURGEON, "previous": None, "by": SURGEON,
                                      "reason": "first command"})
        w.append(AuditKind.HOLD, {"reason": "psm1 following -> held: watchdog"})
        w.append(AuditKind.HANDOVER, {"owner": BEDSIDE, "previous": SURGEON, "by": BEDSIDE,
                                      "reason": "bedside take-over"})


def _times(session: Path) -> dict[str, float]:
    """Seconds from session_start of the first record of each kind (owner for handovers)."""
    trail = next((session / "audit").glob("patient-*.audit.jsonl"))
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    start = datetime.fromisoformat(records[0]["time"]["wall"])
    out: dict[str, float] = {}
    for r in records:
        key = r["data"].get("owner", r["kind"]) if r["kind"] == "handover" else r["kind"]
        out.setdefault(key, (datetime.fromisoformat(r["time"]["wall"]) - start)
                       .total_seconds())
    return out


def _who(session: Path, at: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", "audit", "who", str(session),
                           "--at", f"{at:.6f}"], capture_output=True, text=True, timeout=120,
                          check=False)


def test_audit_who_names_the_surgeon_before_and_the_bedside_after_a_take_over(
        tmp_path: Path) -> None:
    _write(tmp_path)
    t = _times(tmp_path)
    before = _who(tmp_path, (t[SURGEON] + t[BEDSIDE]) / 2)
    assert before.returncode == 0, before.stderr
    lines = before.stdout.splitlines()
    assert lines[0] == SURGEON
    assert "RM-12345 of FNOMCeO (IT" in lines[1]
    assert lines[2] == f"bedside lead: {BEDSIDE}"
    after = _who(tmp_path, t[BEDSIDE] + 3600.0)
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[0] == BEDSIDE
    timeline = load_timeline(tmp_path)
    assert answer(timeline, 0.0)[0] == NOBODY
    assert check_timeline(timeline) == []
    hold = next(e for e in timeline.events if e.kind == "hold")
    assert hold.owner == SURGEON
    assert [e.kind for e in timeline.events] == ["checklist", "handover", "hold", "handover"]


def test_audit_who_refuses_an_altered_trail_in_one_line(tmp_path: Path) -> None:
    _write(tmp_path)
    trail = next((tmp_path / "audit").glob("patient-*.audit.jsonl"))
    trail.write_text(trail.read_text().replace(f'"owner":"{BEDSIDE}"',
                                               f'"owner":"{SURGEON}"'))
    proc = _who(tmp_path, 1e6)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "does not verify" in proc.stderr
    with pytest.raises(RecordingError, match="does not verify"):
        load_timeline(tmp_path)


def test_audit_verify_flags_a_surgeon_in_control_before_the_checklist_cleared(
        tmp_path: Path) -> None:
    _write(tmp_path, surgeon_before_checklist=True)
    problems = check_timeline(load_timeline(tmp_path))
    assert len(problems) == 1
    assert "before the pre-flight checklist cleared" in problems[0]
    proc = subprocess.run([sys.executable, "-m", "telesurgery", "audit", "verify",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 1
    assert "FAIL responsibility" in proc.stdout


def test_a_bad_time_is_one_line(tmp_path: Path) -> None:
    _write(tmp_path)
    proc = _who(tmp_path, -1.0)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "--at" in proc.stderr
