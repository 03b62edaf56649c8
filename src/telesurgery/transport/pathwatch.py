"""Watching the control paths: NTP-style clock sync on each, per-path statistics, alarms.

The patient node (``PathWatch``) sends a ``SyncRequest`` on every path at
``SYNC_HZ``; the console (``SyncResponder``) answers each on the path it came by
with a ``SyncReply``. Each completed exchange feeds that path's
``link.clocksync.ClockSync``; the estimate with the smallest error bound over the
paths becomes the console's clock offset in the safety supervisor (stale-command
age and latency figures).

Accuracy: the offset is exact on a symmetric path; with one-way delays ``f``
(console to patient) and ``r`` (back) it is off by ``(f - r) / 2`` of the exchange
the minimum-round-trip filter keeps (jitter enters the same way, through that
exchange's own two delays), and whatever the asymmetry the true offset lies within
``+- rtt / 2`` of the estimate, the bound reported beside it. Asymmetry cannot be
seen from the two ends, so one-way delays [ms] are reported as measured against
the estimate and inherit its error.

Per path, published on ``telesurgery/<session>/link/<path>/stats`` at ``STATS_HZ``:
round trip (sync exchanges), one-way delay each way, RFC 3550 interarrival jitter
each way, loss (command copies this path missed; sync requests unanswered),
first arrivals and late copies, and when the path was last heard. A path silent
longer than its own limit (``SilenceLimit``: 70 to 200 ms, learnt from the gaps it
showed over the last 10 s) is DOWN: an alarm is logged and published on
``telesurgery/<session>/link/<path>/alarm``, and another when it is back. With
every path down, no command arrives and the supervisor holds at its watchdog.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zenoh

from telesurgery.clock import now_ns, set_normal_thread
from telesurgery.clocksync import ClockSync, Exchange, OffsetEstimate
from telesurgery.messages import Message, Status, SyncReply, SyncRequest
from telesurgery.stats import Samples, summarize
from telesurgery.transport.dualpath import FirstArrival, Paths
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, subscribe

log = logging.getLogger(__name__)

SYNC_HZ = 20.0
"""Sync exchanges per second on each path: one every 50 ms, a few hundred bytes a second."""
STATS_HZ = 4.0
"""Path statistics published per second."""
SYNC_WINDOW = 32
"""Exchanges the minimum-round-trip filter chooses from (1.6 s at 20 Hz): wide enough to
find a quiet exchange under radio jitter, short enough to follow a change of route."""
CHECK_HZ = 40.0
"""Health checks per second: a path's silence is judged every 25 ms (sync requests go at
every other check, statistics at every tenth)."""
DOWN_AFTER_MS = 200.0
"""The longest a path may be silent [ms] before it is DOWN, whatever its history (four
sync periods); the limit too while the path has no history."""
DOWN_MIN_MS = 70.0
"""The shortest silence limit [ms]: above the sync period (50 ms), so that a path carrying
only clock sync (no console streaming) is not called down between two replies."""
GAP_MARGIN = 1.5
"""The silence limit over the longest gap the path showed recently."""
GAP_WINDOW_S = 1.0
"""One window of gap history [s]."""
GAP_WINDOWS = 10
"""Windows remembered (the last 10 s)."""
MIN_GAP_WINDOWS = 3
"""Windows known before the learnt limit replaces ``DOWN_AFTER_MS``."""
REPLY_TIMEOUT_S = 2.0
"""A sync request unanswered this long [s] counts as lost."""
LIVE_EXCHANGES = 40
"""Exchanges behind the live figures (the last 2 s)."""
LOSS_WINDOW = 9
"""Statistics ticks behind the live loss figure (2 s at 4 Hz; the numbers it covers were
judged a second after they arrived)."""
_JITTER_GAIN = 1.0 / 16.0  # RFC 3550, section 6.4.1


class SilenceLimit:
    """How long one path may be silent before it is DOWN [ns], learnt from the path.

    One fixed limit is slow on a quiet path or noisy on a jittery one. On the
    rome-beijing profile the fibre path's copies come a few milliseconds apart at most,
    while the 5G path's delay spikes (one-way p99 158 ms against 56 ms typical) leave
    gaps of over 100 ms with nothing lost. So the limit is ``GAP_MARGIN`` times the
    longest gap the path showed in any of its last ``GAP_WINDOWS`` windows, kept within
    [``DOWN_MIN_MS``, ``DOWN_AFTER_MS``], as TCP's retransmission timer follows the
    measured round trip instead of a constant (RFC 6298). A window whose longest gap
    reached ``DOWN_AFTER_MS`` held an outage, not jitter, and teaches nothing; until
    ``MIN_GAP_WINDOWS`` windows are known the limit is ``DOWN_AFTER_MS``.
    """

    def __init__(self) -> None:
        self._windows: collections.deque[int] = collections.deque(maxlen=GAP_WINDOWS)
        self._gap_ns = 0

    def heard_after(self, gap_ns: int) -> None:
        """Something came ``gap_ns`` [ns] after the thing before it."""
        self._gap_ns = max(self._gap_ns, gap_ns)

    def roll(self, gap_ns: int, up: bool) -> None:
        """Close a window; ``gap_ns``: its longest gap seen elsewhere (the command copies'),
        ``up``: whether the path was UP (a DOWN window teaches nothing)."""
        gap, self._gap_ns = max(gap_ns, self._gap_ns), 0
        if up and 0 < gap < DOWN_AFTER_MS * 1e6:
            self._windows.append(gap)

    @property
    def limit_ns(self) -> int:
        """The silence [ns] after which the path is DOWN."""
        if len(self._windows) < MIN_GAP_WINDOWS:
            return round(DOWN_AFTER_MS * 1e6)
        learnt = GAP_MARGIN * max(self._windows)
        return round(min(max(learnt, DOWN_MIN_MS * 1e6), DOWN_AFTER_MS * 1e6))


class PathState:
    """One path as the patient sees it: its exchanges, clock filter and health."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer: int | None = None
        """Console session id answering on this path."""
        self.sync = ClockSync(window=SYNC_WINDOW)
        self.pending: dict[int, int] = {}
        """Request seq -> t0 [ns]."""
        self.exchanges: collections.deque[Exchange] = collections.deque(maxlen=LIVE_EXCHANGES)
        self.rtt_ns = Samples()
        self.forward_ns = Samples()
        self.reverse_ns = Samples()
        self.jitter_ns = {"forward": 0.0, "reverse": 0.0}
        self._transit: tuple[int, int] | None = None
        self.answered = 0
        self.unanswered = 0
        self.outcomes: collections.deque[bool] = collections.deque(maxlen=LIVE_EXCHANGES)
        self.last_reply_ns = 0
        self.silence = SilenceLimit()
        self.up: bool | None = None
        """None until first heard."""
        self.outages = 0
        self.down_since_ns = 0
        self.down_ns = 0
        self.judged: collections.deque[tuple[int, int]] = collections.deque(maxlen=LOSS_WINDOW)
        """(missed, judged) command numbers at the last statistics ticks."""

    @property
    def recent_loss(self) -> float:
        """Command copies missed over the last ``LOSS_WINDOW`` ticks, as a fraction."""
        if not self.judged:
            return 0.0
        (m0, j0), (m1, j1) = self.judged[0], self.judged[-1]
        return (m1 - m0) / (j1 - j0) if j1 > j0 else 0.0

    def add(self, ex: Exchange, session: int) -> None:
        """Take one completed exchange from console ``session``."""
        if session != self.peer:
            # A new console (or a restarted one): its clock is not the old one's.
            self.peer = session
            self.sync = ClockSync(window=SYNC_WINDOW)
            self._transit = None
        self.sync.add(ex)
        self.exchanges.append(ex)
        self.rtt_ns.add(ex.rtt_ns)
        self.answered += 1
        self.outcomes.append(True)
        self.last_reply_ns = ex.t3_ns
        # Relative transit times: the clock offset cancels in their differences.
        transit = (ex.t3_ns - ex.t2_ns, ex.t1_ns - ex.t0_ns)
        if self._transit is not None:
            for i, direction in enumerate(("forward", "reverse")):
                d = abs(transit[i] - self._transit[i])
                self.jitter_ns[direction] += (d - self.jitter_ns[direction]) * _JITTER_GAIN
        self._transit = transit

    def expire(self, before_ns: int) -> None:
        """Count requests sent before ``before_ns`` [ns] and still unanswered as lost."""
        for seq, t0 in list(self.pending.items()):
            if t0 < before_ns:
                del self.pending[seq]
                self.unanswered += 1
                self.outcomes.append(False)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A path lost or back."""

    path: str
    up: bool
    reason: str
    paths_up: int
    at_ns: int
    silent_ms: float | None = None
    """DOWN: how long the path had been silent when it was called down [ms] (the time
    from a cut to the alarm adds what was in flight on the path)."""
    limit_ms: float | None = None
    """DOWN: the path's silence limit then (``SilenceLimit``) [ms]."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"path": self.path, "state": "UP" if self.up else "DOWN",
                "reason": self.reason, "paths_up": self.paths_up, "at_ns": self.at_ns,
                "silent_ms": self.silent_ms, "limit_ms": self.limit_ms}


