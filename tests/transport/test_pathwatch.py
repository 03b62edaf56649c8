"""Clock sync and path health over real Zenoh paths on loopback (one clock: offset 0)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from telesurgery.clock import now_ns
from telesurgery.config import PathConfig, ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.messages import Status
from telesurgery.transport.dualpath import FirstArrival, MultiPublisher, Paths
from telesurgery.transport.keys import Keys
from telesurgery.transport.pathwatch import (
    CHECK_HZ,
    DOWN_AFTER_MS,
    DOWN_MIN_MS,
    GAP_MARGIN,
    GAP_WINDOWS,
    MIN_GAP_WINDOWS,
    SYNC_HZ,
    Alarm,
    PathWatch,
    SilenceLimit,
    SyncResponder,
)
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import open_session

TIMEOUT_S = 10.0


class Watched:
    """A patient-side watch and a console-side responder over two paths."""

    def __init__(self) -> None:
        ports = {name: free_port() for name in ("a", "b")}
        self.mains = [open_session(ZenohConfig(gossip=False)) for _ in range(2)]
        self.patient = Paths(self.mains[0], [
            PathConfig(name=n, zenoh=ZenohConfig(listen=[f"tcp/127.0.0.1:{p}"]))
            for n, p in ports.items()])
        self.console = Paths(self.mains[1], [
            PathConfig(name=n, zenoh=ZenohConfig(connect=[f"tcp/127.0.0.1:{p}"]))
            for n, p in ports.items()])
        keys = Keys("t")
        self.offsets: list[tuple[int, int]] = []
        self.alarms: list[Alarm] = []
        self.cond = threading.Condition()
        self.arrivals = FirstArrival(self.patient.names)
        self.watch = PathWatch(self.patient, keys, 1, self.arrivals, self._offset,
                               self._alarm)
        self.responder = SyncResponder(self.console, keys, 2)
        self.watch.start()

    def _offset(self, session: int, offset_ns: int) -> None:
        with self.cond:
            self.offsets.append((session, offset_ns))
            self.cond.notify_all()

    def _alarm(self, alarm: Alarm) -> None:
        with self.cond:
            self.alarms.append(alarm)
            self.cond.notify_all()

    def wait(self, what: str, predicate: object) -> None:
        assert callable(predicate)
        with self.cond:
            assert self.cond.wait_for(predicate, TIMEOUT_S), what

    def close(self) -> None:
        self.watch.stop()
        self.responder.close()
        self.console.close()
        self.patient.close()
        for z in self.mains:
            z.close()


@pytest.fixture
def watched() -> Iterator[Watched]:
    w = Watched()
    try:
        yield w
    finally:
        w.close()


def test_offset_on_one_clock_is_zero_within_its_bound(watched: Watched) -> None:
    watched.wait("no offset", lambda: bool(watched.offsets))
    watched.wait("both paths up", lambda: sum(a.up for a in watched.alarms) == 2)
    # Let the minimum-round-trip filter see a few exchanges on each path.
    tick = threading.Event()
    for _ in range(int(TIMEOUT_S / 0.05)):
        if all(st.answered >= 10 for st in watched.watch.state.values()):
            break
        tick.wait(0.05)
    snap = watched.watch.snapshot()
    clock = snap["clock"]
    assert watched.offsets[-1][0] == 2, "the offset is the console session's"
    assert abs(clock["offset_ms"]) <= clock["bound_ms"]
    assert clock["bound_ms"] < 10.0, "loopback round trips are well under 20 ms"
    for name in ("a", "b"):
        p = snap["paths"][name]
        assert p["state"] == "UP"
        assert 0.0 < p["rtt_ms"]["p50"] < 10.0
        # One-way delays measured against the estimate add up to the round trip.
        ways = p["one_way_ms"]
        assert ways["forward"]["p50"] + ways["reverse"]["p50"] == pytest.approx(
            p["rtt_ms"]["p50"], abs=3.0)


def test_a_silent_path_raises_an_alarm_and_the_other_carries_on(watched: Watched) -> None:
    watched.wait("both paths up", lambda: sum(a.up for a in watched.alarms) == 2)
    closed = now_ns()
    watched.console.sessions["a"].close()
    watched.wait("no DOWN alarm", lambda: any(not a.up for a in watched.alarms))
    down = next(a for a in watched.alarms if not a.up)
    assert down.path == "a"
    assert down.paths_up == 1
    snap = watched.watch.snapshot()
    limit_ms = snap["paths"]["a"]["down_after_ms"]
    assert DOWN_MIN_MS <= limit_ms <= DOWN_AFTER_MS
    # The last reply may have come one sync period before the close.
    after_ms = (down.at_ns - closed) * 1e-6
    assert limit_ms - 1000.0 / SYNC_HZ <= after_ms < limit_ms + 1000.0
    assert snap["paths"]["a"]["state"] == "DOWN"
    assert snap["paths"]["b"]["state"] == "UP"
    report = watched.watch.report()
    assert report["paths"]["a"]["outages"] == 1
    assert report["alarms"][-1]["state"] == "DOWN"


MS = 1_000_000


def test_the_silence_limit_follows_the_paths_own_gaps() -> None:
    quiet, jittery = SilenceLimit(), SilenceLimit()
    assert quiet.limit_ns == DOWN_AFTER_MS * MS, "no history: the fixed limit"
    for _ in range(MIN_GAP_WINDOWS):
        quiet.roll(3 * MS, up=True)  # commands at 1 kHz, a scheduling hiccup
        jittery.heard_after(40 * MS)
        jittery.roll(110 * MS, up=True)  # a radio delay spike
    assert quiet.limit_ns == DOWN_MIN_MS * MS, "a quiet path: the floor"
    assert jittery.limit_ns == round(GAP_MARGIN * 110 * MS)
    # An outage (a gap at the fixed limit) or a window while DOWN teaches nothing.
    quiet.roll(5_000 * MS, up=True)
    quiet.roll(150 * MS, up=False)
    assert quiet.limit_ns == DOWN_MIN_MS * MS
    # Old spikes leave the window and the limit comes down again.
    for _ in range(GAP_WINDOWS):
        jittery.roll(20 * MS, up=True)
    assert jittery.limit_ns == DOWN_MIN_MS * MS
    jittery.roll(190 * MS, up=True)
    assert jittery.limit_ns == DOWN_AFTER_MS * MS, "capped"


def test_a_quiet_path_is_called_down_at_its_learnt_limit(watched: Watched) -> None:
    """Commands at 1 kHz on both paths for the limit to learn from, then one path closes:
    the alarm comes within its learnt limit (near the 70 ms floor) and two check periods,
    well before the 200 ms fixed limit."""
    watched.wait("both paths up", lambda: sum(a.up for a in watched.alarms) == 2)
    arrivals = watched.arrivals
    stop = threading.Event()
    key = "t/cmd"
    subs = arrivals.subscribe(watched.patient.sessions, key, lambda _m, _t: None,
                              watched.watch.rejects)
    pub = MultiPublisher(watched.console.sessions, key, Stream.COMMAND, 2)

    def stream() -> None:
        while not stop.wait(0.001):
            pub.put(Status({}))

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    try:
        deadline = now_ns() + int(TIMEOUT_S * 1e9)
        while watched.watch.snapshot()["paths"]["a"]["down_after_ms"] > DOWN_MIN_MS * 1.5:
            assert now_ns() < deadline, "the limit did not learn the quiet path's gaps"
            stop.wait(0.1)
        closed = now_ns()
        watched.console.sessions["a"].close()
        watched.wait("no DOWN alarm", lambda: any(not a.up for a in watched.alarms))
    finally:
        stop.set()
        sender.join(timeout=2.0)
        pub.close()
        for s in subs:
            s.undeclare()
    down = next(a for a in watched.alarms if not a.up)
    assert down.path == "a"
    after_ms = (down.at_ns - closed) * 1e-6
    assert after_ms <= DOWN_MIN_MS * 1.5 + 2 * 1000.0 / CHECK_HZ
