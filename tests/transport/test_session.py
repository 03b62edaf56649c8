"""Publishers and subscribers over real Zenoh sessions on loopback."""

from __future__ import annotations

import threading

import pytest
import zenoh

from telesurgery.config import ZenohConfig
from telesurgery.errors import CodecReason, TransportError
from telesurgery.messages import JawServoJP, Message, ServoCP, Status
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, open_session, subscribe
from telesurgery.types import Pose
from tests.waiting import wait_until

TIMEOUT_S = 10.0


def _wait_matched(pub: Publisher) -> None:
    # Zenoh propagates the subscriber's declaration asynchronously: poll for it.
    tick = threading.Event()
    for _ in range(int(TIMEOUT_S / 0.01)):
        if pub.matched:
            return
        tick.wait(0.01)
    raise AssertionError(f"no subscriber matched {pub.key}")


def test_messages_arrive_in_order_with_sequence_and_session(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    a, b = zenoh_pair
    keys = Keys("t1")
    got: list[Message] = []
    done = threading.Event()

    def on_msg(msg: Message, _received: int) -> None:
        got.append(msg)
        if len(got) == 50:
            done.set()

    rejects = RejectCounter()
    sub = subscribe(a, keys.servo_cp("psm1"), on_msg, rejects)
    pub = Publisher(b, keys.servo_cp("psm1"), Stream.EVENT, session_id=77)
    _wait_matched(pub)
    for i in range(50):
        pub.put(ServoCP("psm1", Pose((0.001 * i, 0.0, -0.1)), sample_ns=i))
    assert done.wait(TIMEOUT_S)
    assert [m.seq for m in got] == list(range(1, 51))
    assert {m.session for m in got} == {77}
    assert isinstance(got[-1].body, ServoCP)
    assert got[-1].body.pose.position[0] == pytest.approx(0.049)
    assert rejects.total == 0
    sub.undeclare()


def test_undecodable_bytes_are_counted_not_delivered(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    a, b = zenoh_pair
    key = Keys("t2").jaw_servo_jp("psm1")
    got: list[Message] = []
    valid = threading.Event()
    rejects = RejectCounter()

    def on_msg(msg: Message, _received: int) -> None:
        got.append(msg)
        valid.set()

    subscribe(a, key, on_msg, rejects)
    raw = b.declare_publisher(key, reliability=zenoh.Reliability.RELIABLE)
    pub = Publisher(b, key, Stream.EVENT, session_id=1)
    _wait_matched(pub)
    raw.put(b"garbage")
    raw.put(b"TS\x09" + bytes(40))
    pub.put(JawServoJP("psm1", 0.3, 0))
    assert valid.wait(TIMEOUT_S)
    # The valid message may overtake the garbage: two publishers, two priorities.
    tick = threading.Event()
    for _ in range(int(TIMEOUT_S / 0.01)):
        if rejects.total >= 2:
            break
        tick.wait(0.01)
    assert len(got) == 1
    assert rejects.total == 2
    assert rejects.counts == {CodecReason.TRUNCATED: 1, CodecReason.BAD_VERSION: 1}


def test_port_in_use_is_one_clear_error(loopback_endpoint: str) -> None:
    first = open_session(ZenohConfig(listen=[loopback_endpoint], gossip=False))
    try:
        with pytest.raises(TransportError, match="is another node already using the port"):
            open_session(ZenohConfig(listen=[loopback_endpoint], gossip=False))
    finally:
        first.close()


def test_a_handler_failing_on_valid_messages_is_counted_and_logged_once(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session],
        caplog: pytest.LogCaptureFixture) -> None:
    """A STATUS of a shape its reader does not expect (a list where it wants an object)
    must not pour a traceback per message into the log."""
    a, b = zenoh_pair
    key = Keys("t4").status("patient")
    rejects = RejectCounter()
    cv = threading.Condition()
    calls = [0]

    def reader(msg: Message, _received: int) -> None:
        with cv:
            calls[0] += 1
            cv.notify_all()
        assert isinstance(msg.body, Status)
        msg.body.data["state"].upper()  # a list has no .upper(): AttributeError

    subscribe(a, key, reader, rejects)
    pub = Publisher(b, key, Stream.EVENT, session_id=3)
    _wait_matched(pub)
    with caplog.at_level("ERROR", logger="telesurgery.transport.session"):
        for _ in range(20):
            pub.put(Status({"state": ["not", "text"]}))
        with cv:
            assert cv.wait_for(lambda: calls[0] == 20, TIMEOUT_S)
        # The failure is counted right after the handler returns: poll for the last one.
        tick = threading.Event()
        for _ in range(int(TIMEOUT_S / 0.01)):
            if rejects.handler_failures == 20:
                break
            tick.wait(0.01)
    assert rejects.handler_failures == 20
    failures = [r for r in caplog.records if "failed on Status" in r.getMessage()]
    assert len(failures) == 1
    assert rejects.total == 0


def test_an_on_demand_publisher_is_wanted_only_while_someone_subscribes(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    a, b = zenoh_pair
    key = Keys("t4").measured_js("psm1")
    pub = Publisher(b, key, Stream.STATE, session_id=5, on_demand=True)
    always = Publisher(b, Keys("t4").measured_cf("psm1"), Stream.STATE, session_id=5)
    try:
        assert not pub.wanted
        assert always.wanted
        # Not sent while nobody listens, but numbered: numbers keep counting ticks.
        pub.skip()
        assert pub.seq == 1
        got: list[Message] = []
        sub = subscribe(a, key, lambda msg, _t: got.append(msg), RejectCounter())
        wait_until(lambda: pub.wanted, "the subscriber to be matched", TIMEOUT_S)
        pub.put(Status({"n": 1}))
        wait_until(lambda: len(got) == 1, "the message", TIMEOUT_S)
        assert got[0].seq == 2
        sub.undeclare()
        wait_until(lambda: not pub.wanted, "the subscriber to be gone", TIMEOUT_S)
    finally:
        pub.close()
        always.close()


def test_telemetry_the_codec_refuses_is_counted_and_the_next_goes_out(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    a, b = zenoh_pair
    key = Keys("t5").status("patient")
    got: list[Message] = []
    sub = subscribe(a, key, lambda m, _r: got.append(m), RejectCounter())
    pub = Publisher(b, key, Stream.STATUS, session_id=5)
    _wait_matched(pub)
    # A figure that came out not finite: JSON cannot carry it, so the codec refuses it.
    assert pub.offer(Status({"rtt_ms": float("nan")})) is None
    assert pub.refused[CodecReason.BAD_BODY] == 1
    sent = pub.offer(Status({"rtt_ms": 1.5}))
    assert sent is not None
    wait_until(lambda: len(got) == 1, "the next status", TIMEOUT_S)
    assert isinstance(got[0].body, Status)
    assert got[0].body.data == {"rtt_ms": 1.5}
    sub.undeclare()