@dataclass
class _Round:
    """Effective round trip: the first reply of each round of requests [ns]."""

    answered: set[int] = field(default_factory=set)
    rtt_ns: Samples = field(default_factory=Samples)


class PathWatch:
    """The patient's side: sync requests, statistics and alarms for every path.

    ``arrivals``: the command streams' first-arrival counters (loss, last heard);
    ``on_offset(console_session, offset_ns)``: called with local = console + offset
    [ns] whenever the best estimate changes (``Supervisor.set_clock_offset``);
    ``on_alarm``: called with each alarm (after it is logged and published).
    """

    def __init__(self, paths: Paths, keys: Keys, session_id: int, arrivals: FirstArrival,
                 on_offset: Callable[[int, int], None],
                 on_alarm: Callable[[Alarm], None] | None = None) -> None:
        self._paths = paths
        self._keys = keys
        self._session_id = session_id
        self._arrivals = arrivals
        self._on_offset = on_offset
        self._on_alarm = on_alarm
        self.rejects = RejectCounter()
        self.state = {name: PathState(name) for name in paths.names}
        self.alarms: list[Alarm] = []
        self.bad_replies = 0
        self._round = _Round()
        self._requests: dict[str, Publisher] = {}
        self._stats: dict[str, Publisher] = {}
        self._alarm_pubs: dict[str, Publisher] = {}
        self._subs: list[zenoh.Subscriber[None]] = []
        self._offset: tuple[int, int] | None = None
        self._best: tuple[str, OffsetEstimate] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe to the replies and start the sync/statistics thread."""
        keys, sid, main = self._keys, self._session_id, self._paths.main
        for name, z in self._paths.sessions.items():
            self._requests[name] = Publisher(z, keys.link_sync_request(name), Stream.COMMAND,
                                             sid)
            self._subs.append(subscribe(z, keys.link_sync_reply(name), self._reply_handler(name),
                                        self.rejects))
            self._stats[name] = Publisher(main, keys.link_stats(name), Stream.STATUS, sid)
            self._alarm_pubs[name] = Publisher(main, keys.link_alarm(name), Stream.EVENT, sid)
        self._thread = threading.Thread(target=self._run, name="path-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and undeclare everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for s in self._subs:
            s.undeclare()
        for pub in (*self._requests.values(), *self._stats.values(),
                    *self._alarm_pubs.values()):
            pub.close()
        self._subs.clear()

    # ---- replies (Zenoh threads) -----------------------------------------------------

    def _reply_handler(self, path: str) -> Callable[[Message, int], None]:
        def on_reply(msg: Message, received_ns: int) -> None:
            if isinstance(msg.body, SyncReply):
                self.reply(path, msg, msg.body, received_ns)

        return on_reply

    def reply(self, path: str, msg: Message, body: SyncReply, received_ns: int) -> None:
        """Take the reply ``msg`` that arrived on ``path`` at ``received_ns`` [ns]."""
        st = self.state[path]
        with self._lock:
            t0 = st.pending.pop(body.request_seq, None)
            if t0 is None or t0 != body.t0_ns or body.path != path:
                # Not ours, answered twice, too late, or it crossed over from another path.
                self.bad_replies += 1
                return
            try:
                ex = Exchange(t0, body.t1_ns, msg.sent_ns, received_ns)
            except ValueError:
                self.bad_replies += 1
                return
            heard = max(st.last_reply_ns, self._arrivals.last_heard_ns(path))
            if heard:
                st.silence.heard_after(received_ns - heard)
            st.add(ex, msg.session)
            if body.request_seq not in self._round.answered:
                self._round.answered.add(body.request_seq)
                self._round.rtt_ns.add(ex.rtt_ns)
            update = self._update_offset(msg.session, received_ns)
            if self._best is not None:
                # Against the estimate of the moment, as a receiver measures live.
                f, r = _one_way(ex, self._best[1])
                st.forward_ns.add(f)
                st.reverse_ns.add(r)
        if update is not None:
            self._on_offset(*update)

    def _update_offset(self, session: int, now: int) -> tuple[int, int] | None:
        """The best estimate over the paths answered by ``session``; the supervisor's new
        offset (local minus console) if it changed."""
        best: tuple[str, OffsetEstimate] | None = None
        for name, st in self.state.items():
            if st.peer != session:
                continue
            est = st.sync.estimate(now)
            if est is not None and (best is None or est.bound_ns < best[1].bound_ns):
                best = (name, est)
        if best is None:
            return None
        self._best = best
        offset = (session, -best[1].offset_ns)
        if offset == self._offset:
            return None
        self._offset = offset
        return offset

    # ---- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        # Percentiles and publishing are bulk work; send times are stamped as requests
        # leave and replies are taken on Zenoh's threads, so no real-time priority is due.
        set_normal_thread()
        period_ns = round(1e9 / CHECK_HZ)
        sync_every = round(CHECK_HZ / SYNC_HZ)
        stats_every = round(CHECK_HZ / STATS_HZ)
        roll_every = round(CHECK_HZ * GAP_WINDOW_S)
        tick = 0
        next_ns = now_ns()
        while not self._stop.is_set():
            self._tick(sync=tick % sync_every == 0, publish=tick % stats_every == 0,
                       roll=tick % roll_every == roll_every - 1)
            tick += 1
            next_ns += period_ns
            self._stop.wait(max(0.0, (next_ns - now_ns()) * 1e-9))

    def _tick(self, *, sync: bool, publish: bool, roll: bool) -> None:
        now = now_ns()
        if sync:
            for name, pub in self._requests.items():
                st = self.state[name]
                with self._lock:
                    msg = pub.put(SyncRequest(name))
                    st.pending[msg.seq] = msg.sent_ns
                    st.expire(now - round(REPLY_TIMEOUT_S * 1e9))
        if roll:
            gaps = {name: self._arrivals.take_gap_ns(name) for name in self.state}
            with self._lock:
                for name, st in self.state.items():
                    st.silence.roll(gaps[name], st.up is True)
        self._check_health(now)
        if publish:
            for name, data in self.snapshot(now, tick=True)["paths"].items():
                self._stats[name].offer(Status(data))

    def _check_health(self, now: int) -> None:
        alarms = []
        with self._lock:
            for name, st in self.state.items():
                heard = max(st.last_reply_ns, self._arrivals.last_heard_ns(name))
                if heard == 0:
                    continue
                limit = st.silence.limit_ns
                up = now - heard <= limit
                if up == st.up:
                    continue
                was, st.up = st.up, up
                silent_ms = limit_ms = None
                if not up:
                    silent_ms, limit_ms = round((now - heard) * 1e-6, 1), round(limit * 1e-6, 1)
                    st.outages += 1
                    st.down_since_ns = now
                    reason = (f"nothing heard for {silent_ms:.0f} ms (its limit: "
                              f"{limit_ms:.0f} ms)")
                elif was is None:
                    reason = "first heard"
                else:
                    st.down_ns += now - st.down_since_ns
                    reason = f"back after {(now - st.down_since_ns) * 1e-9:.2f} s"
                n_up = sum(1 for s in self.state.values() if s.up)
                alarms.append(Alarm(name, up, reason, n_up, now, silent_ms, limit_ms))
        for alarm in alarms:
            self._raise(alarm)

    def _raise(self, alarm: Alarm) -> None:
        if alarm.up:
            log.info("link %s UP: %s (%d of %d paths up)", alarm.path, alarm.reason,
                     alarm.paths_up, len(self.state))
        else:
            level = logging.ERROR if alarm.paths_up == 0 else logging.WARNING
            log.log(level, "link %s DOWN: %s (%d of %d paths up)%s", alarm.path, alarm.reason,
                    alarm.paths_up, len(self.state),
                    "; no command can arrive: the safety supervisor holds at its watchdog"
                    if alarm.paths_up == 0 else "")
        self.alarms.append(alarm)
        self._alarm_pubs[alarm.path].put(Status(alarm.as_dict()))
        if self._on_alarm is not None:
            self._on_alarm(alarm)

    # ---- figures -------------------------------------------------------------------

    def snapshot(self, now: int | None = None, tick: bool = False) -> dict[str, Any]:
        """Live figures per path (the last ``LIVE_EXCHANGES`` exchanges; ``loss`` over the
        last ``LOSS_WINDOW`` statistics ticks, ``loss_total`` since the start), the clock,
        and the commands delivered, lost and judged so far. ``tick``: a statistics tick
        (it moves the loss window)."""
        now = now_ns() if now is None else now
        counts = self._arrivals.counts(now)
        with self._lock:
            best = self._best
            paths = {}
            for name, st in self.state.items():
                if tick:
                    st.judged.append((counts[name].missed, counts[name].judged))
                heard = max(st.last_reply_ns, counts[name].last_heard_ns)
                rtt, fwd, rev = _live(st, best[1] if best else None)
                outcomes = list(st.outcomes)
                paths[name] = {
                    "path": name,
                    "state": "UP" if st.up else ("DOWN" if st.up is False else "WAITING"),
                    "rtt_ms": rtt,
                    "one_way_ms": {"forward": fwd, "reverse": rev},
                    "jitter_ms": {d: round(v * 1e-6, 3) for d, v in st.jitter_ns.items()},
                    "loss": round(st.recent_loss, 6),
                    "loss_total": round(counts[name].loss, 6),
                    "sync_loss": round(outcomes.count(False) / len(outcomes), 4)
                    if outcomes else 0.0,
                    "first": counts[name].first,
                    "late": counts[name].late,
                    "late_lag_ms": counts[name].lag_ms,
                    "last_heard_ms": round((now - heard) * 1e-6, 1) if heard else None,
                    "down_after_ms": round(st.silence.limit_ns * 1e-6, 1),
                    "outages": st.outages,
                }
        delivered = sum(c.first - c.superseded for c in counts.values())
        return {"paths": paths, "clock": _clock(best),
                "commands": {"delivered": delivered, "lost": self._arrivals.lost,
                             "judged": next(iter(counts.values())).judged}}

    def report(self) -> dict[str, Any]:
        """Figures over the whole run: per path round trip, one-way delays, jitter, loss,
        first arrivals, outages; the effective round trip (first reply of each round)."""
        now = now_ns()
        arrivals = self._arrivals.summary(now)
        with self._lock:
            best = self._best
            paths = {}
            for name, st in self.state.items():
                down_ns = st.down_ns + (now - st.down_since_ns if st.up is False else 0)
                paths[name] = {
                    "rtt_ms": st.rtt_ns.summary(1e-6),
                    "one_way_ms": {"forward": st.forward_ns.summary(1e-6),
                                   "reverse": st.reverse_ns.summary(1e-6)},
                    "jitter_ms": {d: round(v * 1e-6, 3) for d, v in st.jitter_ns.items()},
                    "loss": arrivals["paths"][name]["loss"],
                    "sync": {"answered": st.answered, "unanswered": st.unanswered},
                    "commands": arrivals["paths"][name],
                    "outages": st.outages,
                    "down_s": round(down_ns * 1e-9, 3),
                    "down_after_ms": round(st.silence.limit_ns * 1e-6, 1),
                }
            return {
                "paths": paths,
                "rtt_ms": self._round.rtt_ns.summary(1e-6),
                "clock": _clock(best),
                "commands": {"delivered": arrivals["delivered"], "lost": arrivals["lost"],
                             "judged": arrivals["judged"]},
                "alarms": [a.as_dict() for a in self.alarms],
                "bad_sync_replies": self.bad_replies,
            }


def _one_way(ex: Exchange, est: OffsetEstimate) -> tuple[int, int]:
    """(console -> patient, patient -> console) delay [ns] of ``ex`` against ``est``
    (remote = console, local = patient)."""
    return ex.t3_ns - est.to_local(ex.t2_ns), est.to_local(ex.t1_ns) - ex.t0_ns


def _live(st: PathState, est: OffsetEstimate | None) -> tuple[dict[str, float], ...]:
    exs = list(st.exchanges)
    rtt = summarize(np.array([e.rtt_ns for e in exs], dtype=np.float64), 1e-6)
    if est is None or not exs:
        return rtt, {}, {}
    ways = np.array([_one_way(e, est) for e in exs], dtype=np.float64)
    return rtt, summarize(ways[:, 0], 1e-6), summarize(ways[:, 1], 1e-6)


def _clock(best: tuple[str, OffsetEstimate] | None) -> dict[str, Any]:
    if best is None:
        return {}
    path, est = best
    # Reported as the supervisor uses it: patient clock minus console clock.
    return {"offset_ms": round(-est.offset_ns * 1e-6, 3),
            "bound_ms": round(est.bound_ns * 1e-6, 3), "path": path,
            "rtt_ms": round(est.rtt_ns * 1e-6, 3), "samples": est.samples}


class SyncResponder:
    """The console's side: answers every ``SyncRequest`` on the path it came by while
    ``answering()`` says so (two consoles on one path, the surgeon's and the bedside's,
    must not both answer: the patient would take two clocks' exchanges for one's)."""

    def __init__(self, paths: Paths, keys: Keys, session_id: int,
                 answering: Callable[[], bool] = lambda: True) -> None:
        self.rejects = RejectCounter()
        self._answering = answering
        self.answered = {name: 0 for name in paths.names}
        self._pubs = {name: Publisher(z, keys.link_sync_reply(name), Stream.COMMAND, session_id)
                      for name, z in paths.sessions.items()}
        self._subs = [subscribe(z, keys.link_sync_request(name), self._handler(name),
                                self.rejects)
                      for name, z in paths.sessions.items()]

    def _handler(self, path: str) -> Callable[[Message, int], None]:
        pub = self._pubs[path]

        def on_request(msg: Message, received_ns: int) -> None:
            if isinstance(msg.body, SyncRequest) and self._answering():
                # The reply's own send stamp (t2) is taken as it leaves, after this line.
                pub.put(SyncReply(path, msg.seq, msg.sent_ns, received_ns))
                self.answered[path] += 1

        return on_request

    def close(self) -> None:
        """Stop answering."""
        for s in self._subs:
            s.undeclare()
        for pub in self._pubs.values():
            pub.close()
        self._subs.clear()
