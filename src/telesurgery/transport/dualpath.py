"""Dual-path transport: every control message on each path, the first copy to arrive wins.

A node reaches its peer over one or more *paths*, each an independent Zenoh session
over its own endpoint pair (fibre and 5G at once in the Rome-Beijing operation);
``Paths`` opens them. With no path configured the node's main session is its one
path, ``direct``, as on one machine.

Senders use ``MultiPublisher``: a message is stamped once (session id, sequence
number, send time), encoded once, and the same bytes leave on every path.
Receivers use ``FirstArrival``: per stream (key and sender session) the first copy
of a sequence number is delivered, whichever path brings it; a copy of a number
that another path already brought is a *late copy*, counted for its path and
dropped. A second copy on the *same* path is not redundancy but a duplicate (a
network or sender fault), so it is delivered and the safety supervisor rejects it
as DUPLICATE exactly as it would on one path. A number whose first copy comes after
a newer number that another path delivered is *superseded* and dropped: a faster path
that comes back overtakes the slower one, and the slower one's copies of the numbers
in between are no fault (reordering within one path is, and is delivered for the
supervisor to count as OUT_OF_ORDER). Deduplicating here, where the path
is known, rather than in the supervisor keeps the supervisor path-agnostic and
puts the per-path figures (first arrivals, late copies and how far behind they
run, copies a path missed) with the other link statistics.

A sequence number is judged ``JUDGE_AFTER_S`` after its first copy arrived: a path
that has not brought its copy by then *missed* it (that is the path's loss), and
a number no path brought while later ones arrived is *lost*.
"""

from __future__ import annotations

import collections
import enum
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zenoh

from telesurgery.clock import now_ns
from telesurgery.config import PathConfig, ZenohConfig
from telesurgery.errors import TransportError
from telesurgery.messages import AnyBody, Message
from telesurgery.stats import summarize
from telesurgery.transport.codec import encode
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Gate,
    RejectCounter,
    Security,
    declare_publisher,
    matching,
    subscribe,
    zenoh_config,
)

log = logging.getLogger(__name__)

DIRECT = "direct"
"""The name of the one path when a node has no dedicated paths (its main session)."""
JUDGE_AFTER_S = 1.0
"""A copy more than this [s] behind the first copy of its number counts as missed."""
STREAM_IDLE_NS = 10_000_000_000
"""A sender silent this long [ns] with nothing pending is forgotten."""
_LAG_SAMPLES = 4096


class Paths:
    """The named Zenoh sessions a node reaches its peer over.

    ``configs`` empty: the one path ``direct`` is ``main``. Otherwise one session per
    path (secure given ``security``, unless the path says ``tls = false``), opened with
    gossip off so that no path learns another's endpoints: traffic
    must never cross from one path to the other (or to the main session's routes),
    or cutting a path would cost nothing for the wrong reason.
    """

    def __init__(self, main: zenoh.Session, configs: Sequence[PathConfig],
                 security: Security | None = None) -> None:
        self.main = main
        self.sessions: dict[str, zenoh.Session] = {}
        self.dedicated = bool(configs)
        if not configs:
            self.sessions[DIRECT] = main
            return
        try:
            for cfg in configs:
                self.sessions[cfg.name] = open_path_session(
                    cfg, security if cfg.tls else None)
        except TransportError:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        """Path names, in configuration order."""
        return list(self.sessions)

    def close(self) -> None:
        """Close the dedicated sessions (the main session belongs to the caller)."""
        if self.dedicated:
            for z in self.sessions.values():
                z.close()
        self.sessions.clear()


def open_path_session(cfg: PathConfig, security: Security | None = None) -> zenoh.Session:
    """Open one path's Zenoh session: its own endpoints only, no gossip, quick reconnects
    (secure given ``security``)."""
    zc = zenoh_config(ZenohConfig(**{**cfg.zenoh.model_dump(), "gossip": False}), security)
    try:
        return zenoh.open(zc)
    except zenoh.ZError as exc:
        first = str(exc).split(" at ", 1)[0]
        raise TransportError(
            f"cannot open Zenoh session of path {cfg.name!r} (listen "
            f"{cfg.zenoh.listen or 'none'}, connect {cfg.zenoh.connect or 'none'}): {first}; "
            "is another node already using the port?"
        ) from exc


