"""Command keys over Zenoh: the handshake's two ends and the patient node's tag gate.

``PatientKeys`` answers key offers (``control/key/offer``, ``control/key/accept`` on the
node's main session) and is the gate every command passes before the dual-path layer:
a command with no tag, a forged tag, the key of an unknown or previous session, or a
replay is refused and counted here by ``TagReason`` (security's own verdicts: the
supervisor counts its own; the patient node reports both side by side). Each
console session id stays bound to the certificate and ephemeral key that first agreed a
key for it (``handshake.Responder``); every agreement and every refused offer is handed
to ``on_event`` (the audit trail).
``ConsoleKeys`` offers a key, seals every command under it, and keeps resending the
same offer for as long as it runs: until the patient node answers, then as a keep-alive
that holds its identity and brings back a key the node has forgotten. A restarted
patient node (a new session) answers that same offer with a new key, which the console
takes once the node's state or status shows the new session.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import zenoh

from telesurgery.clock import name_os_thread, now_ns
from telesurgery.errors import AuthError
from telesurgery.messages import KeyOffer, Message
from telesurgery.security.credential import CredentialPolicy, Licence
from telesurgery.security.handshake import (
    BINDING_REFUSALS,
    Agreement,
    Credentials,
    Initiator,
    Responder,
    certificate_name,
)
from telesurgery.security.pki import Role
from telesurgery.security.tags import CommandVerifier, TagKey, TagReason, seal
from telesurgery.transport.codec import encode
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, subscribe

log = logging.getLogger(__name__)

OFFER_RETRY_S = 0.2
"""How often [s] a console sends its offer again: until the patient node answers, then
as a keep-alive (``handshake.IDENTITY_LIVE_S`` must be several of these)."""
CRL_CHECK_NS = 1_000_000_000
"""How often [ns] the patient node looks for a new revocation list while commands flow:
a certificate revoked meanwhile loses its command key within this time."""
_AUDITED_REFUSALS = 1024
"""(console session, reason) pairs whose refusal was audited; a console resends a refused
offer five times a second, and the trail needs it once."""


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A command key agreed (``reason`` None) or a key offer refused (``reason``: why, in
    one word) for console session ``console_session`` [u64], by the certificate
    ``common_name`` (None: a certificate that did not pass)."""

    console_session: int
    common_name: str | None
    reason: str | None = None
    licence: Licence | None = None
    """The licence in the certificate of an agreed key (None: none, or refused)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for the audit trail."""
        return {"session": f"{self.console_session:016x}", "name": self.common_name,
                "reason": self.reason,
                "licence": None if self.licence is None else self.licence.as_dict()}


