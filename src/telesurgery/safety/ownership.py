"""Control ownership: exactly one console drives the robot at a time, and the bedside decides.

The patient node keeps one :class:`Ownership`; the safety supervisor asks it about every
command (:meth:`Ownership.admits`) and refuses the commands of every other console as
``wrong_session``. The rules, from the on-site team's priority:

- **Open**: at the start nobody owns the robot; the first surgeon console whose command
  arrives claims it. A backup console never claims an open robot by driving: it stands
  by for the remote surgeon and takes control with one explicit action (take-over).
- **Take-over**: a ``backup`` console (at the bedside) takes control at once, whoever
  holds it; the arms the previous owner engaged are held where they are.
- **Request and grant**: a ``surgeon`` gets control from anyone else only by asking
  (:meth:`Ownership.request`) and a ``backup`` console granting that request.
- **Loss**: an owner silent for ``lost_after_ns`` (the patient node checks) loses control
  to the bedside; with no bedside console driving, nobody moves the robot until a backup
  console claims it or grants it.

Who claims control that nobody holds is decided by :func:`claims` alone: the patient
node's :class:`Ownership` applies it, and the console asks it before it streams
commands (``console.control.may_drive``), so the two never disagree.

Every change of owner is one :class:`Handover` with both identities. The class is plain
state behind a lock, no I/O, so that its rules are checked exhaustively by property tests;
the patient node publishes the handovers and writes them to the audit trail.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from telesurgery.errors import OwnershipError


class Role(enum.StrEnum):
    """Who may hold control."""

    SURGEON = "surgeon"
    """A remote surgeon console: gets control by claiming an open robot, or by a grant."""
    BACKUP = "backup"
    """The bedside console: takes control at any time and grants it."""


@dataclass(frozen=True, slots=True)
class Party:
    """One console session: its ``role``, ``name`` (certificate common name, e.g.
    ``surgeon:dr-rossi``, or a name made from the session when security is off) and
    ``session`` id [u64]."""

    role: Role
    name: str
    session: int

    def as_dict(self) -> dict[str, str]:
        """JSON-ready: the name, role and session (16 hex digits)."""
        return {"name": self.name, "role": self.role.value, "session": f"{self.session:016x}"}


BEDSIDE_NAME = "bedside"
"""Shown as the owner when control lies with the bedside but no bedside console drives."""


@dataclass(frozen=True, slots=True)
class Handover:
    """One change of owner: from ``previous`` to ``owner`` (None: the bedside, no console
    driving; for ``previous``, nobody at all when ``first``), asked for by ``by``, at
    ``at_ns`` [ns], with the ``reason`` in words."""

    previous: Party | None
    owner: Party | None
    by: Party | None
    reason: str
    at_ns: int
    first: bool = False
    """The first owner of the session: nobody held control before."""

    @property
    def previous_name(self) -> str | None:
        """The previous owner's name (None before the first owner)."""
        return None if self.first else name_of(self.previous)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for the owner announcement and the audit trail."""
        return {"owner": name_of(self.owner), "previous": self.previous_name,
                "by": name_of(self.by), "reason": self.reason,
                "session": None if self.owner is None else f"{self.owner.session:016x}",
                "previous_session": (None if self.previous is None
                                     else f"{self.previous.session:016x}")}


def claims(role: Role, is_open: bool) -> bool:
    """Whether the first command of a ``role`` console claims control that nobody holds:
    a surgeon claims an open robot (``is_open``: nobody has held control yet); a backup
    console claims control that lies with the bedside (its owner was lost), and never an
    open robot: there it stands by and takes control with one explicit action."""
    return role is (Role.SURGEON if is_open else Role.BACKUP)


def name_of(p: Party | None) -> str:
    """A party's name, or ``bedside`` for control with the bedside and no console."""
    return BEDSIDE_NAME if p is None else p.name


