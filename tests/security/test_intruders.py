"""The intruder matrix: real Zenoh clients on loopback against a real, secure patient node.

One patient node (the real ``PatientNode``, simulated robot, mutual TLS, the site's
access control, tagged commands) serves the module. A legitimate surgeon console
drives psm1 through a stroke that moves the tool 8 mm and back, so the test can see
motion when a command gets through. Every intruder then tries to move it: a client
with no certificate, one from another CA, an observer, a revoked surgeon, and a
compromised router (relay rights) replaying captured commands, forging tags,
re-stamping them, sending untagged ones or commands of a previous console session.
Each must move nothing (the measured tool pose stays put) and be refused: by Zenoh at
the handshake or in the access control (the patient never sees it), or by the tag
gate, counted by reason in the supervisor. A surgeon trying to take control or grant
it is refused too: by the access control, or by the patient node from its certificate.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import zenoh

from telesurgery.clock import Rate, now_ns
from telesurgery.config import ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.errors import TransportError
from telesurgery.messages import ControlAction, ControlRequest, MeasuredCP, Message, ServoCP
from telesurgery.patient.node import PatientNode
from telesurgery.safety.checks import Reason
from telesurgery.security.command_keys import ConsoleKeys
from telesurgery.security.handshake import Initiator
from telesurgery.security.node import NodeSecurity, Site, throwaway_site
from telesurgery.security.pki import Identity, Role
from telesurgery.security.tags import TagReason
from telesurgery.transport.codec import TAG_SIZE, decode, encode
from telesurgery.transport.dualpath import MultiPublisher
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    RejectCounter,
    Security,
    matching,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.types import Pose

from ..serving import patient_config, serving
from ..waiting import wait_until
from .conftest import make_pki

SESSION = "or1"
KEYS = Keys(SESSION)
ARM = "psm1"
WAIT_S = 30.0
STROKE_M = 0.008
STILL_M = 0.0005
"""A held arm moves less than this [m]; a stroke that got through moves it ~16x more."""
MEMBERS = {
    Role.ROUTER: ("relay",),
    Role.ROBOT: ("patient",),
    Role.SURGEON: ("dr-rossi", "dr-gone", "dr-stolen"),
    Role.OBSERVER: ("obs1", "watcher"),
}


@dataclass
class Tip:
    """The measured tool tip of psm1 as an observer sees it on the key space."""

    samples: list[Pose] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_measured(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, MeasuredCP) and msg.body.arm == ARM:
            with self.changed:
                self.samples.append(msg.body.measured)
                self.changed.notify_all()

    def mark(self) -> int:
        """The index of the next sample."""
        with self.changed:
            return len(self.samples)

    def wait_samples(self, n: int, after: int) -> None:
        """Wait for ``n`` samples after index ``after`` (the node keeps publishing)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.samples) >= after + n, WAIT_S)

    def latest(self) -> Pose:
        with self.changed:
            return self.samples[-1]

    def moved_since(self, start: int) -> float:
        """The farthest [m] the tip went from where it was at index ``start``."""
        with self.changed:
            window = self.samples[start:]
        return max(window[0].distance(p) for p in window)


@dataclass
class Rig:
    """The patient node in a thread, its site, and an observer watching the tool tip."""

    site: Site
    node: PatientNode
    endpoint: str
    tip: Tip
    sessions: list[zenoh.Session] = field(default_factory=list)

    def security(self, role: Role, name: str) -> NodeSecurity:
        return self.site.security(role, name)

    def rejections(self) -> dict[Reason | TagReason, int]:
        """Commands refused so far: the tag gate's verdicts and the supervisor's."""
        out: dict[Reason | TagReason, int] = dict.fromkeys(TagReason, 0)
        if self.node.auth is not None:
            out.update(self.node.auth.rejections().items())
        out.update(self.node.supervisor.rejections().items())
        return out

    def received(self) -> int:
        """Commands the patient node judged at all (accepted or refused for any reason)."""
        snap = self.node.supervisor.snapshot()
        return int(snap["accepted"]) + sum(self.rejections().values())

    def held(self) -> None:
        """Wait until psm1 is held (nobody drives it), then for a few fresh samples."""
        _wait(lambda: self.node.supervisor.mode(ARM).label == "held", "psm1 held")
        self.tip.wait_samples(20, self.tip.mark())


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    wait_until(predicate, what, timeout_s)


