"""The patient's audit trail: the real supervisor's transitions become the right record
kinds, rejections are summarised only when they change, and the trail verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telesurgery.clock import now_ns
from telesurgery.config import SafetyConfig
from telesurgery.messages import Message, SafetyEvent, ServoCP
from telesurgery.patient.audit import PatientAudit, classify
from telesurgery.record.audit import AuditKind, AuditVerifier
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.safety.checks import Reason
from telesurgery.safety.ownership import Handover, Party, Role
from telesurgery.safety.supervisor import Supervisor
from telesurgery.transport.pathwatch import Alarm


@pytest.fixture(scope="module")
def events() -> list[SafetyEvent]:
    """The transitions of a real supervisor over a real robot through one whole cycle:
    enable, clutch, engage, clutch, hold, e-stop, disable."""
    robot = SimRobot()
    robot.enable()
    out: list[SafetyEvent] = []
    sup = Supervisor(robot, SafetyConfig(), out.append, arms=["psm1"])
    sup.enable()
    pose = robot.arms["psm1"].setpoint_cp()
    seq = 0

    def send(clutch: bool) -> None:
        nonlocal seq
        seq += 1
        t = now_ns()
        sup.submit(Message(7, seq, t, ServoCP("psm1", pose, t, clutch)), t)
        sup.tick(now_ns())
        robot.step(0.001)

    send(clutch=True)  # held -> armed
    send(clutch=False)  # armed -> following
    send(clutch=True)  # following -> clutched
    sup.hold("operator hold")
    sup.estop("e-stop pressed")
    sup.disable()
    robot.close()
    return out


def test_each_supervisor_transition_gets_its_kind(events: list[SafetyEvent]) -> None:
    kinds = [classify(ev)[0] for ev in events]
    assert kinds == [AuditKind.ENABLE, AuditKind.CLUTCH, AuditKind.ENGAGE, AuditKind.CLUTCH,
                     AuditKind.HOLD, AuditKind.ESTOP, AuditKind.DISABLE]
    assert [classify(ev)[1]["cause"] for ev in events] == [
        "enabled", "clutch_pressed", "aligned_engage", "clutch_pressed", "hold_requested",
        "estop", "disabled"]
    _, engage = classify(events[2])
    assert engage["reason"].startswith("psm1 armed -> following: clutch released")
    assert engage["arm"] == "psm1"
    assert (engage["mode_from"], engage["mode_to"]) == ("armed", "following")
    assert engage["state"] == "ENGAGED"
    assert engage["previous"] == "HOLD"
    _, estop = classify(events[5])
    assert estop["reason"] == "e-stop pressed"
    assert "arm" not in estop


def test_the_trail_records_the_session_and_verifies(events: list[SafetyEvent], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    audit = PatientAudit(tmp_path, "or1", {"session_id": "00000000000000aa"},
                         summary_period_s=10.0)
    assert audit.fingerprint in capsys.readouterr().err
    for ev in events[:3]:
        audit.safety_event(ev)
    t0 = 1000.0
    stale = {Reason.STALE.value: 3, Reason.NOT_ALIGNED.value: 0}
    audit.poll(stale, now_s=t0)  # before the first period: nothing yet
    audit.poll(stale, now_s=t0 + 1e6)  # a period later, counts changed: one summary
    audit.poll(stale, now_s=t0 + 2e6)  # unchanged: nothing
    audit.link_alarm(Alarm("fibre", False, "silent for 0.30 s", 1, 123))
    surgeon = Party(Role.SURGEON, "surgeon:dr-rossi", 0xBEEF)
    backup = Party(Role.BACKUP, "backup:bedside-team", 0xBAC)
    audit.handover_request(surgeon, "request", "waiting for the bedside")
    audit.handover(Handover(backup, surgeon, backup, "granted by backup:bedside-team", 7))
    audit.close({Reason.STALE.value: 5}, {"final_state": "ENGAGED"})

    [report] = AuditVerifier([audit.fingerprint]).verify_dir(tmp_path)
    assert report.ok, report.findings
    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [r["kind"] for r in records] == [
        "session_start", "enable", "clutch", "engage", "safety_rejections_summary",
        "link_alarm", "handover_request", "handover", "safety_rejections_summary",
        "session_stop"]
    first, last = records[4]["data"], records[8]["data"]
    assert first["new"] == {"stale": 3}
    assert first["total"] == {"stale": 3}
    assert last["new"] == {"stale": 2}
    assert last["total"] == {"stale": 5}
    assert records[5]["data"]["state"] == "DOWN"
    assert records[5]["data"]["path"] == "fibre"
    assert records[6]["data"]["session"] == "000000000000beef"
    assert records[7]["data"]["session"] == "000000000000beef"
    assert records[7]["data"]["owner"] == "surgeon:dr-rossi"
    assert records[7]["data"]["previous"] == "backup:bedside-team"
    assert records[-1]["data"]["final_state"] == "ENGAGED"
    assert records[-1]["data"]["lost_records"] == 0


def test_unchanged_rejections_are_not_summarised_at_stop(tmp_path: Path) -> None:
    audit = PatientAudit(tmp_path, "or1", {})
    audit.close({Reason.STALE.value: 0}, {})
    kinds = [json.loads(line)["kind"] for line in audit.path.read_text().splitlines()]
    assert kinds == ["session_start", "session_stop"]
