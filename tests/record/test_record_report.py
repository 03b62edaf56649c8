"""The report on a recording without link, video or audit: what it computes and what it
says it lacks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from telesurgery.messages import MeasuredCP, Message, SafetyCause, SafetyEvent, ServoCP, Status
from telesurgery.record.analysis import completeness, latency_values, load_session, time_above
from telesurgery.record.mcap_writer import McapRecording
from telesurgery.record.report import render_report
from telesurgery.transport.codec import encode
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState

T0 = 5_000_000_000
MS = 1_000_000
LATENCY_NS = 2 * MS


@pytest.fixture
def plain_session(tmp_path: Path) -> Path:
    """Two seconds of one arm following: commands every ms (number 7 lost on the way to the
    recorder), state every 2 ms tracking the command sent 2 ms before, two transitions,
    patient status; no link, video or audit."""
    pose = Pose((0.0, 0.0, -0.13), (0.0, 0.7071, 0.7071, 0.0))
    with McapRecording(tmp_path / "recording.mcap", metadata={"session": "or1"}) as rec:
        def put(key: str, msg: Message, at: int) -> None:
            rec.write_wire(f"telesurgery/or1/{key}", encode(msg), at)

        put("safety/state", Message(2, 1, T0, SafetyEvent(
            SafetyState.HOLD, SafetyState.DISABLED, OperatingState.ENABLED, SafetyCause.ENABLED,
            "enabled")), T0)
        put("safety/state", Message(2, 2, T0 + MS, SafetyEvent(
            SafetyState.ENGAGED, SafetyState.HOLD, OperatingState.ENABLED,
            SafetyCause.ALIGNED_ENGAGE, "aligned", "psm1", ArmMode.ARMED,
            ArmMode.FOLLOWING)), T0 + MS)
        for i in range(1, 2001):
            t = T0 + i * MS
            if i != 7:
                put("psm1/servo_cp", Message(1, i, t, ServoCP("psm1", pose, t - 100)), t + 200)
            if i % 2 == 0:
                # Pressing at 10 N, over the 8 N cap, for the half second from 1 s on.
                force = (0.0, 6.0, 8.0) if 1000 <= i < 1500 else (0.0, 0.0, 2.0)
                put("psm1/measured_cp", Message(2, i // 2, t, MeasuredCP(
                    "psm1", pose, pose, 0.0, i - 2, t - LATENCY_NS,
                    OperatingState.ENABLED, ArmMode.FOLLOWING, force, 0.5)), t + 150)
            if i % 500 == 0:
                put("patient/status", Message(2, i // 500, t, Status({
                    "node": "patient", "safety": {"state": "ENGAGED", "accepted": i,
                                                  "force_cap_n": 8.0,
                                                  "latency_ms": {"p50": 0.3, "p99": 0.9}},
                    "task": {"name": "peg_transfer", "completed": 1, "on_target": 1}})), t)
    return tmp_path


def test_latency_and_completeness_come_from_the_recording(plain_session: Path) -> None:
    s = load_session(plain_session)
    assert s.session == "or1"
    values = latency_values(s)
    # Every state publication after the first tracks a new command, 2 ms after its sample.
    assert values.size == 999
    assert np.allclose(values, LATENCY_NS / MS)
    comp = completeness(s)
    assert comp["telesurgery/or1/psm1/servo_cp"] == (1999, 2000)
    assert comp["telesurgery/or1/psm1/measured_cp"] == (1000, 1000)
    assert len(s.safety) == 2
    assert s.trails == []
    assert s.force_cap_n == 8.0
    assert max(s.forces["psm1"].values) == pytest.approx(10.0)
    assert time_above(s.forces["psm1"], s.force_cap_n) == pytest.approx(0.5, abs=0.003)
    assert set(s.grips["psm1"].values) == {0.5}


def test_sections_without_data_say_so(plain_session: Path) -> None:
    page = render_report(load_session(plain_session))
    for plainly in ("No link statistics in this recording", "No link health data",
                    "No video in this recording", "No control owner announcement or handover",
                    "No audit trail beside this recording"):
        assert plainly in page
    # Latency (over time, histogram), safety, forces, task.
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 5
    assert "<td>psm1</td><td>10.0</td><td>0.50</td>" in page  # peak, time over the cap
    assert "99.95 %" in page  # servo_cp: 1999 of 2000 recorded
    # Transitions are shown from the event's fields: cause, arm and its modes.
    assert "<td>aligned_engage</td><td>psm1</td><td>armed -&gt; following</td>" in page
    assert "peg_transfer: 1 completed" in page