def _client(endpoint: str, security: Security | None) -> zenoh.Session:
    return open_session(ZenohConfig(mode="client", connect=[endpoint], gossip=False), security)


def _acl_letting_observers_see_command_subscribers(site: Site, path: Path) -> Path:
    # A modified client would send commands whether or not it knows of a subscriber; the
    # stock client sends once it learns of one, so letting observers learn of the patient's
    # command subscribers makes the patient's own ingress rule what must drop them.
    block = json.loads(site.acl.read_text(encoding="utf-8"))
    ac = block["access_control"]
    ac["rules"].append({"id": "observer/learns-command-subscribers", "permission": "allow",
                        "messages": ["declare_subscriber"], "flows": ["egress"],
                        "key_exprs": [KEYS.servo_cp("*"), KEYS.jaw_servo_jp("*")]})
    next(p for p in ac["policies"] if p["id"] == "observer")["rules"].append(
        "observer/learns-command-subscribers")
    path.write_text(json.dumps(block), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("intruders")
    site = throwaway_site(root, SESSION, MEMBERS)
    acl = _acl_letting_observers_see_command_subscribers(site, root / "patient-acl.json")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    security = site.config(Role.ROBOT, "patient").model_copy(update={"acl": acl})
    with serving(patient_config(SESSION, endpoint, security), "patient-under-attack") as (
            node, check):
        yield from watched(Rig(site, node, endpoint, Tip()), check)


def watched(rig: Rig, check: Callable[[], None]) -> Iterator[Rig]:
    """``rig`` once an observer sees its tool tip; its client sessions closed after."""
    try:
        def watching() -> bool:
            check()
            try:
                z = _client(rig.endpoint,
                            rig.site.security(Role.OBSERVER, "watcher").zenoh_settings())
            except TransportError:
                return False
            rig.sessions.append(z)
            subscribe(z, KEYS.measured_cp(ARM), rig.tip.on_measured, RejectCounter())
            return True

        _wait(watching, "the patient node to listen")
        rig.tip.wait_samples(10, 0)
        yield rig
    finally:
        for z in rig.sessions:
            z.close()


def _stroke(start: Pose, dx: float) -> list[tuple[Pose, bool]]:
    """Clutch on the tool, then out ``dx`` [m] along x and back, at 500 Hz (1.4 s)."""
    def at(f: float) -> Pose:
        p = start.position
        return Pose((p[0] + dx * f, p[1], p[2]), start.orientation)

    out = [(start, True)] * 50 + [(start, False)] * 50
    out += [(at(i / 200), False) for i in range(1, 201)] + [(at(1.0), False)] * 100
    out += [(at(1.0 - i / 200), False) for i in range(1, 201)] + [(start, False)] * 100
    return out


class Console:
    """A surgeon console's command path as the console node builds it (key agreed with
    the patient, every pose command tagged), keeping every byte it sends: what a router on
    the path sees."""

    def __init__(self, rig: Rig, role: Role, name: str,
                 identity: NodeSecurity | None = None) -> None:
        sec = identity or rig.security(role, name)
        self.z = _client(rig.endpoint, sec.zenoh_settings())
        self.session_id = new_session_id()
        self.keys = ConsoleKeys(self.z, KEYS, self.session_id, sec.credentials)
        self.sent: list[bytes] = []
        self.closed = False
        self.pub = MultiPublisher({"direct": self.z}, KEYS.servo_cp(ARM), Stream.COMMAND,
                                  self.session_id, seal=self._seal)

    def _seal(self, msg: Message) -> bytes:
        data = self.keys.seal(msg)
        self.sent.append(data)
        return data

    def ready(self) -> None:
        assert self.keys.wait_ready(WAIT_S), "no command key agreed"
        _wait(lambda: self.pub.matched, "the patient's command subscriber")

    def drive(self, poses: list[tuple[Pose, bool]]) -> None:
        rate = Rate(500.0)
        for pose, clutch in poses:
            self.pub.put(ServoCP(ARM, pose, now_ns(), clutch))
            rate.sleep()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.keys.close()
        self.pub.close()
        self.z.close()


class Intruder:
    """A Zenoh client that puts raw bytes on psm1's command key at 1 kHz.

    Reliable and blocking, unlike a console: an intruder wants every message delivered,
    and the test counts them.
    """

    def __init__(self, rig: Rig, security: Security) -> None:
        self.z = _client(rig.endpoint, security)
        rig.sessions.append(self.z)
        self.pub = self.z.declare_publisher(
            KEYS.servo_cp(ARM), priority=zenoh.Priority.REAL_TIME, express=True,
            reliability=zenoh.Reliability.RELIABLE,
            congestion_control=zenoh.CongestionControl.BLOCK)

    def matched(self) -> bool:
        return matching(self.pub)

    def send(self, messages: Iterable[bytes]) -> None:
        """Put each of ``messages``, made as it is sent (so fresh stamps are fresh)."""
        _wait(self.matched, "the intruder to see the patient's subscriber")
        rate = Rate(1000.0)
        for data in messages:
            self.pub.put(data)
            rate.sleep()


def _stamped(msg: Message, seq: int, tag: bytes) -> bytes:
    """``msg`` as number ``seq``, sent and sampled now, ending with ``tag``: what passes
    the sequence and age checks if nothing checks the tag."""
    now = now_ns()
    body = msg.body
    assert isinstance(body, ServoCP)
    return encode(Message(msg.session, seq, now, replace(body, sample_ns=now), tag))


def _fresh(poses: list[tuple[Pose, bool]], session: int) -> list[Message]:
    return [Message(session, 0, 0, ServoCP(ARM, pose, 0, clutch)) for pose, clutch in poses]


def _relay(rig: Rig) -> Intruder:
    """A compromised router next to the patient node: relay rights on the whole session."""
    return Intruder(rig, rig.security(Role.ROUTER, "relay").zenoh_settings())


@dataclass
class Captured:
    """A legitimate surgeon's stroke as a router on the path captured it, how far it
    moved the tool [m] (proof that the harness sees motion when commands get through),
    and how many of its commands reached the patient node (a console's commands are
    best effort: on a loaded machine a few are dropped on the way)."""

    sent: list[bytes]
    moved_m: float
    delivered: int
    console: Console

    @property
    def session(self) -> int:
        return decode(self.sent[0]).session


@pytest.fixture
def captured(rig: Rig) -> Iterator[Captured]:
    """The surgeon's console stays connected (its key valid) while the test attacks."""
    rig.held()
    console = Console(rig, Role.SURGEON, "dr-rossi")
    try:
        console.ready()
        before = rig.tip.mark()
        received = rig.received()
        console.drive(_stroke(rig.tip.latest(), STROKE_M))
        rig.held()  # the watchdog holds 50 ms after the last command arrived
        yield Captured(list(console.sent), rig.tip.moved_since(before),
                       rig.received() - received, console)
    finally:
        console.close()


def _attack(rig: Rig, attack: Callable[[], None],
            expected: int = 0) -> tuple[float, dict[Reason | TagReason, int]]:
    """Run ``attack`` on a held arm and wait until ``expected`` more commands were judged;
    how far the tool moved [m] and the new rejections by reason."""
    rig.held()
    before = rig.rejections()
    received = rig.received()
    start = rig.tip.mark()
    attack()
    _wait(lambda: rig.received() - received >= expected,
          f"{expected} commands to reach the patient node")
    rig.tip.wait_samples(20, rig.tip.mark())
    after = rig.rejections()
    return rig.tip.moved_since(start), {r: after[r] - before[r] for r in after
                                        if after[r] != before[r]}


def test_a_legitimate_surgeon_moves_the_arm_with_tagged_commands(rig: Rig,
                                                                 captured: Captured) -> None:
    assert captured.moved_m > 0.75 * STROKE_M
    assert len(captured.sent) == len(_stroke(Pose(), 0.0))
    assert all(decode(d).tag for d in captured.sent)
    assert rig.node.security_status()["owner"] == "surgeon:dr-rossi"


@pytest.mark.parametrize("how", ["tcp", "tls"])
def test_no_certificate_cannot_connect(rig: Rig, how: str) -> None:
    received = rig.received()
    ca = str(rig.site.pki.ca_cert_path)
    endpoint = rig.endpoint.replace("tcp/", f"{how}/")
    settings = ({} if how == "tcp" else
                {"transport/link/tls/root_ca_certificate": json.dumps(ca)})
    zc = ZenohConfig(mode="client", connect=[endpoint], gossip=False)
    with pytest.raises(TransportError, match="cannot open Zenoh session"):
        # Plain tcp/ to the TLS port, or TLS that trusts our CA but shows no certificate.
        open_session(zc, None) if how == "tcp" else _open_raw(zc, settings)
    assert rig.received() == received


def _open_raw(cfg: ZenohConfig, settings: dict[str, str]) -> zenoh.Session:
    from telesurgery.transport.session import zenoh_config
    from telesurgery.transport.tls import apply_settings

    zc = zenoh_config(cfg)
    apply_settings(zc, settings)
    try:
        return zenoh.open(zc)
    except zenoh.ZError as exc:
        raise TransportError(f"cannot open Zenoh session: {exc}") from exc


def test_certificate_of_another_ca_cannot_connect(rig: Rig, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", "other-site")  # the very same common names
    received = rig.received()
    stranger = NodeSecurity.load(other.identity(Role.SURGEON, "dr-rossi"), rig.site.acl, None)
    with pytest.raises(TransportError, match="cannot open Zenoh session"):
        _client(rig.endpoint, stranger.zenoh_settings())
    assert rig.received() == received


def test_observer_commands_and_key_offers_are_dropped_by_the_access_control(
        rig: Rig, captured: Captured) -> None:
    received = rig.received()
    keys_before = rig.node.security_status()
    observer = rig.security(Role.OBSERVER, "obs1")

    def attack() -> None:
        intruder = Intruder(rig, observer.zenoh_settings())
        # Its own commands, untagged, and the surgeon's captured ones: neither arrives.
        start = rig.tip.latest()
        intruder.send(_stamped(m, i + 1, b"") for i, m in
                      enumerate(_fresh(_stroke(start, STROKE_M), 77)))
        intruder.send(captured.sent)
        # Nor does its key offer (the patient would refuse it by role, and count it).
        offer = Initiator(observer.credentials, SESSION, 77).offer()
        intruder.z.put(KEYS.key_offer, encode(Message(77, 1, now_ns(), offer)))

    moved, rejected = _attack(rig, attack)
    assert moved < STILL_M
    assert rejected == {}
    assert rig.received() == received
    status = rig.node.security_status()
    assert status["keys_agreed"] == keys_before["keys_agreed"]
    assert status["offers_refused"] == keys_before["offers_refused"]


def test_replayed_commands_are_refused_as_replays(rig: Rig, captured: Captured) -> None:
    intruder = _relay(rig)
    moved, rejected = _attack(rig, lambda: intruder.send(captured.sent), len(captured.sent))
    assert moved < STILL_M
    # Every command the patient had seen is a replay. One it never saw (dropped on the
    # way the first time) passes the window, but is refused as stale or out of order.
    assert rejected.pop(TagReason.REPLAYED) == captured.delivered
    assert sum(rejected.values()) == len(captured.sent) - captured.delivered
    assert set(rejected) <= {Reason.STALE, Reason.OUT_OF_ORDER}


def test_restamped_replays_and_forged_tags_are_refused(rig: Rig, captured: Captured) -> None:
    intruder = _relay(rig)
    # The captured commands under their own tags but on fresh numbers and times (what
    # would pass the sequence and age checks), then fresh commands of the surgeon's
    # session under random tags.
    restamped = [decode(d) for d in captured.sent]
    forged = _fresh(_stroke(rig.tip.latest(), STROKE_M), captured.session)

    def attack() -> None:
        intruder.send(_stamped(m, m.seq + 1_000_000, m.tag) for m in restamped)
        intruder.send(_stamped(m, 2_000_000 + i, os.urandom(TAG_SIZE))
                      for i, m in enumerate(forged))

    moved, rejected = _attack(rig, attack, len(restamped) + len(forged))
    assert moved < STILL_M
    assert rejected == {TagReason.BAD_TAG: len(restamped) + len(forged)}


def test_untagged_commands_are_refused(rig: Rig, captured: Captured) -> None:
    intruder = _relay(rig)
    untagged = _fresh(_stroke(rig.tip.latest(), STROKE_M), captured.session)
    moved, rejected = _attack(rig, lambda: intruder.send(
        _stamped(m, 3_000_000 + i, b"") for i, m in enumerate(untagged)), len(untagged))
    assert moved < STILL_M
    assert rejected == {TagReason.UNTAGGED: len(untagged)}


def test_commands_of_a_previous_session_are_refused(rig: Rig, captured: Captured) -> None:
    # The surgeon's console restarts: its new session agrees a new key (once the old one
    # has gone quiet), which ends the previous session's key; the router replays what it
    # captured of the previous one.
    captured.console.close()
    console = Console(rig, Role.SURGEON, "dr-rossi")
    try:
        console.ready()
        intruder = _relay(rig)
        moved, rejected = _attack(rig, lambda: intruder.send(captured.sent),
                                  len(captured.sent))
    finally:
        console.close()
    assert moved < STILL_M
    assert rejected == {TagReason.UNKNOWN_KEY: len(captured.sent)}


def _revoked_console(rig: Rig, name: str) -> tuple[Console, NodeSecurity]:
    """The console of surgeon ``name`` with a key agreed, then ``name`` revoked. Zenoh
    checks no revocation list and its access control changes only on restart, so the
    revoked certificate still links and could still command, but for the patient node."""
    ident = rig.site.pki.identity(Role.SURGEON, name)
    sec = NodeSecurity.load(Identity.from_dir(ident.certificate.parent), rig.site.acl, None)
    console = Console(rig, Role.SURGEON, name, sec)
    console.ready()
    rig.site.pki.revoke(Role.SURGEON, name)
    return console, sec


def _sealed(console: Console, poses: list[tuple[Pose, bool]], first_seq: int
            ) -> Iterator[bytes]:
    """``poses`` as commands of ``console``'s session under its key, stamped as sent."""
    for i, (pose, clutch) in enumerate(poses):
        now = now_ns()
        yield console.keys.seal(Message(console.session_id, first_seq + i, now,
                                        ServoCP(ARM, pose, now, clutch)))


def test_a_certificate_revoked_mid_session_loses_its_key_while_commanding(rig: Rig) -> None:
    # Nobody offers a key: the patient node notices from the commands' own flow (it looks
    # for a new revocation list once a second).
    console, sec = _revoked_console(rig, "dr-stolen")
    try:
        sender = Intruder(rig, sec.zenoh_settings())
        start = rig.tip.latest()

        def attack() -> None:
            base = rig.rejections()[TagReason.UNKNOWN_KEY]
            seq = 1
            deadline = now_ns() + int(WAIT_S * 1e9)
            # Clutched on the spot: accepted until noticed, and never a motion.
            while rig.rejections()[TagReason.UNKNOWN_KEY] == base:
                assert now_ns() < deadline, "the revocation was never noticed"
                sender.send(_sealed(console, [(start, True)] * 50, seq))
                seq += 50

        moved, rejected = _attack(rig, attack)
    finally:
        console.close()
    assert moved < STILL_M
    # Before the revocation is noticed its commands are authentic, and refused only when
    # another console of this module's patient node holds control.
    assert TagReason.UNKNOWN_KEY in rejected
    assert set(rejected) <= {TagReason.UNKNOWN_KEY, Reason.WRONG_SESSION}


def test_a_revoked_certificate_gets_no_new_key_and_its_old_one_is_forgotten(
        rig: Rig) -> None:
    console, sec = _revoked_console(rig, "dr-gone")
    refused = rig.node.security_status()["offers_refused"].get("revoked", 0)
    try:
        # Its new console's offer is refused, and makes the node re-read the list at once.
        again = Console(rig, Role.SURGEON, "dr-gone", sec)
        try:
            _wait(lambda: rig.node.security_status()["offers_refused"].get("revoked", 0)
                  > refused, "the revoked certificate's new offer to be refused")
            assert not again.keys.ready
        finally:
            again.close()
        sender = Intruder(rig, sec.zenoh_settings())
        stroke = _stroke(rig.tip.latest(), STROKE_M)
        moved, rejected = _attack(rig, lambda: sender.send(_sealed(console, stroke, 1)),
                                  len(stroke))
    finally:
        console.close()
    assert moved < STILL_M
    assert rejected == {TagReason.UNKNOWN_KEY: len(stroke)}


def test_a_surgeon_can_neither_take_control_nor_grant_it(rig: Rig) -> None:
    """Only the bedside takes control or grants it. A surgeon's take-over on
    ``control/grant`` is dropped by the access control; on ``control/request``, sealed under
    its own key, the patient node refuses it by the certificate's role; untagged, the tag
    gate refuses it. Control stays where it was."""
    console = Console(rig, Role.SURGEON, "dr-rossi")
    try:
        console.ready()
        control = rig.node.control
        handovers = control.ownership.handovers
        refused = dict(control.status()["refused"])
        untagged = rig.rejections()[TagReason.UNTAGGED]
        request, grant = (console.z.declare_publisher(k, reliability=zenoh.Reliability.RELIABLE)
                          for k in (KEYS.control_request, KEYS.control_grant))
        seq = itertools.count(1)

        def action(what: ControlAction, role: str, target: int = 0) -> Message:
            return Message(console.session_id, next(seq), now_ns(),
                           ControlRequest(what, role, target))

        _wait(lambda: matching(request), "the patient's control subscriber")
        grant.put(console.keys.seal(action(ControlAction.TAKE_OVER, "backup")))
        request.put(console.keys.seal(action(ControlAction.TAKE_OVER, "surgeon")))
        request.put(console.keys.seal(action(ControlAction.TAKE_OVER, "backup")))
        request.put(console.keys.seal(action(ControlAction.GRANT, "surgeon",
                                             console.session_id)))
        request.put(encode(action(ControlAction.TAKE_OVER, "surgeon")))

        def new(reason: str) -> int:
            return int(control.status()["refused"].get(reason, 0)) - int(refused.get(reason, 0))

        _wait(lambda: (new("not_backup"), new("role_mismatch")) == (2, 1)
              and rig.rejections()[TagReason.UNTAGGED] == untagged + 1,
              "the control actions to be refused")
        # The access control dropped the put on control/grant: it was never judged.
        assert new("role_mismatch") == 1
        assert control.ownership.handovers == handovers
    finally:
        console.close()