class PatientKeys:
    """The patient node's end of command authentication.

    ``commanders``: who may agree keys, by role (the access-control roster; None: any
    surgeon or backup of the site CA); ``policy``: the site's credential policy (None:
    licences not checked); ``on_event`` gets each :class:`KeyEvent` (first refusal per
    console session and reason), before the console is answered. Refused commands are counted by
    :class:`~telesurgery.security.tags.TagReason` (:meth:`rejections`).
    """

    def __init__(self, z: zenoh.Session, keys: Keys, session_id: int, creds: Credentials,
                 commanders: Mapping[Role, Sequence[str]] | None,
                 on_event: Callable[[KeyEvent], object] | None = None,
                 policy: CredentialPolicy | None = None) -> None:
        self.verifier = CommandVerifier()
        self._on_event = on_event
        self._audited: set[tuple[int, str]] = set()
        self._creds = creds
        self._next_crl_check = 0
        self.policy = policy
        self._responder = Responder(creds, keys.session, session_id, commanders,
                                    policy=policy)
        self._lock = threading.Lock()
        # Apart from ``_lock``, which an offer holds through its signature checks: a
        # refused command must never wait for a handshake.
        self._count_lock = threading.Lock()
        self._rejected: Counter[TagReason] = Counter()
        self.refused: Counter[str] = Counter()
        """Key offers refused, by reason (``AuthError.reason``)."""
        self.agreed = 0
        self.rejects = RejectCounter()
        self._accepts = Publisher(z, keys.key_accept, Stream.EVENT, session_id)
        self._sub = subscribe(z, keys.key_offer, self._on_offer, self.rejects)

    def _on_offer(self, msg: Message, _received_ns: int) -> None:
        with self._lock:
            self._check_revocations()
            before = self._responder.bound_to(msg.session)
            try:
                agreement = self._responder.answer(msg, now_ns())
            except AuthError as exc:
                self._refused(msg, exc)
                return
            new = agreement is not before
            # A keep-alive also brings back a key the verifier forgot (too many sessions).
            if new or self.verifier.key_of(msg.session) is None:
                self.verifier.set_key(msg.session, agreement.key, agreement.common_name,
                                      agreement.serial)
            if new:
                self.agreed += 1
                log.info("command key agreed with %s (console session %016x)",
                         agreement.common_name, msg.session)
                self._event(KeyEvent(msg.session, agreement.common_name,
                                     licence=agreement.licence))
        self._accepts.put(agreement.accept)

    def _refused(self, msg: Message, exc: AuthError) -> None:
        self.refused[exc.reason] += 1
        if self.refused[exc.reason] == 1:
            log.warning("refused a command-key offer of console session %016x: %s; "
                        "further ones are counted", msg.session, exc)
        seen = (msg.session, exc.reason)
        if seen in self._audited:
            return
        if len(self._audited) >= _AUDITED_REFUSALS:
            self._audited.clear()
        self._audited.add(seen)
        body = msg.body
        name = None
        if isinstance(body, KeyOffer):
            name = certificate_name(body.certificate)
        self._event(KeyEvent(msg.session, name, exc.reason))

    def _event(self, ev: KeyEvent) -> None:
        if self._on_event is not None:
            self._on_event(ev)

    def gate(self, path: str, data: bytes, msg: Message) -> bool:
        """True when command ``msg`` (``data`` on the wire, brought by ``path``) carries a
        valid tag and is no replay; otherwise it is counted and dropped."""
        now = now_ns()
        if now >= self._next_crl_check:
            self._next_crl_check = now + CRL_CHECK_NS
            self._check_revocations()
        reason = self.verifier.check(path, data, msg)
        if reason is None:
            return True
        with self._count_lock:
            self._rejected[reason] += 1
            first = self._rejected[reason] == 1
        if first:
            log.warning("refused a command: %s (seq %d, session %016x); further ones are "
                        "counted, not logged", reason.value, msg.seq, msg.session)
        return False

    def rejections(self) -> dict[TagReason, int]:
        """Commands refused so far, by reason."""
        with self._count_lock:
            return dict(self._rejected)

    def _check_revocations(self) -> None:
        revoked = self._creds.revoked
        if revoked.refresh():
            for cn in self.verifier.forget_serials(revoked.serials):
                log.warning("%s was revoked: its command key is forgotten, its commands "
                            "are refused from now on", cn)

    def live(self) -> list[Agreement]:
        """The command keys of consoles running now (``Responder.live``)."""
        with self._lock:
            return self._responder.live(now_ns())

    def licence(self, common_name: str | None) -> Licence | None:
        """The licence of the newest key agreed by ``common_name`` (None: none)."""
        with self._lock:
            return self._responder.licence(common_name)

    def common_name(self, console_session: int | None) -> str | None:
        """Who agreed the key of ``console_session`` (None if nobody or no session)."""
        if console_session is None:
            return None
        entry = self.verifier.key_of(console_session)
        return None if entry is None else entry.common_name

    def status(self) -> dict[str, Any]:
        """Keys agreed and offers refused so far."""
        with self._lock:
            # The binding refusals are always listed: a check reads 0 as "none happened".
            return {"keys_agreed": self.agreed,
                    "offers_refused": dict.fromkeys(BINDING_REFUSALS, 0) | dict(self.refused)}

    def close(self) -> None:
        """Stop answering offers."""
        self._sub.undeclare()
        self._accepts.close()