class MultiPublisher:
    """Publishes codec bodies on one key over every path: one stamp, one encoding, the
    same sequence number everywhere (numbered 1, 2, ...).

    ``seal`` turns each message into its bytes: ``encode``, or ``security.tags.seal``
    under a command key for commands that carry an authentication tag.
    """

    def __init__(self, sessions: Mapping[str, zenoh.Session], key: str, stream: Stream,
                 session_id: int, seal: Callable[[Message], bytes] = encode) -> None:
        self.key = key
        self._seal = seal
        self._session_id = session_id
        self._seq = 0
        self._lock = threading.Lock()
        self._pubs = {name: declare_publisher(z, key, stream) for name, z in sessions.items()}
        self.errors = dict.fromkeys(self._pubs, 0)
        """Puts that failed, per path."""

    @property
    def seq(self) -> int:
        """Sequence number of the last message put."""
        return self._seq

    def matched_paths(self) -> list[str]:
        """The paths on which at least one subscriber matches this key now."""
        return [name for name, pub in self._pubs.items() if matching(pub)]

    @property
    def matched(self) -> bool:
        """True while some path has a subscriber: commands then reach the peer (a path
        that comes up a moment later joins without a gap)."""
        return bool(self.matched_paths())

    def put(self, body: AnyBody) -> Message:
        """Stamp ``body`` with the next sequence number and the send time; publish it on
        every path."""
        with self._lock:
            self._seq += 1
            msg = Message(self._session_id, self._seq, now_ns(), body)
            data = self._seal(msg)
            for name, pub in self._pubs.items():
                try:
                    pub.put(data)
                except zenoh.ZError as exc:
                    # One path failing must not keep the message off the others.
                    self.errors[name] += 1
                    if self.errors[name] == 1:
                        log.warning("cannot publish %s on path %s: %s; further failures are "
                                    "counted", self.key, name, exc)
        return msg

    def close(self) -> None:
        """Undeclare every path's publisher."""
        for pub in self._pubs.values():
            pub.undeclare()
        self._pubs.clear()


class Arrival(enum.Enum):
    """What ``FirstArrival.offer`` made of one copy."""

    FIRST = "first"
    """The first copy of its number: delivered."""
    LATE = "late"
    """Another path brought this number first: dropped."""
    DUPLICATE = "duplicate"
    """This path brought this number twice: delivered (the receiver rejects it)."""
    OLD = "old"
    """Older than what is judged already (or, for latest-value streams, than the newest
    delivered): dropped. A copy that comes more than ``JUDGE_AFTER_S`` late (a path back
    from a long cut delivering its backlog) would only be rejected by the supervisor."""
    SUPERSEDED = "superseded"
    """The first copy of its number, but another path already delivered a newer number:
    dropped. When a faster path comes back it overtakes the slower one, whose copies of
    the numbers in between arrive after a newer command; the supervisor would reject them
    as out of order, yet nothing is wrong with either path."""


@dataclass(frozen=True, slots=True)
class PathCounts:
    """What one path brought so far; ``missed`` of ``judged`` numbers is its loss."""

    first: int
    late: int
    duplicate: int
    old: int
    superseded: int
    missed: int
    judged: int
    last_heard_ns: int
    """When the path last brought anything [ns, local clock]; 0: never."""
    lag_ms: dict[str, float]
    """How far behind the first copy this path's late copies ran [ms] (recent ones)."""

    @property
    def loss(self) -> float:
        """Fraction of the judged numbers this path never brought."""
        return self.missed / self.judged if self.judged else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {"first": self.first, "late": self.late, "duplicate": self.duplicate,
                "old": self.old, "superseded": self.superseded, "missed": self.missed,
                "judged": self.judged,
                "loss": round(self.loss, 6), "lag_ms": self.lag_ms}


