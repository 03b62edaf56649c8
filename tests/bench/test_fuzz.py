"""``bench fuzz``: bad input through the codec and the supervisor over the MuJoCo robot.

Ten thousand messages from a fixed seed (deterministic: the same run every time), then
the judge itself, on inputs that must fail: a held arm moved behind the supervisor's
back, a codec that raises the wrong error.
"""

from __future__ import annotations

import random

import pytest

from telesurgery.bench import fuzz
from telesurgery.errors import CodecError, CodecReason
from telesurgery.messages import ServoCP
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.transport.codec import encode
from telesurgery.types import ArmMode, Pose


def test_ten_thousand_fuzzed_messages_crash_nothing_and_move_nothing() -> None:
    result = fuzz.bench_fuzz(10_000, seed=0)
    assert result["count"] == 10_000
    assert result["sources"]["structured"] + result["sources"]["mutated"] == 10_000
    assert result["crashes"] == 0, result["crash_examples"]
    assert result["motions"] == 0, result["motion_examples"]
    accounted = result["accounted"]
    assert accounted["messages"]
    assert accounted["commands"]
    assert accounted["supervisor_counters"]
    # Deep enough to matter: the fuzz reaches the supervisor's checks, not only the codec's.
    assert len(result["codec"]["decode_refused"]) >= 6
    assert len(result["supervisor"]["refused_by_reason"]) >= 6
    assert result["supervisor"]["commands"] > 1000


@pytest.fixture
def judge() -> fuzz.HeldSupervisor:
    return fuzz.HeldSupervisor(SimRobot(), fuzz.Tally())


def _servo(judge: fuzz.HeldSupervisor, clutch: bool) -> bytes:
    message = next(m for m in fuzz.seed_messages(judge.robot, judge.sup)
                   if isinstance(m.body, ServoCP) and m.body.clutch is clutch and not m.tag)
    return encode(message)


def test_the_judge_sees_a_held_arm_move(judge: fuzz.HeldSupervisor) -> None:
    # A defect stood in for: the arm is driven behind the supervisor's back.
    arm = judge.robot.arms["psm2"]
    x, y, z = arm.setpoint_cp().position
    arm.servo_cp(Pose((x + 0.005, y, z), arm.setpoint_cp().orientation))
    judge.bytes_in(_servo(judge, clutch=False))
    assert judge.tally.motions == 1
    assert "psm2" in judge.tally.motion_examples[0]["what"]
    # Held again where it went: the next message is judged from there.
    judge.bytes_in(_servo(judge, clutch=False))
    assert judge.tally.motions == 1


def test_the_clutch_cycle_engages_and_the_judge_holds_the_arm_again(
        judge: fuzz.HeldSupervisor) -> None:
    judge.bytes_in(_servo(judge, clutch=True))
    t = judge.tally
    assert (t.accepted, t.engaged, t.motions) == (1, 0, 0)
    assert judge.sup.mode("psm1") is ArmMode.ARMED
    # The real release on the tool, numbered after the clutch: aligned, so it engages.
    judge.bytes_in(_servo(judge, clutch=False))
    assert (t.accepted, t.engaged, t.motions) == (2, 1, 0)
    assert all(judge.sup.mode(a) is ArmMode.HELD for a in judge.robot.arms)


def test_the_judge_counts_an_error_that_is_not_the_codecs_as_a_crash(
        judge: fuzz.HeldSupervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_data: bytes) -> None:
        raise IndexError("a decoder bug")

    monkeypatch.setattr(fuzz, "decode", broken)
    judge.bytes_in(b"TS")
    assert judge.tally.crashes == {"decode": 1}
    assert "IndexError" in judge.tally.crash_examples[0]["what"]

    def refuses(_data: bytes) -> None:
        raise CodecError("short", CodecReason.TRUNCATED)

    monkeypatch.setattr(fuzz, "decode", refuses)
    judge.bytes_in(b"TS")
    assert judge.tally.decode_refused == {"truncated": 1}
    assert judge.tally.fed == 2


def test_mutations_are_reproducible_and_change_the_bytes(judge: fuzz.HeldSupervisor) -> None:
    corpus = [encode(m) for m in fuzz.seed_messages(judge.robot, judge.sup)]
    first = [fuzz.mutate(random.Random(7), c, corpus) for c in corpus]
    again = [fuzz.mutate(random.Random(7), c, corpus) for c in corpus]
    assert first == again
    assert sum(a != b for a, b in zip(first, corpus, strict=True)) >= len(corpus) * 0.9
