"""Session squatting (issue 9, D1), played as the independent probe played it.

A real, secure patient node with its signed audit trail; a real surgeon console and a
real bedside console (their command keys agreed the way the console node agrees them).
The attacker is its own Zenoh client holding a stolen commander certificate: it reads
the owner's console session id on ``control/owner``, offers a key under that id, and if
it were answered would stream ``servo_cp`` and a grant under it. The offer must be
refused as ``session_taken`` and audited, no answer may give the attacker a key, its
commands and grant must move and change nothing, and the victim must keep control.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh

from telesurgery.clock import Rate, now_ns
from telesurgery.demo.processes import free_port
from telesurgery.errors import AuthError
from telesurgery.messages import ControlAction, ControlRequest, KeyAccept, Message, ServoCP, Status
from telesurgery.security.handshake import Initiator
from telesurgery.security.node import throwaway_site
from telesurgery.security.pki import Role
from telesurgery.security.tags import TagKey, TagReason, seal
from telesurgery.transport.codec import decode, encode
from telesurgery.transport.session import matching
from telesurgery.types import Pose

from ..serving import patient_config, serving
from .test_intruders import (
    ARM,
    KEYS,
    SESSION,
    STILL_M,
    STROKE_M,
    WAIT_S,
    Console,
    Rig,
    Tip,
    _client,
    _stroke,
    _wait,
    watched,
)

MEMBERS = {
    Role.ROUTER: ("relay",),
    Role.ROBOT: ("patient",),
    Role.SURGEON: ("dr-rossi", "dr-bianchi"),
    Role.BACKUP: ("bedside-team",),
    Role.OBSERVER: ("watcher",),
}


class Streaming:
    """A console that holds control the way a console does: it keeps sending commands
    (clutched on the spot, so the arm stays put) on its own thread."""

    def __init__(self, console: Console, tip: Tip) -> None:
        self.console = console
        self._tip = tip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="victim", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rate = Rate(500.0)
        pose = self._tip.latest()
        while not self._stop.is_set():
            self.console.pub.put(ServoCP(ARM, pose, now_ns(), True))
            rate.sleep()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        assert not self._thread.is_alive(), "the victim console's thread did not stop in 10 s"


class Attacker:
    """Its own Zenoh client with a stolen commander certificate (surgeon or backup)."""

    def __init__(self, rig: Rig, role: Role, name: str) -> None:
        self.sec = rig.security(role, name)
        self.z = _client(rig.endpoint, self.sec.zenoh_settings())
        rig.sessions.append(self.z)
        self.accepts: list[bytes] = []
        self.owner: dict[str, object] = {}
        self._cv = threading.Condition()
        self._subs = [self.z.declare_subscriber(KEYS.key_accept, self._on_accept),
                      self.z.declare_subscriber(KEYS.control_owner, self._on_owner)]
        reliable = zenoh.Reliability.RELIABLE
        self.offers = self.z.declare_publisher(KEYS.key_offer, reliability=reliable)
        self.commands = self.z.declare_publisher(
            KEYS.servo_cp(ARM), priority=zenoh.Priority.REAL_TIME, express=True,
            reliability=zenoh.Reliability.RELIABLE,
            congestion_control=zenoh.CongestionControl.BLOCK)
        # control/grant is the backup role's alone (the access control drops a surgeon's
        # put there); control/request reaches the patient's tag gate.
        self.grants = self.z.declare_publisher(KEYS.control_request, reliability=reliable)

    def _on_accept(self, sample: zenoh.Sample) -> None:
        with self._cv:
            self.accepts.append(sample.payload.to_bytes())

    def _on_owner(self, sample: zenoh.Sample) -> None:
        body = decode(sample.payload.to_bytes()).body
        assert isinstance(body, Status)
        with self._cv:
            self.owner = dict(body.data)
            self._cv.notify_all()

    def owner_session(self, name: str) -> int:
        """The console session id of owner ``name``, read where observers read it."""
        with self._cv:
            assert self._cv.wait_for(lambda: self.owner.get("owner") == name, WAIT_S), \
                f"{name} never announced as the owner (last: {self.owner})"
            return int(str(self.owner["session"]), 16)

    def squat(self, session: int) -> Initiator:
        """Offer a key under someone else's console ``session``."""
        initiator = Initiator(self.sec.credentials, SESSION, session)
        _wait(lambda: matching(self.offers), "the patient's offer subscriber")
        self.offers.put(encode(Message(session, 1, now_ns(), initiator.offer())))
        return initiator

    def key_from_answers(self, initiator: Initiator) -> bytes | None:
        """The key, if any answer the patient published completes our offer."""
        with self._cv:
            answers = list(self.accepts)
        for data in answers:
            msg = decode(data)
            if not isinstance(msg.body, KeyAccept):
                continue
            try:
                key, _ = initiator.complete(msg)
            except AuthError:
                continue
            return key
        return None

    def drive_as(self, session: int, key: bytes, start: Pose) -> int:
        """``servo_cp`` under ``session`` sealed with ``key``: a stroke of STROKE_M and
        back, then a grant of control to nobody in particular; how many were sent."""
        tag_key = TagKey(key)
        _wait(lambda: matching(self.commands), "the patient's command subscriber")
        rate = Rate(1000.0)
        seq = itertools.count(10_000_000)
        poses = _stroke(start, STROKE_M)
        for pose, clutch in poses:
            t = now_ns()
            self.commands.put(seal(Message(session, next(seq), t,
                                           ServoCP(ARM, pose, t, clutch)), tag_key))
            rate.sleep()
        _wait(lambda: matching(self.grants), "the patient's grant subscriber")
        self.grants.put(seal(Message(session, next(seq), now_ns(),
                                     ControlRequest(ControlAction.GRANT, "backup", 1)),
                             tag_key))
        return len(poses) + 1


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("squatting")
    site = throwaway_site(root, SESSION, MEMBERS)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cfg = patient_config(SESSION, endpoint, site.config(Role.ROBOT, "patient"),
                         record_dir=root / "record")
    with serving(cfg, "patient-squatted") as (node, check):
        yield from watched(Rig(site, node, endpoint, Tip()), check)