class _PathTally:
    __slots__ = ("duplicate", "first", "gap_ns", "lag_ns", "last_ns", "late", "missed", "old",
                 "superseded")

    def __init__(self) -> None:
        self.first = self.late = self.duplicate = self.old = self.missed = 0
        self.superseded = 0
        self.last_ns = 0
        self.gap_ns = 0
        """The longest silence between two copies since ``take_gap_ns`` last asked [ns]."""
        self.lag_ns: collections.deque[int] = collections.deque(maxlen=_LAG_SAMPLES)


class _Stream:
    """One sender's sequence numbers on one key: numbers in flight and what is judged."""

    __slots__ = ("judged_top", "last_ns", "pending", "top", "top_path")

    def __init__(self, seq: int, received_ns: int) -> None:
        self.top = seq - 1
        """Highest number seen."""
        self.top_path = ""
        """The path that brought it."""
        self.judged_top = seq - 1
        """Highest number judged; everything up to it is settled."""
        self.last_ns = received_ns
        """When a copy last came [ns]."""
        self.pending: dict[int, tuple[int, int]] = {}
        """seq -> (bit mask of the paths that brought it, first arrival [ns]), in order of
        first arrival (which is number order unless a path reorders)."""


Deliver = Callable[[Message, int], None]


def _path_gate(gate: Callable[[str, bytes, Message], bool], path: str) -> Gate:
    return functools.partial(gate, path)


