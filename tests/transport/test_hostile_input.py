"""Hostile bytes, sent as an attacker would: every one is counted by a fixed reason and
logged at most once per reason, escaped and cut short; none ends in a traceback.

A real patient node (the real ``PatientNode``, simulated robot, plain TCP: the bytes are
refused by the decoder before any security check, so a node on mutual TLS sees the same
when a compromised router sends them) is sent a STATUS nested 5,000 levels deep on its
command key; a ``RejectCounter`` is fed 10,000 fuzzed messages through the real decoder.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import zenoh

from telesurgery.config import SecurityConfig, ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.errors import CodecError, CodecReason, TransportError
from telesurgery.messages import (
    ControlAction,
    ControlRequest,
    JawServoJP,
    Message,
    SafetyCause,
    SafetyEvent,
    ServoCP,
    Status,
)
from telesurgery.patient.node import PatientNode
from telesurgery.transport.codec import decode, encode
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    MAX_LOGGED_CHARS,
    RejectCounter,
    declare_publisher,
    matching,
    open_session,
    subscribe,
)
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState

from ..serving import patient_config, serving
from ..waiting import wait_until

SESSION = "hostile"
KEYS = Keys(SESSION)
WAIT_S = 60.0
SESSION_LOG = "telesurgery.transport.session"
BOMB = b"TS\x02\x07" + bytes(26) + (5000).to_bytes(2, "little") + b"[" * 5000
"""A STATUS message whose 5 kB body opens 5,000 JSON arrays."""
BOMBS = 20


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    wait_until(predicate, what, timeout_s)


def _rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == SESSION_LOG and "rejected undecodable" in r.getMessage()]


def _one_safe_line(record: logging.LogRecord) -> str:
    line = record.getMessage()
    assert record.exc_info is None, "a rejection is one line, not a traceback"
    assert "\n" not in line
    assert line.isascii()
    assert line.isprintable(), line
    # The fixed words, the key (at most 80) and the detail (at most MAX_LOGGED_CHARS).
    assert len(line) <= 120 + 80 + MAX_LOGGED_CHARS + 20, line
    return line


@dataclass
class Statuses:
    """The patient node's published statuses."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    def on_status(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            self.seen.append(msg.body.data)


@pytest.fixture
def patient() -> Iterator[tuple[PatientNode, zenoh.Session]]:
    """A patient node serving in this process, and a client session connected to it."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cfg = patient_config(SESSION, endpoint, SecurityConfig(insecure=True))
    with serving(cfg, "patient-under-attack") as (node, check):
        sessions: list[zenoh.Session] = []
        try:
            def connected() -> bool:
                check()
                try:
                    sessions.append(open_session(ZenohConfig(
                        mode="client", connect=[endpoint], gossip=False)))
                except TransportError:
                    return False
                return True

            _wait(connected, "the patient node to listen")
            yield node, sessions[0]
        finally:
            for z in sessions:
                z.close()


def test_a_nesting_bomb_on_a_command_key_is_counted_and_logged_once(
        patient: tuple[PatientNode, zenoh.Session], caplog: pytest.LogCaptureFixture) -> None:
    node, z = patient
    caplog.set_level(logging.WARNING)
    statuses = Statuses()
    subscribe(z, KEYS.status("patient"), statuses.on_status, RejectCounter())
    pub = declare_publisher(z, KEYS.servo_cp("psm1"), Stream.EVENT)
    _wait(lambda: matching(pub), "the patient's command subscriber")
    before = node.rejects.total
    for _ in range(BOMBS):
        pub.put(BOMB)
    _wait(lambda: node.rejects.counts[CodecReason.BAD_BODY] >= BOMBS, "the bombs counted")
    assert node.rejects.total - before == BOMBS
    # The node's public status carries the count.
    _wait(lambda: any(s.get("undecodable", 0) >= BOMBS for s in statuses.seen),
          "a patient status that counts the bombs")
    pub.undeclare()
    logged = _rejections(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    line = _one_safe_line(logged[0])
    assert "(bad_body;" in line
    assert "nested too deep to parse" in line
    assert not [r for r in caplog.records if r.exc_info is not None or "Recursion" in
                r.getMessage()], "no traceback, no RecursionError in any log"


def _valid_messages() -> list[bytes]:
    pose = Pose((0.01, -0.02, -0.1))
    return [encode(m) for m in (
        Message(1, 2, 3, ServoCP("psm1", pose, 4, True)),
        Message(1, 2, 3, JawServoJP("psm2", 0.5, 4)),
        Message(1, 2, 3, SafetyEvent(SafetyState.HOLD, SafetyState.ENGAGED,
                                     OperatingState.ENABLED, SafetyCause.WATCHDOG, "watchdog",
                                     "psm1", ArmMode.FOLLOWING, ArmMode.HELD)),
        Message(1, 2, 3, Status({"a": [1, {"b": "c"}]})),
        Message(1, 2, 3, ControlRequest(ControlAction.GRANT, "backup", 7)),
    )]


def _fuzzed(rng: random.Random, valid: list[bytes]) -> bytes:
    """Random bytes, a STATUS nested at random depth, or a valid message flipped, cut,
    grown or given a random header."""
    how = rng.randrange(6)
    if how == 0:
        return rng.randbytes(rng.randrange(80))
    if how == 5:
        depth = rng.randrange(1, 3000)
        body = b"[" * depth + b"]" * rng.choice((0, depth))
        return b"TS\x02\x07" + bytes(26) + len(body).to_bytes(2, "little") + body
    raw = bytearray(rng.choice(valid))
    if how == 1:
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    elif how == 2:
        del raw[rng.randrange(len(raw)):]
    elif how == 3:
        raw += rng.randbytes(rng.randrange(1, 40))
    else:
        raw[:4] = rng.randbytes(4)
    return bytes(raw)


def test_fuzzed_bytes_give_a_bounded_set_of_reasons_each_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(9)
    valid = _valid_messages()
    rejects = RejectCounter()
    refused = 0
    # A key an attacker chose (a wildcard subscriber shows it): escapes and all.
    key = "telesurgery/or1/\x1b[31m\n/" + "k" * 500
    for _ in range(10_000):
        try:
            decode(_fuzzed(rng, valid))
        except CodecError as exc:
            refused += 1
            rejects.add(key, exc)
    assert refused > 8_000  # what a fuzzer gets through is not the point here
    assert rejects.total == refused
    assert set(rejects.counts) <= set(CodecReason)
    assert len(rejects.counts) >= 6  # the fuzzer reached most of the decoder
    logged = _rejections(caplog)
    assert len(logged) == len(rejects.counts)
    reasons = set()
    for record in logged:
        line = _one_safe_line(record)
        assert "\\x1b[31m\\n" in line  # the key's control characters, escaped
        found = re.search(r"\((\w+); more of this reason", line)
        assert found, line
        reasons.add(found[1])
    assert reasons == {r.value for r in rejects.counts}
