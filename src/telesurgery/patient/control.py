"""Control ownership on the patient node: who each console is, their requests, handovers out.

The safety supervisor asks :meth:`PatientControl.admits` about every command (its narrow
``safety.supervisor.Admits``, under the supervisor's lock); that names the console
session (the certificate common name behind its command key when security is on; the
role it claims, and its session id, when it is off) and asks the
:class:`~telesurgery.safety.ownership.Ownership` rules. Control requests, take-overs and
grants (``ControlRequest``) arrive on ``control/request`` and ``control/grant``, through
the same tag gate as commands; Zenoh's access control lets only the ``backup`` role
publish on ``control/grant``, and this module checks the role again from the certificate.

A take-over or grant holds the previous owner's engaged arms at once, on the Zenoh thread
that brought it. The housekeeping thread calls :meth:`PatientControl.poll` about every
50 ms: it hands control to the bedside when the owner has been silent for
``owner_lost_ms``, announces the owner on ``control/owner`` after every change and every
``ANNOUNCE_PERIOD_S``, and writes each handover to the audit trail.

Neither side holds the other: the supervisor knows only the ``admits`` callable, and this
module only :class:`HoldsArms`, the two supervisor methods it calls. Those calls come from
Zenoh's thread (a take-over or grant) and the housekeeping thread (owner lost), never
from inside ``admits``: ``admits`` runs under the supervisor's lock, and calling back
into the supervisor from there would deadlock. ``admits`` itself takes only locks that
are never held while the supervisor is called (this module's, ``Ownership``'s, the tag
verifier's), so the two cannot wait on each other.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol

import zenoh

from telesurgery.clock import now_ns
from telesurgery.errors import OwnershipError
from telesurgery.messages import ControlAction, ControlRequest, Message, Status
from telesurgery.patient.audit import PatientAudit
from telesurgery.patient.checklist import PatientChecklist
from telesurgery.safety.ownership import Handover, Ownership, Party, Role, name_of
from telesurgery.security.command_keys import PatientKeys
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, subscribe

log = logging.getLogger(__name__)

ANNOUNCE_PERIOD_S: Final = 0.5
"""How often [s] the owner is announced when nothing changes (for consoles that join)."""
MAX_PARTIES: Final = 64
"""Console sessions remembered; more (sessions come and go) starts the cache afresh."""


class HoldsArms(Protocol):
    """What control ownership asks of the safety supervisor (``Supervisor`` has both)."""

    def hold_others(self, session: int | None, reason: str) -> None:
        """Hold the arms engaged by any console but ``session`` (None: every console)."""
        ...

    def last_valid_ns(self, session: int) -> int | None:
        """When [ns] console ``session`` last sent a valid command (None: not the last
        console to send one)."""
        ...


class PatientControl:
    """The patient node's end of control ownership (thread-safe).

    ``owner_lost_ms`` [ms]: an owner silent this long loses control to the bedside.
    """

    def __init__(self, owner_lost_ms: float) -> None:
        self._handovers: queue.SimpleQueue[Handover] = queue.SimpleQueue()
        self.ownership = Ownership(self._handovers.put, now_ns)
        self._lost_ns = round(owner_lost_ms * 1e6)
        self._lock = threading.Lock()
        self._parties: dict[int, Party] = {}
        self._claimed: dict[int, Role] = {}
        """Roles consoles claimed in their requests (trusted only when security is off)."""
        self.refused: Counter[str] = Counter()
        """Control actions refused, by reason."""
        self.rejects = RejectCounter()
        self._last: Handover | None = None
        self._next_announce = 0
        self._changed = False
        self._arms: HoldsArms | None = None
        self._auth: PatientKeys | None = None
        self._audit: PatientAudit | None = None
        self._owner_pub: Publisher | None = None
        self._subs: list[zenoh.Subscriber[None]] = []
        self._checklist: PatientChecklist | None = None
        self._replay: Party | None = None
        """The owner that offered its outage motion for replay (``ControlAction.REPLAY``)."""
        self._replay_by: Party | None = None
        """The bedside console that allowed it (None: not allowed yet)."""

    def start(self, z: zenoh.Session, keys: Keys, session_id: int, arms: HoldsArms,
              auth: PatientKeys | None, audit: PatientAudit | None,
              checklist: PatientChecklist | None = None) -> None:
        """Listen for control actions; ``arms``: the safety supervisor, whose arms a change
        of owner holds; ``auth`` (None: insecure) gates actions like commands;
        ``checklist``: the pre-flight checklist, which must be cleared before a surgeon
        console holds control, and which the bedside confirms on ``control/grant``
        (None: no checklist)."""
        self._arms, self._auth, self._audit = arms, auth, audit
        self._checklist = checklist
        self._owner_pub = Publisher(z, keys.control_owner, Stream.EVENT, session_id)
        gate: Callable[[bytes, Message], bool] | None = None
        if auth is not None:
            def gate(data: bytes, msg: Message) -> bool:
                return auth.gate("main", data, msg)
        self._subs = [subscribe(z, key, self._on_action, self.rejects, gate)
                      for key in (keys.control_request, keys.control_grant)]

    def close(self) -> None:
        """Stop listening (idempotent)."""
        for s in self._subs:
            s.undeclare()
        self._subs.clear()

    # ---- who is who ---------------------------------------------------------------

    def party(self, session: int) -> Party | None:
        """Console ``session`` as ownership knows it (None: not a surgeon or backup).

        With security on, named on every call from the certificate its session is bound
        to now (``PatientKeys``): a cached name never outlives the key behind it."""
        bound = None if self._auth is None else self._auth.common_name(session)
        if self._auth is not None and bound is None:
            return None
        with self._lock:
            known = self._parties.get(session)
            if known is not None and (bound is None or known.name == bound):
                return known
            if bound is not None:
                try:
                    role = Role(bound.split(":", 1)[0])
                except ValueError:
                    return None
                name = bound
            else:
                role = self._claimed.get(session, Role.SURGEON)
                name = f"{role.value}:{session:016x}"
            if len(self._parties) >= MAX_PARTIES:
                self._parties.clear()
            p = self._parties[session] = Party(role, name, session)
            return p

    def _cleared(self) -> bool:
        return self._checklist is None or self._checklist.cleared

    def admits(self, session: int) -> bool:
        """Whether console ``session`` holds control (claiming it where the rules let it):
        the supervisor's ``Admits``, called under its lock, so it never calls the
        supervisor (a claim only queues its handover for :meth:`poll`). A surgeon console
        is refused (counted as ``checklist``) until the pre-flight checklist is cleared."""
        who = self.party(session)
        if who is not None and who.role is Role.SURGEON and not self._cleared():
            with self._lock:
                self.refused["checklist"] += 1
                first = self.refused["checklist"] == 1
            if first:
                log.warning("%s may not drive: the pre-flight checklist is not cleared; "
                            "further commands are counted", who.name)
            return False
        return self.ownership.admits(who)

    # ---- actions (Zenoh's thread) -----------------------------------------------------

    def _on_action(self, msg: Message, _received_ns: int) -> None:
        body = msg.body
        checklist = self._checklist
        if isinstance(body, Status) and checklist is not None:
            self._on_checklist(checklist, msg.session, body)
            return
        if not isinstance(body, ControlRequest):
            self._refuse(None, "?", "malformed", f"a {body.TYPE.name} on a control key")
            return
        action = body.action.name.lower()
        try:
            claimed = Role(body.role)
        except ValueError:
            self._refuse(None, action, "bad_role", f"role {body.role!r} cannot hold control")
            return
        if self._auth is None:
            with self._lock:
                if self._claimed.get(msg.session) is not claimed:
                    self._claimed[msg.session] = claimed
                    self._parties.pop(msg.session, None)
        who = self.party(msg.session)
        if who is None:
            self._refuse(None, action, "not_a_console", f"session {msg.session:016x} "
                         "holds no surgeon or backup certificate")
            return
        if who.role is not claimed:
            self._refuse(who, action, "role_mismatch", f"{who.name} sent as {claimed.value}")
            return
        try:
            self._act(who, body)
        except OwnershipError as exc:
            self._refuse(who, action, exc.reason, str(exc))

    def _on_checklist(self, checklist: PatientChecklist, session: int, body: Status) -> None:
        """The bedside confirms the checklist or overrides an item: only a backup console,
        named by its certificate (Zenoh's access control lets only the backup role publish
        on ``control/grant``; this is the second check)."""
        who = self.party(session)
        if who is None or who.role is not Role.BACKUP:
            self._refuse(who, "checklist", "not_backup", f"{name_of(who)} may not confirm "
                         "the checklist: only a bedside (backup) console can")
            return
        try:
            checklist.bedside_action(who.name, body.data)
        except OwnershipError as exc:
            self._refuse(who, "checklist", exc.reason, str(exc))
            return
        self._changed = True

    def _act(self, who: Party, body: ControlRequest) -> None:
        if body.action in (ControlAction.REPLAY, ControlAction.ALLOW_REPLAY,
                           ControlAction.END_REPLAY):
            self._replay_action(who, body)
            return
        if body.action is ControlAction.REQUEST:
            if self.ownership.request(who):
                log.warning("%s asks for control; the bedside console can grant it", who.name)
                if self._audit is not None:
                    self._audit.handover_request(who, "request", "waiting for the bedside")
                self._changed = True
            return
        if body.action is ControlAction.TAKE_OVER:
            h = self.ownership.take_over(who)
        elif not self._cleared():
            raise OwnershipError("checklist", "no grant to a remote surgeon before the "
                                 "pre-flight checklist is cleared; confirm it or override "
                                 "its failed items")
        else:
            h = self.ownership.grant(who, body.target)
        if h is not None and h.owner is not None:
            self._hold_for(h.owner.session, h)

    # ---- replay of a console's outage motion ------------------------------------------

    def _replay_action(self, who: Party, body: ControlRequest) -> None:
        """Offer (the owner), allow (the bedside) or end (the offering console) a replay."""
        with self._lock:
            offered, allowed_by = self._replay, self._replay_by
        if body.action is ControlAction.REPLAY:
            owner = self.ownership.owner
            if owner is None or owner.session != who.session:
                raise OwnershipError("not_owner", f"{who.name} offers a replay without holding "
                                     "control; only the owner's own motion can be replayed")
            with self._lock:
                self._replay, self._replay_by = who, None
            log.warning("%s offers its outage motion for replay; the bedside may allow it",
                        who.name)
            self._audit_replay(who, "offered: waiting for the bedside")
        elif body.action is ControlAction.ALLOW_REPLAY:
            if who.role is not Role.BACKUP:
                raise OwnershipError("not_backup", f"{who.name} may not allow a replay: only "
                                     "a bedside (backup) console can")
            if offered is None or offered.session != body.target or allowed_by is not None:
                raise OwnershipError("no_replay", f"console session {body.target:016x} "
                                     "has no replay waiting")
            with self._lock:
                self._replay_by = who
            log.warning("%s allows the replay of %s's outage motion", who.name, offered.name)
            self._audit_replay(offered, "allowed", who)
        elif offered is not None and offered.session == who.session:
            self.end_replay(who.name + " ended it")
        else:
            raise OwnershipError("no_replay", f"{who.name} has no replay to end")
        self._changed = True

    def replaying(self, session: int) -> Party | None:
        """The console ``session`` while its replay is allowed (its commands are audited
        one by one), else None."""
        with self._lock:
            who = self._replay
            return who if who is not None and self._replay_by is not None \
                and who.session == session else None

    def end_replay(self, why: str) -> None:
        """End the replay offered or under way (done, withdrawn, interrupted: ``why``)."""
        with self._lock:
            who, self._replay, self._replay_by = self._replay, None, None
        if who is not None:
            log.warning("replay of %s's outage motion ended: %s", who.name, why)
            self._audit_replay(who, f"ended: {why}")
            self._changed = True

    def _audit_replay(self, who: Party, outcome: str, by: Party | None = None) -> None:
        if self._audit is not None:
            self._audit.replay(who, outcome, by)

    def _hold_for(self, owner: int | None, h: Handover) -> None:
        if self._arms is not None:
            self._arms.hold_others(owner, f"control passed to {name_of(h.owner)}: {h.reason}")

    def _refuse(self, who: Party | None, action: str, reason: str, detail: str) -> None:
        with self._lock:
            self.refused[reason] += 1
            first = self.refused[reason] == 1
        if first:
            log.warning("refused a control %s: %s; further ones are counted", action, detail)
        if who is not None and self._audit is not None:
            self._audit.handover_request(who, action, f"refused: {reason}")

    # ---- housekeeping ---------------------------------------------------------------

    def poll(self, now: int | None = None) -> None:
        """Owner loss, handovers to publish and audit, the periodic announcement."""
        now = now_ns() if now is None else now
        self._check_owner(now)
        changed = self._changed
        self._changed = False
        while True:
            try:
                h = self._handovers.get_nowait()
            except queue.Empty:
                break
            changed = True
            self._last = h
            if self._replay is not None:
                self.end_replay(f"control passed to {name_of(h.owner)}")
            log.warning("control: %s -> %s (%s)", h.previous_name or "nobody",
                        name_of(h.owner), h.reason)
            if self._audit is not None:
                self._audit.handover(h)
        if (changed or now >= self._next_announce) and self._owner_pub is not None:
            self._owner_pub.put(Status(self.announcement()))
            self._next_announce = now + round(ANNOUNCE_PERIOD_S * 1e9)

    def _check_owner(self, now: int) -> None:
        owner, arms = self.ownership.owner, self._arms
        if owner is None or arms is None:
            return
        heard = max(arms.last_valid_ns(owner.session) or 0, self.ownership.since_ns())
        if now - heard <= self._lost_ns:
            return
        quiet_ms = (now - heard) * 1e-6
        h = self.ownership.lose(owner.session, f"{owner.name} silent for {quiet_ms:.0f} ms "
                                f"(limit {self._lost_ns * 1e-6:g} ms): control lies with "
                                "the bedside")
        if h is not None:
            self._hold_for(None, h)

    def announcement(self) -> dict[str, Any]:
        """What ``control/owner`` carries (``Ownership.announcement``), and the pre-flight
        checklist for the consoles' pages (``checklist``: None without one)."""
        checklist = self._checklist
        with self._lock:
            who, by = self._replay, self._replay_by
        return self.ownership.announcement(self._last) | {
            "checklist": None if checklist is None or not checklist.required
            else checklist.status(),
            "replay": None if who is None else {"console": who.name,
                                                 "session": f"{who.session:016x}",
                                                 "allowed_by": None if by is None
                                                 else by.name}}

    def status(self) -> dict[str, Any]:
        """The announcement plus the actions refused, by reason."""
        with self._lock:
            refused = dict(self.refused)
        return self.announcement() | {"refused": refused,
                                      "undecodable": self.rejects.total}


__all__ = ["ANNOUNCE_PERIOD_S", "HoldsArms", "PatientControl"]
