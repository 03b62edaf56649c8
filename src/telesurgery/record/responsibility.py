"""Who was responsible: the responsibility timeline of a session, from its verified trail.

Japan's 2022 telesurgery guidelines ask that responsibility between the remote surgeon
and the team at the patient's side be allocated and recorded; this module reads that
allocation back out of the patient node's signed audit trails alone:

- **control**: who held control over each span (``handover`` records), with the
  licence in the certificate that agreed their command key (``key_agreed``);
- **bedside**: who led at the bedside (the newest ``backup`` certificate that agreed a
  key, with its licence);
- **events**: every handover, checklist confirmation and override, credential refusal,
  and adverse event (``hold``, ``estop``, ``fault``) with who held control when it
  happened.

Times are seconds from the first patient trail's ``session_start`` (wall clock, UTC).
:func:`load_timeline` refuses (``RecordingError``) a session whose trails do not verify:
an answer about responsibility is only as good as the trail it comes from.
:func:`check_timeline` is what ``audit verify`` adds: the chain of custody holds (each
handover's previous owner is the owner before it), every console that held control had
agreed a key, and no remote surgeon held control before a required checklist cleared.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from telesurgery.errors import RecordingError
from telesurgery.record.audit import AuditKind, AuditRecord, AuditVerifier, record_object
from telesurgery.record.layout import TRAIL_SUFFIX, audit_dir
from telesurgery.security.credential import CREDENTIAL_REFUSALS

NOBODY = "nobody"
"""Printed when nobody held control at the time asked (before the first claim)."""
ADVERSE = (AuditKind.HOLD, AuditKind.ESTOP, AuditKind.FAULT)


@dataclass(frozen=True, slots=True)
class Span:
    """Control held by ``owner`` from ``start_s`` to ``end_s`` [s from the start; None:
    to the end], with its ``licence`` (None: none) and the bedside lead then."""

    start_s: float
    end_s: float | None
    owner: str
    licence: Mapping[str, Any] | None
    bedside: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the timeline at ``at_s`` [s]: its ``kind`` (the record's), what
    happened in words, and who held control then."""

    at_s: float
    kind: str
    text: str
    owner: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """A session's responsibility timeline (see the module docstring)."""

    start_wall: str
    spans: tuple[Span, ...]
    events: tuple[Event, ...]
    checklist: Mapping[str, Any] | None
    """The checklist as it stood when it cleared (or last, if it never did)."""
    problems: tuple[str, ...] = ()

    def at(self, t_s: float) -> Span | None:
        """The span that holds ``t_s`` [s] (None: nobody held control yet)."""
        found = None
        for span in self.spans:
            if span.start_s <= t_s:
                found = span
        return found


@dataclass
class _State:
    owner: str = NOBODY
    bedside: str | None = None
    licences: dict[str, Any] = field(default_factory=dict)
    agreed: set[str] = field(default_factory=set)
    cleared: bool | None = None
    """None: no checklist required in this trail; else whether it has cleared."""


def _seconds(wall: str, start: datetime) -> float:
    # Not rounded: records a few microseconds apart must keep their order for ``at``.
    return (datetime.fromisoformat(wall) - start).total_seconds()


def _describe(rec: AuditRecord) -> str | None:
    d = rec.data
    kind = rec.kind
    if kind == AuditKind.HANDOVER:
        return f"{d.get('previous') or NOBODY} -> {d.get('owner')} ({d.get('reason')})"
    if kind == AuditKind.CHECKLIST_OVERRIDE:
        return f"checklist item {d.get('item')} overridden: {d.get('reason')}"
    if kind == AuditKind.REPLAY:
        by = f" by {d['by']}" if d.get("by") else ""
        return f"replay of {d.get('name')}'s outage motion {d.get('outcome')}{by}"
    if kind == AuditKind.KEY_REFUSED and d.get("reason") in CREDENTIAL_REFUSALS:
        return f"{d.get('name')} refused: {d.get('reason')}"
    if kind in ADVERSE:
        return str(d.get("reason", kind))
    return None