class FirstArrival:
    """First-arrival delivery over ``paths`` with per-path counters (thread-safe).

    ``latest_only``: for latest-value streams (state): anything not newer than the
    newest delivered number is dropped instead of delivered.

    One of three sequence checks on a command (after ``security.tags.ReplayWindow``,
    before ``safety.checks.check_sequence``); only this one knows the paths, so only it
    tells redundancy (the same number on another path) and a superseded slower path
    from a fault, drops them and counts them per path.
    """

    def __init__(self, paths: Sequence[str], *, latest_only: bool = False,
                 judge_after_s: float = JUDGE_AFTER_S) -> None:
        self._bits = {p: 1 << i for i, p in enumerate(paths)}
        self._tally = {p: _PathTally() for p in paths}
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._latest_only = latest_only
        self._judge_ns = round(judge_after_s * 1e9)
        self._judged = 0
        self._lost = 0
        self._lock = threading.Lock()

    @property
    def paths(self) -> list[str]:
        """The paths, in order."""
        return list(self._bits)

    def subscribe(self, sessions: Mapping[str, zenoh.Session], key: str, deliver: Deliver,
                  rejects: RejectCounter,
                  gate: Callable[[str, bytes, Message], bool] | None = None,
                  ) -> list[zenoh.Subscriber[None]]:
        """Subscribe to ``key`` on every path; ``deliver(message, received_ns)`` gets the
        copies ``offer`` lets through, on Zenoh's threads, one at a time.

        ``gate(path, bytes, message)`` judges each copy before it is offered (the
        authentication tag verifier): a forged copy must not count as a path's arrival.
        """
        return [subscribe(z, key, self._handler(path, key, deliver), rejects,
                          None if gate is None else _path_gate(gate, path))
                for path, z in sessions.items()]

    def _handler(self, path: str, key: str, deliver: Deliver) -> Deliver:
        def on_message(msg: Message, received_ns: int) -> None:
            self.offer(path, key, msg, received_ns, deliver)

        return on_message

    def offer(self, path: str, key: str, msg: Message, received_ns: int,
              deliver: Deliver) -> Arrival:
        """Judge one copy of ``msg`` that ``path`` brought at ``received_ns`` [ns]; call
        ``deliver`` if it passes. Delivery happens under this object's lock so that
        copies leave in the order they were judged."""
        bit = self._bits[path]
        tally = self._tally[path]
        seq = msg.seq
        with self._lock:
            if tally.last_ns and received_ns - tally.last_ns > tally.gap_ns:
                tally.gap_ns = received_ns - tally.last_ns
            tally.last_ns = received_ns
            st = self._streams.get((key, msg.session))
            if st is None:
                st = self._streams[(key, msg.session)] = _Stream(seq, received_ns)
            st.last_ns = received_ns
            entry = st.pending.get(seq)
            if entry is not None:
                mask, first_ns = entry
                if not mask & bit:
                    st.pending[seq] = (mask | bit, first_ns)
                    tally.late += 1
                    tally.lag_ns.append(received_ns - first_ns)
                    return Arrival.LATE
                tally.duplicate += 1
                verdict = Arrival.DUPLICATE
            elif seq <= st.judged_top:
                tally.old += 1
                verdict = Arrival.OLD
            else:
                st.pending[seq] = (bit, received_ns)
                tally.first += 1
                if seq > st.top:
                    st.top, st.top_path = seq, path
                    verdict = Arrival.FIRST
                elif self._latest_only:
                    verdict = Arrival.OLD
                elif st.top_path != path:
                    tally.superseded += 1
                    verdict = Arrival.SUPERSEDED
                else:
                    # Reordered within one path: a fault the supervisor counts.
                    verdict = Arrival.FIRST
                self._judge(st, received_ns - self._judge_ns)
            if verdict is Arrival.FIRST or (
                    verdict is Arrival.DUPLICATE and not self._latest_only):
                deliver(msg, received_ns)
            return verdict

    def _judge(self, st: _Stream, before_ns: int | None) -> None:
        """Settle the numbers whose first copy came before ``before_ns`` (None: all)."""
        pending = st.pending
        while pending:
            seq = next(iter(pending))
            mask, first_ns = pending[seq]
            if before_ns is not None and first_ns > before_ns:
                break
            del pending[seq]
            gap = seq - st.judged_top - 1
            if gap > 0:
                # Numbers skipped on the way here that are not still pending (a path may
                # have reordered them) never came on any path.
                holes = gap - sum(1 for s in pending if st.judged_top < s < seq)
                self._lost += holes
                self._judged += holes
                for t in self._tally.values():
                    t.missed += holes
            st.judged_top = max(st.judged_top, seq)
            self._judged += 1
            for path, b in self._bits.items():
                if not mask & b:
                    self._tally[path].missed += 1

    def counts(self, now: int | None = None, lag: bool = True) -> dict[str, PathCounts]:
        """Per-path counters, after judging what is due at ``now`` [ns] (default: now);
        ``lag``: with the late copies' lag percentiles (which cost tens of microseconds)."""
        limit = (now_ns() if now is None else now) - self._judge_ns
        with self._lock:
            for k, st in list(self._streams.items()):
                self._judge(st, limit)
                if not st.pending and st.last_ns < limit - STREAM_IDLE_NS:
                    del self._streams[k]  # a sender gone for good (a console restarted)
            judged = self._judged
            return {
                path: PathCounts(t.first, t.late, t.duplicate, t.old, t.superseded, t.missed,
                                 judged,
                                 t.last_ns,
                                 summarize(np.array(t.lag_ns, dtype=np.float64), 1e-6)
                                 if lag else {})
                for path, t in self._tally.items()
            }

    def last_heard_ns(self, path: str) -> int:
        """When ``path`` last brought a copy [ns]; 0: never."""
        return self._tally[path].last_ns

    def take_gap_ns(self, path: str) -> int:
        """The longest silence between two copies on ``path`` since the last call [ns]
        (0: fewer than two copies came); the count starts again."""
        tally = self._tally[path]
        with self._lock:
            gap, tally.gap_ns = tally.gap_ns, 0
        return gap

    @property
    def lost(self) -> int:
        """Judged numbers that no path brought (while later numbers arrived)."""
        with self._lock:
            return self._lost

    def summary(self, now: int | None = None, lag: bool = True) -> dict[str, Any]:
        """Counters as JSON-ready values: ``delivered`` (first arrivals, less the
        superseded), ``lost``, ``judged``, and each path's counts."""
        counts = self.counts(now, lag)
        with self._lock:
            lost, judged = self._lost, self._judged
        return {"delivered": sum(c.first - c.superseded for c in counts.values()), "lost": lost,
                "judged": judged, "paths": {p: c.as_dict() for p, c in counts.items()}}