def _trail(rig: Rig) -> list[dict[str, Any]]:
    audit = rig.node.audit
    assert audit is not None
    path = Path(audit.path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line still being written
            break
    return out


def _refused_in_trail(rig: Rig, session: int) -> bool:
    return any(r["kind"] == "key_refused" and isinstance(r["data"], dict)
               and r["data"]["reason"] == "session_taken"
               and r["data"]["session"] == f"{session:016x}" for r in _trail(rig))


def _taken(rig: Rig) -> int:
    return int(rig.node.security_status()["offers_refused"]["session_taken"])


def _squat_and_drive(rig: Rig, attacker: Attacker, victim: str) -> tuple[int, float]:
    """The probe's attack on owner ``victim``: the victim's session id and how far the
    tool moved while the attacker drove."""
    session = attacker.owner_session(victim)
    before = _taken(rig)
    initiator = attacker.squat(session)
    _wait(lambda: _taken(rig) == before + 1, "the squatting offer to be refused")
    # The best an attacker without an answer can do is a key of its own.
    key = attacker.key_from_answers(initiator) or os.urandom(32)
    rejected = rig.rejections()[TagReason.BAD_TAG]
    start = rig.tip.mark()
    sent = attacker.drive_as(session, key, rig.tip.latest())
    _wait(lambda: rig.rejections()[TagReason.BAD_TAG] >= rejected + sent,
          f"the attacker's commands and grant to be refused as forged ({sent} sent; "
          f"refused so far: {rig.rejections()})")
    rig.tip.wait_samples(20, rig.tip.mark())
    _wait(lambda: _refused_in_trail(rig, session), "the refusal in the audit trail")
    assert attacker.key_from_answers(initiator) is None, "the attacker was given a key"
    return session, rig.tip.moved_since(start)


def _take_over(console: Console) -> None:
    pub = console.z.declare_publisher(KEYS.control_grant,
                                      reliability=zenoh.Reliability.RELIABLE)
    _wait(lambda: matching(pub), "the patient's grant subscriber")
    pub.put(console.keys.seal(Message(console.session_id, 1, now_ns(),
                                      ControlRequest(ControlAction.TAKE_OVER, "backup", 0))))


def test_squatting_a_surgeon_owned_session_moves_nothing(rig: Rig) -> None:
    """Another surgeon's certificate, then a stolen copy of the owner's own (with another
    ephemeral key), offers a key for the owner's session and drives under it."""
    assert rig.node.control.announcement()["owner"] is None, "runs first, on an open robot"
    surgeon = Console(rig, Role.SURGEON, "dr-rossi")
    victim = None
    try:
        surgeon.ready()
        victim = Streaming(surgeon, rig.tip)
        for stolen in ("dr-bianchi", "dr-rossi"):
            attacker = Attacker(rig, Role.SURGEON, stolen)
            handovers = rig.node.control.ownership.handovers
            session, moved = _squat_and_drive(rig, attacker, "surgeon:dr-rossi")
            assert session == surgeon.session_id
            assert moved < STILL_M, stolen
            owner = rig.node.control.announcement()
            assert (owner["owner"], owner["session"]) == ("surgeon:dr-rossi",
                                                          f"{session:016x}")
            assert rig.node.control.ownership.handovers == handovers
            assert rig.node.auth is not None
            assert rig.node.auth.common_name(session) == "surgeon:dr-rossi"
    finally:
        if victim is not None:
            victim.stop()
        surgeon.close()


def test_squatting_a_bedside_owned_session_moves_nothing_and_the_bedside_keeps_control(
        rig: Rig) -> None:
    """The probe's main case: after the bedside took over, a stolen surgeon certificate
    squats the bedside console's session, streams commands and sends a grant under it."""
    bedside = Console(rig, Role.BACKUP, "bedside-team")
    victim = None
    try:
        bedside.ready()
        _take_over(bedside)
        _wait(lambda: rig.node.control.announcement()["owner"] == "backup:bedside-team",
              "the bedside's take-over")
        victim = Streaming(bedside, rig.tip)
        attacker = Attacker(rig, Role.SURGEON, "dr-rossi")
        handovers = rig.node.control.ownership.handovers
        refused = dict(rig.node.control.status()["refused"])
        session, moved = _squat_and_drive(rig, attacker, "backup:bedside-team")
        assert session == bedside.session_id
        assert moved < STILL_M
        # The forged grant never reached the ownership rules.
        assert rig.node.control.status()["refused"] == refused
        assert rig.node.control.ownership.handovers == handovers
        victim.stop()
        victim = None
        # The bedside still drives: its own stroke moves the tool.
        start = rig.tip.mark()
        bedside.drive(_stroke(rig.tip.latest(), STROKE_M))
        rig.tip.wait_samples(20, rig.tip.mark())
        assert rig.tip.moved_since(start) > 0.5 * STROKE_M
        assert rig.node.control.announcement()["owner"] == "backup:bedside-team"
    finally:
        if victim is not None:
            victim.stop()
        bedside.close()
    trail = _trail(rig)
    # Each key_agreed also carries the certificate's licence.
    agreed = [{k: r["data"][k] for k in ("session", "name", "reason")} for r in trail
              if r["kind"] == "key_agreed"]
    assert {"session": f"{bedside.session_id:016x}", "name": "backup:bedside-team",
            "reason": None} in agreed