def build_timeline(trails: Sequence[Sequence[AuditRecord]]) -> Timeline:
    """The timeline of the patient trails ``trails`` (each a list of verified records, in
    order); times from the first trail's ``session_start``."""
    trails = sorted((t for t in trails if t), key=lambda t: t[0].wall)
    if not trails:
        raise RecordingError("no patient audit trail to build a timeline from; record the "
                             "session with --record")
    start = datetime.fromisoformat(trails[0][0].wall)
    spans: list[Span] = []
    events: list[Event] = []
    problems: list[str] = []
    checklist: Mapping[str, Any] | None = None
    for records in trails:
        # A restarted patient node opens ownership afresh.
        s = _State()
        for rec in records:
            t = _seconds(rec.wall, start)
            d = rec.data
            if rec.kind == AuditKind.KEY_AGREED:
                name = str(d.get("name"))
                s.agreed.add(name)
                s.licences[name] = d.get("licence")
                if name.startswith("backup:"):
                    s.bedside = name
            elif rec.kind == AuditKind.CHECKLIST:
                cleared = bool(d.get("latched"))
                if s.cleared is not True and (checklist is None or cleared):
                    checklist = dict(d)
                if cleared and s.cleared is not True:
                    events.append(Event(t, rec.kind, "checklist cleared, confirmed by "
                                        f"{d.get('confirmed_by')}", s.owner))
                s.cleared = cleared
            elif rec.kind == AuditKind.HANDOVER:
                previous = d.get("previous") or NOBODY
                owner = str(d.get("owner"))
                if previous != s.owner:
                    problems.append(f"t={t:.3f} s: handover from {previous} but {s.owner} held "
                                    "control: the chain of custody is broken")
                # A trail with no key agreed ran insecure: consoles had no certificates.
                if s.agreed and owner.startswith(("surgeon:", "backup:")) \
                        and owner not in s.agreed:
                    problems.append(f"t={t:.3f} s: {owner} took control without a command key "
                                    "agreed in this trail")
                if owner.startswith("surgeon:") and s.cleared is False:
                    problems.append(f"t={t:.3f} s: {owner} took control before the pre-flight "
                                    "checklist cleared")
                if spans and spans[-1].end_s is None:
                    last = spans[-1]
                    spans[-1] = Span(last.start_s, t, last.owner, last.licence, last.bedside)
                spans.append(Span(t, None, owner, s.licences.get(owner), s.bedside))
                s.owner = owner
            text = _describe(rec)
            if text is not None:
                events.append(Event(t, rec.kind, text, s.owner))
        if spans and spans[-1].end_s is None and records:
            last = spans[-1]
            spans[-1] = Span(last.start_s, _seconds(records[-1].wall, start), last.owner,
                             last.licence, last.bedside)
    # The last span stays open: control stays with its owner to the trail's end.
    if spans:
        last = spans[-1]
        spans[-1] = Span(last.start_s, None, last.owner, last.licence, last.bedside)
    return Timeline(trails[0][0].wall, tuple(spans), tuple(events), checklist,
                    tuple(problems))


def _patient_trails(session_dir: Path) -> list[Path]:
    folder = audit_dir(session_dir)
    if not folder.is_dir():
        folder = session_dir
    return sorted(folder.glob("patient-*" + TRAIL_SUFFIX))


def load_timeline(session_dir: Path, trusted: Collection[str] = ()) -> Timeline:
    """The timeline of ``session_dir``'s patient trails, once every trail of the session
    verifies (``trusted``: fingerprints, see ``AuditVerifier``); ``RecordingError`` naming
    the first problem otherwise. A trail without ``session_stop`` (a node killed) is read
    up to its last record."""
    reports = AuditVerifier(trusted, allow_open=True).verify_dir(session_dir)
    bad = [(r, f) for r in reports for f in r.findings]
    if bad:
        report, finding = bad[0]
        raise RecordingError(f"the audit trail {report.trail.name} does not verify ({finding}"
                             f"{f'; {len(bad) - 1} more' if len(bad) > 1 else ''}); no "
                             "answer from a trail that was altered: run 'telesurgery audit "
                             "verify' for every problem")
    trails = []
    for path in _patient_trails(session_dir):
        records = []
        for line in path.read_bytes().splitlines():
            obj = record_object(line)
            if obj is not None:
                records.append(AuditRecord.from_json(obj))
        trails.append(records)
    return build_timeline(trails)


def check_timeline(timeline: Timeline) -> list[str]:
    """What ``audit verify`` reports about responsibility (empty: nothing wrong)."""
    return list(timeline.problems)


def answer(timeline: Timeline, t_s: float) -> list[str]:
    """``audit who``'s lines for ``t_s`` [s from the start]: the responsible console's
    certificate name first (``nobody`` before the first claim), then its licence, the
    bedside lead and since when."""
    span = timeline.at(t_s)
    if span is None:
        return [NOBODY, f"nobody held control yet at {t_s:g} s (session started "
                        f"{timeline.start_wall})"]
    lic = span.licence
    licence = ("no licence in its certificate" if not lic else
               f"licence {lic.get('number')} of {lic.get('authority')} "
               f"({lic.get('jurisdiction')}, {lic.get('specialty')}, valid until "
               f"{lic.get('valid_until')})")
    return [span.owner, licence, f"bedside lead: {span.bedside or 'none identified'}",
            f"in control since {span.start_s:.3f} s"
            + ("" if span.end_s is None else f" until {span.end_s:.3f} s")]


__all__ = ["ADVERSE", "NOBODY", "Event", "Span", "Timeline", "answer", "build_timeline",
           "check_timeline", "load_timeline"]
