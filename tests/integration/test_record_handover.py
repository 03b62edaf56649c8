"""A recorded demo with a bedside take-over: the handover in the signed audit trail, the
report, and a replay that follows the recorded ownership."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_record_demo import telesurgery

pytestmark = pytest.mark.integration

DEMO_S = 8.0
TAKEOVER_S = 3.0


def test_a_take_over_is_recorded_signed_reported_and_replayed(tmp_path: Path) -> None:
    record, summary = tmp_path / "session", tmp_path / "summary.json"
    done = telesurgery("demo", "--headless", "--no-video", "--duration", str(DEMO_S),
                       "--takeover-at", str(TAKEOVER_S), "--record", str(record),
                       "--workdir", str(tmp_path / "work"), "--summary", str(summary))
    assert done.returncode == 0, done.stderr[-3000:]
    sec = json.loads(summary.read_text())["security"]
    assert sec["owner"] == "backup:bedside-team"
    assert sec["handovers"] == 2

    verified = telesurgery("audit", "verify", str(record))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    [trail] = (record / "audit").glob("patient-*.jsonl")
    handovers = [r["data"] for r in map(json.loads, trail.read_text().splitlines())
                 if r["kind"] == "handover"]
    assert [(h["previous"], h["owner"], h["by"]) for h in handovers] == [
        (None, "surgeon:dr-rossi", "surgeon:dr-rossi"),
        ("surgeon:dr-rossi", "backup:bedside-team", "backup:bedside-team")]
    assert handovers[1]["reason"] == "bedside take-over"
    assert handovers[1]["previous_session"] == handovers[0]["session"]

    page = tmp_path / "report.html"
    reported = telesurgery("report", str(record), "--out", str(page))
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert "bedside take-over" in page.read_text()

    out = tmp_path / "replay.json"
    replayed = telesurgery("replay", str(record), "--json", str(out))
    result = json.loads(out.read_text())
    assert replayed.returncode == (0 if result["ok"] else 1), replayed.stdout
    # The replay follows the recorded owner: what the surgeon sent after the take-over is
    # refused again (``wrong_session``), and the arms track the recording throughout.
    assert set(result["rejected"]) <= {"wrong_session", "not_engaged", "not_aligned"}
    events, arms = result["safety_events"], result["arms"]
    degraded = (events["watchdog_recorded"] > events["watchdog_replayed"]
                or max(a["missing_commands"] for a in arms) > 0.01 * result["commands"])
    if not degraded:
        assert result["ok"], replayed.stdout
    else:
        # Loaded enough that the session held on late commands, or that the recorder lost
        # over 1 % of them (seen in CI: 1,470 of 26,494), the recording's timing is the
        # recorder's late clock and the replay cannot be judged to a quarter of a
        # millimetre; it must still follow the session closely and track its commands.
        for a in arms:
            assert a["judged_rms_mm"] < 0.5, replayed.stdout
            assert a["applied_match"] > 0.8, replayed.stdout