class ConsoleKeys:
    """The console's end: one command key per patient session, its offer resent for as
    long as the console runs (until answered, then as a keep-alive).

    One offer (one ephemeral key) serves the whole console session, whichever patient
    node answers it: a restarted patient node (new process, new session id) hears the
    keep-alive and binds this console session to that very offer (``Responder``), so a
    fresh offer would be refused there as ``session_taken``. Its answer carries its own
    fresh ephemeral key, hence a new command key; the console takes it once the patient's
    state or status shows that session (``observe_patient``), and seals under the old
    key until then (the new node refuses those commands and counts them).
    """

    def __init__(self, z: zenoh.Session, keys: Keys, session_id: int,
                 creds: Credentials) -> None:
        self._cv = threading.Condition()
        self._initiator = Initiator(creds, keys.session, session_id)
        self._key: TagKey | None = None
        self.patient: int | None = None
        """The patient session the current key was agreed with."""
        self._talking_to: int | None = None
        """The patient session the console drives: the newest one its state or status
        showed (None: none seen, and no key yet). Only its answers may replace the key, so
        that an answer of an earlier patient run (replayed) cannot take it back."""
        self.patient_name: str | None = None
        self.patient_changes = 0
        """New patient sessions seen after the first (patient node restarts)."""
        self.refused: Counter[str] = Counter()
        """Answers refused, by reason (answers to other consoles are not counted)."""
        self._stop = False
        self.rejects = RejectCounter()
        self._offers = Publisher(z, keys.key_offer, Stream.EVENT, session_id)
        self._sub = subscribe(z, keys.key_accept, self._on_accept, self.rejects)
        self._thread = threading.Thread(target=self._offer_loop, name="console-keys",
                                        daemon=True)
        self._thread.start()

    @property
    def ready(self) -> bool:
        """True once a key is agreed."""
        return self._key is not None

    def _offer_loop(self) -> None:
        name_os_thread()
        # Resent after the answer too: the patient node takes it as this session's
        # keep-alive (no second session of our certificate while we run) and restores our
        # key from it if it had to forget it; a restarted patient node agrees a key from it.
        offer = self._initiator.offer()
        while True:
            with self._cv:
                if self._stop:
                    return
            self._offers.put(offer)
            with self._cv:
                if not self._stop:
                    self._cv.wait(OFFER_RETRY_S)

    def _on_accept(self, msg: Message, _received_ns: int) -> None:
        with self._cv:
            if msg.session == self.patient:
                # The keep-alive's answer from the patient our key is agreed with: the
                # same key again, nothing to check (five a second per console).
                return
            if self._talking_to is not None and msg.session != self._talking_to:
                # A patient session we do not drive: a new node whose state has not
                # reached us yet answers again within OFFER_RETRY_S; an old one's answer
                # is a replay.
                return
            try:
                key, name = self._initiator.complete(msg)
            except AuthError as exc:
                if exc.reason != "not_ours":
                    self.refused[exc.reason] += 1
                    log.warning("refused the answer to our command-key offer: %s", exc)
                return
            self._key, self.patient, self.patient_name = TagKey(key), msg.session, name
            self._talking_to = msg.session
            self._cv.notify_all()
        log.info("command key agreed with %s (patient session %016x)", name, msg.session)

    def observe_patient(self, session: int) -> None:
        """The patient node's session as its state or status shows it: a new one (the node
        restarted) gets its own key, from its answer to our offer; commands keep the old
        key until then. Called for every state message: one comparison when nothing
        changed."""
        if session == self._talking_to:
            return
        with self._cv:
            if session == self._talking_to:
                return
            first = self._talking_to is None
            self._talking_to = session
            if not first:
                self.patient_changes += 1
        if not first:
            log.warning("new patient session %016x (the patient node restarted?); agreeing "
                        "a new command key with it", session)

    def seal(self, msg: Message) -> bytes:
        """``msg`` tagged under the current key (untagged before the first agreement)."""
        key = self._key
        return encode(msg) if key is None else seal(msg, key)

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until a key is agreed or ``timeout_s`` [s] passes; True once agreed."""
        with self._cv:
            return self._cv.wait_for(lambda: self._key is not None, timeout_s)

    def status(self) -> dict[str, Any]:
        """Whether a key is agreed, with whom, whether it is the key of the patient session
        the console drives (``key_current``: false while a restarted node's is agreed),
        patient sessions changed, and answers refused."""
        return {"key": self.ready, "patient": self.patient_name,
                "key_current": self.ready and self.patient == self._talking_to,
                "patient_changes": self.patient_changes,
                "answers_refused": dict(self.refused)}

    def close(self) -> None:
        """Stop offering."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=2.0)
        self._sub.undeclare()
        self._offers.close()
