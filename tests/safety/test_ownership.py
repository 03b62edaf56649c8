"""Control ownership: the rules one by one, then random sequences of actions against a model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from telesurgery.errors import OwnershipError
from telesurgery.safety.checks import Reason
from telesurgery.safety.ownership import Handover, Ownership, Party, Role
from telesurgery.types import SafetyState

from .rig import Console, kinematic_rig, moved

ROSSI = Party(Role.SURGEON, "surgeon:dr-rossi", 0x1)
CHEN = Party(Role.SURGEON, "surgeon:dr-chen", 0x2)
BEDSIDE = Party(Role.BACKUP, "backup:bedside-team", 0xB)
NURSE = Party(Role.BACKUP, "backup:nurse", 0xC)
PARTIES = (ROSSI, CHEN, BEDSIDE, NURSE)


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        self.t += 1
        return self.t


def _ownership() -> tuple[Ownership, list[Handover]]:
    log: list[Handover] = []
    return Ownership(log.append, Clock()), log


def test_the_first_console_claims_an_open_robot_and_nobody_else_commands() -> None:
    o, log = _ownership()
    assert o.is_open
    assert o.owner is None
    assert o.admits(ROSSI)
    assert not o.admits(CHEN)
    assert not o.admits(None)
    assert o.owner == ROSSI
    assert not o.is_open
    assert [(h.previous, h.owner) for h in log] == [(None, ROSSI)]
    assert log[0].first
    assert log[0].as_dict()["previous"] is None, "nobody held control before the first"


def test_a_backup_console_never_claims_an_open_robot_by_driving() -> None:
    o, log = _ownership()
    assert not o.admits(BEDSIDE)
    assert o.is_open
    assert log == []
    assert o.admits(ROSSI)


def test_the_bedside_takes_over_at_once_and_grants_only_what_was_asked() -> None:
    o, log = _ownership()
    assert o.admits(ROSSI)
    h = o.take_over(BEDSIDE)
    assert h is not None
    assert (h.previous, h.owner, h.by) == (ROSSI, BEDSIDE, BEDSIDE)
    assert not o.admits(ROSSI)
    assert o.admits(BEDSIDE)
    with pytest.raises(OwnershipError) as unasked:
        o.grant(BEDSIDE, ROSSI.session)
    assert unasked.value.reason == "no_request"
    assert o.request(ROSSI)
    assert not o.request(ROSSI)
    assert [p.name for p in o.requests()] == ["surgeon:dr-rossi"]
    h = o.grant(BEDSIDE, ROSSI.session)
    assert (h.previous, h.owner, h.by) == (BEDSIDE, ROSSI, BEDSIDE)
    assert o.admits(ROSSI)
    assert not o.admits(BEDSIDE)
    assert o.requests() == []
    assert len(log) == 3


def test_a_surgeon_can_neither_take_over_nor_grant() -> None:
    o, log = _ownership()
    assert o.take_over(BEDSIDE) is not None
    o.request(CHEN)
    with pytest.raises(OwnershipError) as took:
        o.take_over(ROSSI)
    with pytest.raises(OwnershipError) as granted:
        o.grant(ROSSI, CHEN.session)
    for refused in (took, granted):
        assert refused.value.reason == "not_backup"
        assert "only a bedside (backup) console" in str(refused.value)
    assert o.owner == BEDSIDE
    assert len(log) == 1


def test_a_lost_owner_leaves_control_with_the_bedside() -> None:
    o, log = _ownership()
    assert o.admits(ROSSI)
    assert o.lose(CHEN.session, "not the owner") is None
    h = o.lose(ROSSI.session, "silent for 1000 ms")
    assert h is not None
    assert (h.previous, h.owner) == (ROSSI, None)
    assert o.announcement(h)["owner"] == "bedside"
    assert h.as_dict()["previous"] == "surgeon:dr-rossi"
    assert [o.admits(ROSSI), o.admits(CHEN)] == [False, False], "surgeons must ask the bedside"
    assert o.admits(BEDSIDE), "a bedside console drives what lies with the bedside"
    assert [h.owner for h in log] == [ROSSI, None, BEDSIDE]


def test_a_take_over_forgets_requests_made_to_the_previous_holder() -> None:
    o, _ = _ownership()
    assert o.admits(ROSSI)
    o.request(CHEN)
    o.take_over(BEDSIDE)
    with pytest.raises(OwnershipError):
        o.grant(BEDSIDE, CHEN.session)


class OwnershipMachine(RuleBasedStateMachine):
    """Random actions by two surgeons and two bedside consoles, checked against a model:
    who may be owner, and how each party can become it."""

    def __init__(self) -> None:
        super().__init__()
        self.o, self.log = _ownership()
        self.owner: Party | None = None
        self.open = True
        self.asked: set[int] = set()

    @rule(who=st.sampled_from(PARTIES))
    def command(self, who: Party) -> None:
        before = len(self.log)
        admitted = self.o.admits(who)
        # Nobody holding control: a surgeon claims an open robot, a backup console what
        # lies with the bedside.
        expected = (self.owner == who if self.owner is not None
                    else who.role is (Role.SURGEON if self.open else Role.BACKUP))
        assert admitted == expected
        if admitted and self.owner != who:
            assert len(self.log) == before + 1
            assert self.log[-1].owner == who
            self.owner, self.open = who, False
            self.asked.discard(who.session)
        else:
            assert len(self.log) == before

    @rule(who=st.sampled_from(PARTIES))
    def take_over(self, who: Party) -> None:
        if who.role is not Role.BACKUP:
            with pytest.raises(OwnershipError):
                self.o.take_over(who)
            return
        h = self.o.take_over(who)
        assert (h is None) == (self.owner == who)
        if h is not None:  # pressing take-over again keeps the requests made to it
            self.owner, self.open = who, False
            self.asked.clear()

    @rule(who=st.sampled_from(PARTIES))
    def request(self, who: Party) -> None:
        new = self.o.request(who)
        assert new == (self.owner != who and who.session not in self.asked)
        if new:
            self.asked.add(who.session)

    @rule(by=st.sampled_from(PARTIES), to=st.sampled_from(PARTIES))
    def grant(self, by: Party, to: Party) -> None:
        if by.role is not Role.BACKUP or to.session not in self.asked:
            with pytest.raises(OwnershipError):
                self.o.grant(by, to.session)
            return
        h = self.o.grant(by, to.session)
        assert (h.previous, h.owner, h.by) == (self.owner, to, by)
        self.owner, self.open = to, False
        self.asked.discard(to.session)

    @precondition(lambda self: not self.open)
    @rule(who=st.sampled_from(PARTIES))
    def lose(self, who: Party) -> None:
        h = self.o.lose(who.session, "silent")
        assert (h is not None) == (self.owner == who)
        if h is not None:
            self.owner = None
        self.asked.discard(who.session)

    @invariant()
    def exactly_one_console_commands(self) -> None:
        admitted = [p for p in PARTIES if self.o.owner == p]
        assert len(admitted) <= 1
        assert self.o.owner == self.owner
        assert self.o.is_open == self.open
        assert {p.session for p in self.o.requests()} == self.asked

    @invariant()
    def every_handover_is_a_change_with_both_identities(self) -> None:
        for a, b in zip(self.log, self.log[1:], strict=False):
            assert b.previous == a.owner
            assert b.owner != b.previous
        surgeons_in = [h for h in self.log if h.owner is not None
                       and h.owner.role is Role.SURGEON and h.previous is not None]
        assert all(h.by is not None and h.by.role is Role.BACKUP for h in surgeons_in), \
            "a surgeon gets control from someone only by a bedside grant"


OwnershipMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                              deadline=None)
test_ownership_rules_hold_for_any_sequence = OwnershipMachine.TestCase


# ---- with the safety supervisor ------------------------------------------------------

def test_a_bedside_take_over_mid_motion_holds_in_place_and_hands_over_without_a_jump() -> None:
    o, _ = _ownership()
    surgeon, backup = Console(session=ROSSI.session), Console(session=BEDSIDE.session)
    parties = {ROSSI.session: ROSSI, BEDSIDE.session: BEDSIDE}
    r = kinematic_rig(admits=lambda s: o.admits(parties.get(s)))
    r.engage(console=surgeon)
    target = moved(r.tip(), dx=0.03)
    for _ in range(20):  # the surgeon moves the tool towards ``target``
        assert r.servo("psm1", target, console=surgeon).accepted
        r.tick()
    arm = r.robot.arms["psm1"]
    at_take_over = arm.measured_cp().position
    h = o.take_over(BEDSIDE)
    assert h is not None
    r.sup.hold_others(BEDSIDE.session, "control passed to the bedside")
    assert r.state() is SafetyState.HOLD
    assert r.servo("psm1", target, console=surgeon).reason is Reason.WRONG_SESSION
    r.tick(5)
    after = arm.measured_cp().position
    travel = sum((a - b) ** 2 for a, b in zip(after, at_take_over, strict=True)) ** 0.5
    # Held at the setpoint: at most what one servo period at the speed limit allows.
    assert travel <= r.config.max_linear_speed_m_s * 1e-3 + 1e-9
    r.engage(console=backup)
    moving = moved(r.tip(), dz=0.01)
    assert r.servo("psm1", moving, console=backup).accepted
    assert r.state() is SafetyState.ENGAGED