class Ownership:
    """Who holds control of one patient node (thread-safe).

    ``on_handover`` is called with each :class:`Handover`, under this object's lock (so
    that handovers are reported in order): it must only queue the handover, never call
    back into this object or the safety supervisor.
    """

    def __init__(self, on_handover: Callable[[Handover], object],
                 clock: Callable[[], int]) -> None:
        self._on_handover = on_handover
        self._clock = clock
        self._lock = threading.Lock()
        self._open = True
        self._owner: Party | None = None
        self._since_ns = clock()
        self._requests: dict[int, Party] = {}
        self.handovers = 0

    # ---- queries ------------------------------------------------------------------

    @property
    def owner(self) -> Party | None:
        """The console holding control (None: nobody yet, or the bedside without one)."""
        return self._owner

    @property
    def is_open(self) -> bool:
        """True until somebody first holds control."""
        return self._open

    def since_ns(self) -> int:
        """When the current owner got control [ns]."""
        return self._since_ns

    def requests(self) -> list[Party]:
        """Consoles waiting for a grant, oldest first."""
        with self._lock:
            return list(self._requests.values())

    def admits(self, who: Party | None) -> bool:
        """Whether a command of ``who`` (None: a session nobody can name) may move the
        robot; while nobody holds control and ``who`` may claim it (:func:`claims`), this
        claims control for ``who``."""
        if who is None:
            return False
        with self._lock:
            owner = self._owner
            if owner is not None:
                # The whole party, not the session id alone: an id is a name anyone can
                # read on control/owner, the certificate behind it is not.
                return owner == who
            if claims(who.role, self._open):
                self._change(who, who, "first command" if self._open
                             else "bedside console drives")
                return True
            return False

    # ---- actions ------------------------------------------------------------------

    def take_over(self, who: Party) -> Handover | None:
        """A backup console takes control now; None if it held control already.

        Raises ``OwnershipError`` for any other role."""
        if who.role is not Role.BACKUP:
            raise OwnershipError("not_backup", f"{who.name} may not take control: only a "
                                 "bedside (backup) console can; ask for it instead")
        with self._lock:
            if self._owner is not None and self._owner == who:
                return None
            # A request made to the previous holder is not one the bedside has seen.
            self._requests.clear()
            return self._change(who, who, "bedside take-over")

    def request(self, who: Party) -> bool:
        """``who`` asks for control; True if the request is new and now waits for the
        bedside's grant (False: it holds control already, or asked already)."""
        with self._lock:
            if self._owner is not None and self._owner == who:
                return False
            if who.session in self._requests:
                return False
            self._requests[who.session] = who
            return True

    def grant(self, by: Party, session: int) -> Handover:
        """The backup console ``by`` gives control to console ``session``, which must have
        asked for it. Raises ``OwnershipError`` otherwise."""
        if by.role is not Role.BACKUP:
            raise OwnershipError("not_backup", f"{by.name} may not grant control: only a "
                                 "bedside (backup) console can")
        with self._lock:
            who = self._requests.pop(session, None)
            if who is None:
                raise OwnershipError("no_request", f"console session {session:016x} has not "
                                     "asked for control; it must request it first")
            return self._change(who, by, f"granted by {by.name}")

    def lose(self, session: int, reason: str) -> Handover | None:
        """Console ``session`` is gone (silent past the limit): if it held control, control
        passes to the bedside; its pending request is dropped either way."""
        with self._lock:
            self._requests.pop(session, None)
            if self._owner is None or self._owner.session != session:
                return None
            return self._change(None, None, reason)

    def _change(self, owner: Party | None, by: Party | None, reason: str) -> Handover:
        now = self._clock()
        h = Handover(self._owner, owner, by, reason, now, first=self._open)
        self._owner, self._open, self._since_ns = owner, False, now
        if owner is not None:
            self._requests.pop(owner.session, None)
        self.handovers += 1
        self._on_handover(h)
        return h

    def announcement(self, last: Handover | None) -> dict[str, object]:
        """What the patient node announces on ``control/owner``: the owner, its role and
        session, the last handover's previous owner and reason, pending requests."""
        with self._lock:
            owner, open_, since, requests = (self._owner, self._open, self._since_ns,
                                             list(self._requests.values()))
        return {
            "owner": None if open_ else name_of(owner),
            "role": None if owner is None else owner.role.value,
            "session": None if owner is None else f"{owner.session:016x}",
            "previous": None if last is None else last.previous_name,
            "reason": "nobody has claimed control yet" if last is None else last.reason,
            "handovers": self.handovers,
            "requests": [{"name": p.name, "session": f"{p.session:016x}"} for p in requests],
            "since_s": round((self._clock() - since) * 1e-9, 3),
        }


__all__ = ["BEDSIDE_NAME", "Handover", "Ownership", "Party", "Role", "claims", "name_of"]
