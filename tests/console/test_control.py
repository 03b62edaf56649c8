"""The console's control client on real Zenoh sessions over loopback: what it publishes
where, sealed like commands, numbered by one sequence; and how it reads the owner."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
import zenoh

from telesurgery.console.control import ControlClient, OwnerView, may_drive
from telesurgery.errors import CodecError, OwnershipError
from telesurgery.messages import ControlAction, ControlRequest, Message, Status
from telesurgery.safety.ownership import Ownership, Party, Role
from telesurgery.security.tags import CommandVerifier, TagKey, TagReason, seal
from telesurgery.transport.codec import TAG_SIZE, decode
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher

KEYS = Keys("ctl")
WAIT_S = 10.0
SURGEON, BACKUP = 0x1111_2222_3333_4444, 0xBBBB_0000_CCCC_0001


class Wire:
    """Every sample on the two control keys, as (key, bytes), in arrival order."""

    def __init__(self, z: zenoh.Session) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._cv = threading.Condition()
        self._subs = [z.declare_subscriber(k, self._on)
                      for k in (KEYS.control_request, KEYS.control_grant)]

    def _on(self, sample: zenoh.Sample) -> None:
        with self._cv:
            self.items.append((str(sample.key_expr), sample.payload.to_bytes()))
            self._cv.notify_all()

    def wait(self, n: int) -> list[tuple[str, bytes]]:
        with self._cv:
            assert self._cv.wait_for(lambda: len(self.items) >= n, WAIT_S), self.items
            return list(self.items)


def _client(z: zenoh.Session, session: int, role: str, **kwargs: object) -> ControlClient:
    client = ControlClient(z, KEYS, session, role, **kwargs)  # type: ignore[arg-type]
    # The far side's subscribers must be known before anything is sent.
    assert _eventually(lambda: client.matched)
    return client


def _eventually(predicate: Callable[[], bool]) -> bool:
    tick = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if predicate():
            return True
        tick.wait(0.01)
    return False


@pytest.fixture
def wire(zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> Wire:
    patient, _ = zenoh_pair
    return Wire(patient)


def test_actions_go_to_their_keys_in_one_sequence_and_decode(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session], wire: Wire) -> None:
    _, console = zenoh_pair
    client = _client(console, BACKUP, "backup")
    try:
        client.take_over()
        client.request()
        client.grant(SURGEON)
        got = wire.wait(3)
    finally:
        client.close()
    by_action = {}
    for key, data in got:
        msg = decode(data)
        assert isinstance(msg.body, ControlRequest)
        assert msg.session == BACKUP
        assert not msg.tag  # insecure: plain encode
        by_action[msg.body.action] = (key, msg)
    take_key, take = by_action[ControlAction.TAKE_OVER]
    req_key, req = by_action[ControlAction.REQUEST]
    grant_key, grant = by_action[ControlAction.GRANT]
    assert (take_key, req_key, grant_key) == (KEYS.control_grant, KEYS.control_request,
                                              KEYS.control_grant)
    assert [take.seq, req.seq, grant.seq] == [1, 2, 3]  # one sequence over both keys
    assert isinstance(grant.body, ControlRequest)
    assert grant.body == ControlRequest(ControlAction.GRANT, "backup", SURGEON)
    assert client.sent == {"take_over": 1, "request": 1, "grant": 1}


def test_secure_actions_are_sealed_and_pass_the_patients_tag_check(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session], wire: Wire) -> None:
    _, console = zenoh_pair
    key = os.urandom(32)
    tag_key = TagKey(key)
    verifier = CommandVerifier()
    verifier.set_key(BACKUP, key, "backup:bedside", 7)

    def sealer(m: Message) -> bytes:
        return seal(m, tag_key)

    client = _client(console, BACKUP, "backup", seal=sealer)
    try:
        client.take_over()
        client.grant(SURGEON)
        got = wire.wait(2)
    finally:
        client.close()
    for _key, data in got:
        msg = decode(data)
        assert len(msg.tag) == TAG_SIZE
        assert verifier.check("main", data, msg) is None
        # The same bytes again are a replay; a bit flipped under the tag is a forgery.
        assert verifier.check("main", data, msg) is TagReason.REPLAYED
        forged = bytearray(data)
        forged[40] ^= 1
        assert verifier.check("main", bytes(forged), decode(bytes(forged))) is TagReason.BAD_TAG


def test_what_a_console_may_not_send_is_refused_before_it_leaves(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    patient, console = zenoh_pair
    ready = threading.Event()
    surgeon = ControlClient(console, KEYS, SURGEON, "surgeon", ready=ready.is_set)
    try:
        with pytest.raises(OwnershipError) as err:
            surgeon.take_over()
        assert err.value.reason == "not_backup"
        with pytest.raises(OwnershipError) as err:
            surgeon.grant(BACKUP)
        assert err.value.reason == "not_backup"
        with pytest.raises(OwnershipError) as err:
            surgeon.request()  # no command key agreed yet: the patient would refuse it
        assert err.value.reason == "not_ready"
        ready.set()
        with pytest.raises(OwnershipError) as err:
            surgeon.request()  # nobody subscribes to control/request
        assert err.value.reason == "no_patient"
        wire = Wire(patient)
        assert _eventually(lambda: surgeon.matched)
        surgeon.request()
        wire.wait(1)
    finally:
        surgeon.close()


def _announcement(owner: Ownership) -> dict[str, object]:
    return owner.announcement(None)


def test_the_owner_announcement_is_read_as_the_patient_writes_it(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    patient, console = zenoh_pair
    clock = [0]
    rules = Ownership(lambda _h: None, lambda: clock[0])
    surgeon = Party(Role.SURGEON, "surgeon:dr-rossi", SURGEON)
    bedside = Party(Role.BACKUP, "backup:bedside", BACKUP)
    client = ControlClient(console, KEYS, SURGEON, "surgeon")
    owner_pub = Publisher(patient, KEYS.control_owner, Stream.EVENT, 99)
    try:
        assert client.owner is None
        assert not client.may_drive()  # nothing heard: wait for the patient

        def announce_until(check: Callable[[OwnerView], bool]) -> None:
            data = _announcement(rules)

            def heard() -> bool:
                owner_pub.put(Status(data))
                return client.wait(lambda v: v is not None and check(v), 0.2)

            assert _eventually(heard), data

        announce_until(lambda v: v.is_open)
        assert client.may_drive()  # a surgeon claims an open robot
        assert rules.admits(surgeon)
        clock[0] = 2_500_000_000
        announce_until(lambda v: v.holds(SURGEON))
        assert client.holds_control
        assert client.may_drive()
        rules.take_over(bedside)
        rules.request(surgeon)
        announce_until(lambda v: v.owner == "backup:bedside")
        view = client.owner
        assert view is not None
        assert view.session == BACKUP
        assert view.role == "backup"
        assert view.previous is None  # no handover passed to announcement()
        assert [(r.name, r.session) for r in view.requests] == [("surgeon:dr-rossi", SURGEON)]
        assert not client.may_drive()
        hud = view.as_dict(SURGEON)
        assert hud["you"] is False
        assert hud["requests"][0]["you"] is True
        rules.lose(BACKUP, "silent")
        announce_until(lambda v: v.with_bedside)
        assert not client.may_drive()  # a surgeon cannot claim what lies with the bedside
        # Garbage on the key is counted, never believed.
        before = client.rejects.total
        owner_pub.put(Status({"owner": "x", "session": "not hex"}))
        assert _eventually(lambda: client.rejects.total > before)
        assert client.owner is not None
        assert client.owner.with_bedside
    finally:
        owner_pub.close()
        client.close()


def _view(owner: str | None, session: int | None) -> OwnerView:
    return OwnerView(owner, None, session, None, "", 0, (), 0.0)


@pytest.mark.parametrize(
    ("view", "surgeon", "backup"),
    [
        (None, False, False),
        (_view(None, None), True, False),  # open: a surgeon claims it, the bedside stands by
        (_view("surgeon:dr-rossi", SURGEON), True, False),
        (_view("backup:bedside", BACKUP), False, True),
        (_view("bedside", None), False, True),  # lost owner: the bedside claims by driving
    ],
)
def test_who_streams_commands(view: OwnerView | None, surgeon: bool, backup: bool) -> None:
    assert may_drive("surgeon", SURGEON, view) is surgeon
    assert may_drive("backup", BACKUP, view) is backup


@pytest.mark.parametrize("lost", [False, True], ids=["open", "with_bedside"])
@pytest.mark.parametrize("role", list(Role))
def test_a_console_streams_exactly_when_the_patient_lets_its_commands_claim(
        role: Role, lost: bool) -> None:
    o = Ownership(lambda _h: None, lambda: 0)
    if lost:
        first = Party(Role.SURGEON, "surgeon:dr-chen", 0x5)
        assert o.admits(first)
        assert o.lose(first.session, "silent") is not None
    view = OwnerView.parse(o.announcement(None))
    who = Party(role, f"{role.value}:x", 0x77)
    assert may_drive(role.value, who.session, view) is o.admits(who)


@pytest.mark.parametrize("data", [{"session": 5}, {"requests": [{"name": "x"}]},
                                  {"handovers": "many"}, {"session": "12"}])
def test_malformed_announcements_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(CodecError):
        OwnerView.parse(data)
