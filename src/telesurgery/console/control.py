"""The console's end of control ownership: asking for control, taking it, granting it, and
knowing who holds it.

The patient node decides who drives (``safety.ownership``); a console only asks, and
reads the answer. :class:`ControlClient` publishes ``ControlRequest`` messages (``REQUEST``
on ``control/request``, ``TAKE_OVER`` and ``GRANT`` on ``control/grant``, where Zenoh's
access control lets only the ``backup`` role publish), sealed under the console's command
key exactly like its commands, and numbered by one sequence for both keys: the patient's
replay window is per console session and message type, not per key. They go on the
console's main Zenoh session with the event QoS (reliable): a lost take-over is no
option.

It also keeps the patient's latest announcement from ``control/owner``
(:class:`OwnerView`), from which :func:`may_drive` says whether this console's commands
can move anything; the console streams commands only then (see ``ConsoleNode``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import zenoh

from telesurgery.clock import now_ns
from telesurgery.errors import CodecError, CodecReason, OwnershipError
from telesurgery.messages import ControlAction, ControlRequest, Message, Status
from telesurgery.safety.ownership import Role, claims
from telesurgery.transport.codec import encode
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    RejectCounter,
    declare_publisher,
    matching,
    subscribe,
)

log = logging.getLogger(__name__)

ConsoleRole = Literal["surgeon", "backup"]
BEDSIDE: Final = "bedside"
"""The owner's name when control lies with the bedside and no bedside console drives."""


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A console waiting for the bedside's grant: its name and session id [u64]."""

    name: str
    session: int


@dataclass(frozen=True, slots=True)
class ReplayView:
    """A replay of a console's outage motion, as the patient announces it: the console's
    name and session [u64], and the bedside console that allowed it (None: waiting)."""

    console: str
    session: int
    allowed_by: str | None


@dataclass(frozen=True, slots=True)
class OwnerView:
    """One announcement of the patient node on ``control/owner``.

    ``owner``: who holds control (a certificate common name such as ``surgeon:dr-rossi``,
    ``bedside`` when control lies with the bedside and no console drives, None before
    anyone claimed it); ``session`` the owner's console session [u64] (None without a
    console); ``previous`` and ``reason``: the last handover; ``handovers`` so far;
    ``requests``: consoles waiting for a grant, oldest first; ``since_s`` [s]: how long the
    owner has held control when the patient announced it.
    """

    owner: str | None
    role: str | None
    session: int | None
    previous: str | None
    reason: str
    handovers: int
    requests: tuple[PendingRequest, ...]
    since_s: float
    checklist: Mapping[str, Any] | None = None
    """The patient's pre-flight checklist (``required``, ``cleared``, ``confirmed_by``,
    ``items``), None when the patient enforces none."""
    replay: ReplayView | None = None
    """The replay offered or allowed (``console.twin``), None when there is none."""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> OwnerView:
        """The announcement in ``data`` (a ``Status`` body); ``CodecError`` if malformed."""
        try:
            requests = tuple(PendingRequest(str(r["name"]), _session(r["session"]))
                             for r in data.get("requests", []))
            return cls(_text(data.get("owner")), _text(data.get("role")),
                       None if data.get("session") is None else _session(data["session"]),
                       _text(data.get("previous")), str(data.get("reason", "")),
                       int(data.get("handovers", 0)), requests,
                       float(data.get("since_s", 0.0)), _checklist(data.get("checklist")),
                       _replay(data.get("replay")))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"control owner announcement is malformed: {exc}",
                             CodecReason.BAD_BODY) from exc

    @property
    def is_open(self) -> bool:
        """True while nobody has claimed control yet (the first console to drive does)."""
        return self.owner is None

    @property
    def with_bedside(self) -> bool:
        """True when control lies with the bedside and no console drives (the owner was
        lost): the first backup console to drive claims it."""
        return self.owner == BEDSIDE and self.session is None

    def holds(self, session: int) -> bool:
        """Whether console ``session`` holds control."""
        return self.session == session

    def as_dict(self, session: int) -> dict[str, Any]:
        """JSON-ready for the HUD, from the point of view of console ``session``:
        ``you`` says whether it holds control."""
        return {"owner": self.owner or "nobody yet", "role": self.role,
                "session": None if self.session is None else f"{self.session:016x}",
                "you": self.holds(session), "previous": self.previous, "reason": self.reason,
                "handovers": self.handovers, "since_s": self.since_s,
                "requests": [{"name": r.name, "session": f"{r.session:016x}",
                              "you": r.session == session} for r in self.requests],
                "checklist": self.checklist,
                "replay": None if self.replay is None else {
                    "console": self.replay.console, "you": self.replay.session == session,
                    "allowed_by": self.replay.allowed_by}}


