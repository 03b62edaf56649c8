"""The patient node's audit trail: safety transitions, rejection summaries, link alarms, owner.

Nothing here runs on the servo thread. The node's housekeeping thread, which
already drains the supervisor's event queue, hands each ``SafetyEvent`` to
``safety_event`` and calls ``poll`` about every 50 ms; the path watch calls
``link_alarm`` from its own thread. ``AuditWriter`` chains and signs at once
and writes on its own thread, so each call costs tens of microseconds.

How a supervisor transition becomes a record kind, from the event's fields (never its
words)::

    state ESTOP                       estop
    state DISABLED                    disable
    cause ENABLED                     enable
    robot FAULT (operating state)     fault
    cause force_limit, force_cleared,
          grip_limit, grip_cleared    force_limit
    arm's mode_after held             hold      (watchdog, new session, hold(), handover)
    arm's mode_after armed / clutched clutch
    arm's mode_after following        engage

A record's ``data`` keeps the supervisor's state, previous state, the robot's
operating state, the ``cause`` (``SafetyCause``, lower case) and the reason in words
(``SafetyEvent.text``), and for an arm's transition the arm and its modes
(``mode_from``, ``mode_to``). Rejected commands are too many to record one by one: every
``SUMMARY_PERIOD_S`` (and at stop) the counts by reason are recorded when they
changed since the last summary. Control ownership writes ``handover`` (each change of
owner, both identities and who asked) and ``handover_request`` (a request now waiting
for the bedside, or an action the rules refused). Command authentication writes
``key_agreed`` (a console session bound to a certificate, with the licence it carries)
and ``key_refused`` (a key offer refused, once per console session and reason: the
credential policy's refusals among them). The pre-flight checklist writes ``checklist``
(its items and states, at each change) and ``checklist_override`` (an item the bedside
overrode, with the reason).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from telesurgery.errors import RecordingError
from telesurgery.messages import JawServoJP, SafetyCause, SafetyEvent, ServoCP
from telesurgery.record.audit import AuditKind, AuditWriter
from telesurgery.safety.ownership import Handover, Party
from telesurgery.security.command_keys import KeyEvent
from telesurgery.transport.pathwatch import Alarm
from telesurgery.types import ArmMode, OperatingState, SafetyState

log = logging.getLogger(__name__)

NODE: Final = "patient"
SUMMARY_PERIOD_S: Final = 10.0
"""How often [s] changed rejection counts are summarised in the trail."""

_CAP_CAUSES = (SafetyCause.FORCE_LIMIT, SafetyCause.FORCE_CLEARED, SafetyCause.GRIP_LIMIT,
               SafetyCause.GRIP_CLEARED)
_KIND_OF_MODE = {ArmMode.HELD: AuditKind.HOLD, ArmMode.ARMED: AuditKind.CLUTCH,
                 ArmMode.CLUTCHED: AuditKind.CLUTCH, ArmMode.FOLLOWING: AuditKind.ENGAGE}


def classify(ev: SafetyEvent) -> tuple[AuditKind, dict[str, Any]]:
    """The record kind of a supervisor transition and its data (see the module docstring)."""
    data: dict[str, Any] = {"state": ev.state.name, "previous": ev.previous.name,
                            "operating_state": ev.operating_state.name,
                            "cause": ev.cause.label, "reason": ev.text()}
    if ev.arm is not None and ev.mode_before is not None and ev.mode_after is not None:
        data.update(arm=ev.arm, mode_from=ev.mode_before.label, mode_to=ev.mode_after.label)
    if ev.state is SafetyState.ESTOP:
        return AuditKind.ESTOP, data
    if ev.state is SafetyState.DISABLED:
        return AuditKind.DISABLE, data
    if ev.cause is SafetyCause.ENABLED:
        return AuditKind.ENABLE, data
    if ev.operating_state is OperatingState.FAULT:
        return AuditKind.FAULT, data
    if ev.cause in _CAP_CAUSES:
        return AuditKind.FORCE_LIMIT, data
    if ev.mode_after is not None:
        return _KIND_OF_MODE[ev.mode_after], data
    return (AuditKind.ENGAGE if ev.state is SafetyState.ENGAGED else AuditKind.HOLD), data


class PatientAudit:
    """One patient node run's signed trail in ``<record_dir>/audit``.

    A write failure (disk full) never stops the robot nor blocks a caller: the
    writer keeps the records in memory, tries again and, once the disk has room,
    writes them with an ``audit_interrupted`` record (see ``AuditWriter``). ``lost``
    counts the records that could not be kept (over the writer's bound, or after
    the trail ended).
    """

    def __init__(self, record_dir: Path, session: str, start_data: Mapping[str, Any],
                 summary_period_s: float = SUMMARY_PERIOD_S) -> None:
        self._writer: AuditWriter | None = AuditWriter(record_dir, NODE, session,
                                                       start_data=start_data)
        self.fingerprint = self._writer.fingerprint
        self.path = self._writer.path
        self._lost = 0
        self._period_s = summary_period_s
        self._next_summary = time.monotonic() + summary_period_s
        self._summarised: dict[str, int] = {}
        self._summarised_at = time.monotonic()
        # Printed, not logged: the fingerprint is what an operator copies out of band to
        # check the trail later (``audit verify --trust``), whatever the log level.
        print(f"audit trail {self.path} signed by {self.fingerprint}", file=sys.stderr,
              flush=True)

    @property
    def lost(self) -> int:
        """Records that are not in the trail (see the class docstring)."""
        return self._lost + (self._writer.lost if self._writer is not None else 0)

    def _append(self, kind: AuditKind, data: Mapping[str, Any]) -> None:
        if self._writer is None:
            self._lost += 1
            return
        try:
            self._writer.append(kind, data)
        except RecordingError as exc:
            log.error("audit trail stopped, further records are lost: %s", exc)
            self._lost += 1 + self._writer.lost
            self._writer = None

    def safety_event(self, ev: SafetyEvent) -> None:
        """Record one supervisor transition (housekeeping thread)."""
        kind, data = classify(ev)
        self._append(kind, data)

    def link_alarm(self, alarm: Alarm) -> None:
        """Record a control path lost or back (the path watch's thread)."""
        self._append(AuditKind.LINK_ALARM, alarm.as_dict())

    def handover(self, h: Handover) -> None:
        """Record a change of control owner, with both identities and who asked."""
        self._append(AuditKind.HANDOVER, h.as_dict())

    def handover_request(self, who: Party, action: str, outcome: str) -> None:
        """Record a control request, take-over or grant that changed no owner: a request
        now waiting, or an action the rules refused (``outcome`` says which)."""
        self._append(AuditKind.HANDOVER_REQUEST, {**who.as_dict(), "action": action,
                                                  "outcome": outcome})

    def replay(self, who: Party, outcome: str, by: Party | None = None) -> None:
        """Record a replay of ``who``'s outage motion offered, allowed (``by`` the bedside)
        or ended (``outcome`` says which and why)."""
        self._append(AuditKind.REPLAY, {**who.as_dict(), "outcome": outcome,
                                        "by": None if by is None else by.name})

    def replayed_command(self, who: Party, seq: int, body: ServoCP | JawServoJP) -> None:
        """Record one command of ``who``'s allowed replay that the supervisor accepted: its
        sequence number and target (tip pose [m, quaternion] or jaw [rad])."""
        target: dict[str, Any] = ({"position": list(body.pose.position),
                                   "orientation": list(body.pose.orientation),
                                   "clutch": body.clutch} if isinstance(body, ServoCP)
                                  else {"jaw": body.angle})
        self._append(AuditKind.REPLAYED_COMMAND, {"console": who.name, "seq": seq,
                                                  "arm": body.arm, **target})

    def key_event(self, ev: KeyEvent) -> None:
        """Record a command key agreed or a key offer refused (a Zenoh thread)."""
        self._append(AuditKind.KEY_AGREED if ev.reason is None else AuditKind.KEY_REFUSED,
                     ev.as_dict())

    def checklist(self, data: Mapping[str, Any]) -> None:
        """Record the pre-flight checklist as it now stands (``Checklist.as_dict``)."""
        self._append(AuditKind.CHECKLIST, data)

    def checklist_override(self, item: str, reason: str, by: str | None) -> None:
        """Record a failed checklist ``item`` overridden by the bedside (``by``: who
        confirmed the list, None: not yet) with its written ``reason``."""
        self._append(AuditKind.CHECKLIST_OVERRIDE, {"item": item, "reason": reason, "by": by})

    def broadcast(self, data: Mapping[str, Any]) -> None:
        """Record an observer gateway's broadcast starting or stopping as it announced it
        (``gateway``, ``broadcast``, ``by``: who allowed or stopped it); an announcement
        missing one of them is recorded as received, marked ``malformed``."""
        fields = {k: data.get(k) for k in ("gateway", "broadcast", "by")}
        well_formed = (isinstance(fields["gateway"], str) and isinstance(fields["by"], str)
                       and isinstance(fields["broadcast"], bool))
        self._append(AuditKind.BROADCAST, fields if well_formed else {**fields,
                                                                     "malformed": True})

    def poll(self, rejections: Mapping[str, int], now_s: float | None = None) -> None:
        """Summarise the rejections (counts by reason name, every layer's) if
        ``SUMMARY_PERIOD_S`` [s] passed and they changed (housekeeping thread; ``now_s``
        [s, time.monotonic])."""
        now = time.monotonic() if now_s is None else now_s
        if now < self._next_summary:
            return
        self._next_summary = now + self._period_s
        self._summarise(rejections, now)

    def _summarise(self, rejections: Mapping[str, int], now: float) -> None:
        counts = {r: n for r, n in rejections.items() if n}
        if counts == self._summarised:
            return
        new = {r: n - self._summarised.get(r, 0) for r, n in counts.items()
               if n != self._summarised.get(r, 0)}
        self._append(AuditKind.SAFETY_REJECTIONS_SUMMARY, {
            "period_s": round(now - self._summarised_at, 3), "new": new, "total": counts})
        self._summarised, self._summarised_at = counts, now

    def close(self, rejections: Mapping[str, int], final: Mapping[str, Any]) -> None:
        """Last summary, then ``session_stop`` with the node's ``final`` figures."""
        self._summarise(rejections, time.monotonic())
        if self._writer is None:
            return
        try:
            self._writer.close({**final, "lost_records": self.lost})
        except RecordingError as exc:
            log.error("audit trail not closed: %s", exc)
        self._lost += self._writer.lost
        self._writer = None


__all__ = ["NODE", "SUMMARY_PERIOD_S", "PatientAudit", "classify"]
