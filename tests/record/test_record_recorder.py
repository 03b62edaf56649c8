"""The recorder on real Zenoh sessions over loopback: everything of the session, nothing else."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zenoh
from mcap.reader import make_reader

from telesurgery.config import ZenohConfig
from telesurgery.errors import ConfigError
from telesurgery.messages import Message, ServoCP
from telesurgery.record.reader import Recording
from telesurgery.record.recorder import Recorder
from telesurgery.transport.codec import encode
from telesurgery.types import Pose

from ..waiting import wait_until

TIMEOUT_S = 20.0  # generous: a loaded 2-core machine


def wait_for(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, what, TIMEOUT_S)


def reliable_publisher(z: Any, key: str) -> Any:
    """A publisher that neither drops nor reorders, once the recorder's subscription is seen."""
    pub = z.declare_publisher(key, reliability=zenoh.Reliability.RELIABLE,
                              congestion_control=zenoh.CongestionControl.BLOCK)
    wait_for(lambda: bool(pub.matching_status.matching), f"a subscriber matching {key}")
    return pub


def test_records_the_whole_session_key_space_and_nothing_else(
        tmp_path: Path, free_port: int, zenoh_sessions: Callable[[ZenohConfig], Any],
        sample_messages: list[tuple[str, Message]]) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port}"
    nodes = zenoh_sessions(ZenohConfig(mode="peer", listen=[endpoint]))
    rec_z = zenoh_sessions(ZenohConfig(mode="client", connect=[endpoint]))
    recorder = Recorder(rec_z, "or1", tmp_path)
    recorder.start()
    # Another session's traffic does reach the recorder's Zenoh session, and is not recorded.
    or2_seen: list[bytes] = []
    rec_z.declare_subscriber("telesurgery/or2/**", lambda s: or2_seen.append(b"x"))
    pubs = {key: reliable_publisher(nodes, key) for key, _ in sample_messages}
    other = reliable_publisher(nodes, "telesurgery/or2/psm1/servo_cp")
    rounds = 20
    for _ in range(rounds):
        for key, msg in sample_messages:
            pubs[key].put(encode(msg))
        other.put(encode(sample_messages[0][1]))
    pubs["telesurgery/or1/psm1/servo_cp"].put(b"not a message")
    expected = rounds * len(sample_messages) + 1
    wait_for(lambda: recorder.stats.written >= expected, f"{expected} messages written")
    wait_for(lambda: len(or2_seen) == rounds, "the other session's messages")
    stats = recorder.stop()
    assert (stats.received, stats.written, stats.dropped, stats.undecodable) == \
        (expected, expected, 0, 1)

    with open(recorder.path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        counts = Counter(ch.topic for _s, ch, _m in reader.iter_messages())
    assert all(ch.schema_id != 0 for ch in summary.channels.values())
    stats_topic = "telesurgery/or1/recorder/stats"
    assert counts.pop(stats_topic) >= 1
    # The image panel's calibration, one with each video frame (tests/record/test_foxglove.py).
    assert counts.pop("telesurgery/or1/ecm/calibration") == rounds
    assert counts == Counter({**{key: rounds for key, _ in sample_messages},
                              "telesurgery/or1/psm1/servo_cp/_undecodable": 1})
    back = Recording(recorder.path)
    got = [(m.key, m.message) for m in back.messages()]
    assert got == sample_messages * rounds  # reliable publishers: same order per key and here
    last = [r.obj for r in back.json([stats_topic])][-1]
    assert last == stats.as_dict()


def test_a_full_queue_drops_and_counts_instead_of_blocking(
        tmp_path: Path, zenoh_sessions: Callable[[ZenohConfig], Any]) -> None:
    z = zenoh_sessions(ZenohConfig(mode="peer"))
    recorder = Recorder(z, "or1", tmp_path, queue_size=8)
    recorder.start()
    wire = encode(Message(1, 1, 1, ServoCP("psm1", Pose(), 0)))
    offered = 20_000
    accepted = sum(recorder.offer("telesurgery/or1/psm1/servo_cp", wire, i)
                   for i in range(offered))
    stats = recorder.stop()
    assert stats.received == offered
    assert stats.dropped == offered - accepted > 0
    assert stats.written == accepted
    assert stats.queue_peak == 8
    assert sum(1 for _ in Recording(recorder.path).messages()) == accepted


def test_offers_from_many_threads_are_all_written(
        tmp_path: Path, zenoh_sessions: Callable[[ZenohConfig], Any]) -> None:
    z = zenoh_sessions(ZenohConfig(mode="peer"))
    recorder = Recorder(z, "or1", tmp_path)
    recorder.start()

    def produce(arm: str) -> None:
        for i in range(500):
            msg = Message(1, i + 1, i, ServoCP(arm, Pose(), i))
            recorder.offer(f"telesurgery/or1/{arm}/servo_cp", encode(msg), i)

    threads = [threading.Thread(target=produce, args=(f"psm{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), f"{t.name} did not finish offering"
    stats = recorder.stop()
    assert (stats.written, stats.dropped) == (2000, 0)
    per_key = Counter(m.key for m in Recording(recorder.path).messages())
    assert per_key == Counter({f"telesurgery/or1/psm{n}/servo_cp": 500 for n in range(4)})


def test_a_bad_session_name_is_refused_before_anything_is_opened(
        tmp_path: Path, zenoh_sessions: Callable[[ZenohConfig], Any]) -> None:
    z = zenoh_sessions(ZenohConfig(mode="peer"))
    with pytest.raises(ConfigError, match="session 'or/1'"):
        Recorder(z, "or/1", tmp_path)
    assert not tmp_path.joinpath("recording.mcap").exists()