def _checklist(v: object) -> Mapping[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("items", []), list):
        raise TypeError("'checklist' is not an object with a list of items")
    return v


def _replay(v: object) -> ReplayView | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise TypeError("'replay' is not an object")
    return ReplayView(str(v["console"]), _session(v["session"]), _text(v.get("allowed_by")))


def _text(v: object) -> str | None:
    return None if v is None else str(v)


def _session(v: object) -> int:
    if not isinstance(v, str) or len(v) != 16:
        raise ValueError(f"session {v!r} is not 16 hex digits")
    return int(v, 16)


def may_drive(role: ConsoleRole, session: int, view: OwnerView | None) -> bool:
    """Whether a ``role`` console (session ``session``) should stream commands now.

    Only while they can move something: when it holds control, or while nobody holds
    it and its first command would claim it (the patient's rule,
    ``safety.ownership.claims``: a surgeon claims an open robot, a backup console
    control left with the bedside). Nothing heard yet: no.
    """
    if view is None:
        return False
    if view.holds(session):
        return True
    return (view.is_open or view.with_bedside) and claims(Role(role), view.is_open)


class ControlClient:
    """Control actions of one console session, and the owner as the patient announces it.

    ``seal`` turns a message into its bytes (the command key's ``ConsoleKeys.seal``, or
    ``encode`` when security is off); ``ready`` says whether the patient would accept a
    sealed message now (the command key is agreed). Actions raise ``OwnershipError``
    when they cannot be sent: not ``ready`` yet, no patient node listening, or (a surgeon
    console) taking over or granting, which only the bedside may do.
    """

    def __init__(self, z: zenoh.Session, keys: Keys, session_id: int, role: ConsoleRole,
                 seal: Callable[[Message], bytes] = encode,
                 ready: Callable[[], bool] = lambda: True,
                 rejects: RejectCounter | None = None) -> None:
        self.role: ConsoleRole = role
        self.session_id = session_id
        self._seal = seal
        self._ready = ready
        self._seq = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._view: OwnerView | None = None
        self.sent: Counter[str] = Counter()
        """Actions sent, by name (``request``, ``take_over``, ``grant``)."""
        self.rejects = rejects if rejects is not None else RejectCounter()
        self._pubs = {key: declare_publisher(z, key, Stream.EVENT)
                      for key in (keys.control_request, keys.control_grant)}
        self._request_key, self._grant_key = keys.control_request, keys.control_grant
        self._sub = subscribe(z, keys.control_owner, self._on_owner, self.rejects)

    # ---- the owner ----------------------------------------------------------------

    def _on_owner(self, msg: Message, _received_ns: int) -> None:
        if not isinstance(msg.body, Status):
            return
        try:
            view = OwnerView.parse(msg.body.data)
        except CodecError as exc:
            self.rejects.add("control/owner", exc)
            return
        with self._changed:
            previous, self._view = self._view, view
            self._changed.notify_all()
        if previous is None or previous.holds(self.session_id) != view.holds(self.session_id):
            log.warning("control: %s (%s)", "this console holds control"
                        if view.holds(self.session_id) else f"{view.owner or 'nobody'} holds "
                        "control, not this console", view.reason)

    @property
    def owner(self) -> OwnerView | None:
        """The latest announcement (None before the first)."""
        return self._view

    @property
    def holds_control(self) -> bool:
        """True when the latest announcement names this console."""
        view = self._view
        return view is not None and view.holds(self.session_id)

    def answers_sync(self) -> bool:
        """Whether this console answers the patient's clock-sync requests on its paths: the
        console that holds control, or the surgeon's while no console holds it (the
        offset the patient estimates is then the one of the clock its commands come by)."""
        view = self._view
        if view is None or view.session is None:
            return self.role == "surgeon"
        return view.holds(self.session_id)

    def may_drive(self) -> bool:
        """Whether this console's commands can move anything now (:func:`may_drive`)."""
        return may_drive(self.role, self.session_id, self._view)

    def wait(self, predicate: Callable[[OwnerView | None], bool], timeout_s: float) -> bool:
        """Block until ``predicate(latest announcement)`` holds or ``timeout_s`` [s] passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._view), timeout_s)

    # ---- actions ------------------------------------------------------------------

    @property
    def matched(self) -> bool:
        """True while someone (the patient node) subscribes to both control keys."""
        return all(matching(pub) for pub in self._pubs.values())

    def request(self) -> Message:
        """Ask for control; the bedside sees the request and may grant it."""
        return self._send(self._request_key, ControlAction.REQUEST)

    def take_over(self) -> Message:
        """Take control now (a backup console only)."""
        self._bedside_only("take control")
        return self._send(self._grant_key, ControlAction.TAKE_OVER)

    def grant(self, session: int) -> Message:
        """Give control to console ``session``, which asked for it (a backup console only)."""
        self._bedside_only("grant control")
        return self._send(self._grant_key, ControlAction.GRANT, session)

    def grant_oldest(self) -> Message:
        """Grant the oldest pending request; ``OwnershipError`` when none is pending."""
        view = self._view
        if view is None or not view.requests:
            raise OwnershipError("no_request", "no console is waiting for control; a "
                                 "surgeon console asks with its 'Request control' button")
        return self.grant(view.requests[0].session)

    def offer_replay(self) -> Message:
        """Offer the motion made on the twin during an outage for replay on the robot (the
        owner only); the bedside decides."""
        return self._send(self._request_key, ControlAction.REPLAY)

    def allow_replay(self) -> Message:
        """Allow the replay on offer (a backup console only); ``OwnershipError`` when none
        waits."""
        self._bedside_only("allow a replay")
        view = self._view
        if view is None or view.replay is None or view.replay.allowed_by is not None:
            raise OwnershipError("no_replay", "no replay waits for the bedside; a surgeon "
                                 "console offers one when its link returns from an outage")
        return self._send(self._grant_key, ControlAction.ALLOW_REPLAY, view.replay.session)

    def end_replay(self) -> Message:
        """This console's replay is over: done, withdrawn or abandoned."""
        return self._send(self._request_key, ControlAction.END_REPLAY)

    def checklist(self, data: Mapping[str, str]) -> Message:
        """Confirm the patient's pre-flight checklist (``{"action": "confirm"}``) or override
        a failed item (``{"action": "override", "item": ..., "reason": ...}``), a backup
        console only; the patient names the confirmation by this console's certificate."""
        self._bedside_only("confirm the checklist")
        return self._put(self._grant_key, Status(dict(data)),
                         f"checklist {data.get('action', '?')}")

    def _bedside_only(self, what: str) -> None:
        if self.role != "backup":
            raise OwnershipError("not_backup", f"a surgeon console cannot {what}: only the "
                                 "bedside console (telesurgery backup) can; request it instead")

    def _send(self, key: str, action: ControlAction, target: int = 0) -> Message:
        msg = self._put(key, ControlRequest(action, self.role, target), action.name.lower())
        log.warning("control: sent %s%s as %s", action.name.lower().replace("_", "-"),
                    f" to console session {target:016x}" if target else "", self.role)
        return msg

    def _put(self, key: str, body: ControlRequest | Status, label: str) -> Message:
        if not self._ready():
            raise OwnershipError("not_ready", "no command key is agreed with the patient "
                                 "node yet; try again once it is (the HUD shows the patient)")
        pub = self._pubs[key]
        if not matching(pub):
            raise OwnershipError("no_patient", f"no patient node listens on {key}; is it "
                                 "running in this session?")
        with self._lock:
            # One sequence over both keys: the patient judges replays per session and type.
            self._seq += 1
            msg = Message(self.session_id, self._seq, now_ns(), body)
            pub.put(self._seal(msg))
            self.sent[label] += 1
        return msg

    # ---- figures, lifecycle --------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """This console's role, whether it holds control, the owner, actions sent."""
        view = self._view
        return {"role": self.role, "holds": self.holds_control, "driving": self.may_drive(),
                "owner": None if view is None else view.owner,
                "handovers": None if view is None else view.handovers,
                "sent": dict(self.sent)}

    def close(self) -> None:
        """Stop listening and publishing (idempotent)."""
        if not self._pubs:
            return
        self._sub.undeclare()
        for pub in self._pubs.values():
            pub.undeclare()
        self._pubs.clear()


__all__ = ["BEDSIDE", "ConsoleRole", "ControlClient", "OwnerView", "PendingRequest",
           "may_drive"]
