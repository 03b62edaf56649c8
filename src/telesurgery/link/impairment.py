"""The impairment model of one direction of a path: a pure, seeded function of arrivals.

Given a packet's arrival time [ns] and size [bytes], ``ImpairmentModel.decide``
returns when its copies leave (none when dropped, two when duplicated). It
does no I/O and reads no clock, so the same seed and arrivals always give
the same releases; the emulator wraps it with sockets.

Stages, in the order a packet meets them::

    cut / scheduled outage -> loss (random, then Gilbert-Elliott) -> bandwidth queue
    (tail drop) -> one-way delay + jitter -> order (no reordering unless allowed)
    -> duplication (the copy goes through the queue and delay again)

Reliable streams (TCP) are never dropped: a lost chunk is retransmitted one
round trip later (modelled as ``2 * delay_ms`` of extra delay, which holds up
everything behind it, as TCP's in-order delivery does), a chunk that arrives
during an outage leaves when the outage ends, the queue has no tail drop (the
emulator applies back-pressure instead) and there is neither reordering nor
duplication. A manual cut on a reliable stream is the caller's job: it holds
the data until the restore.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import random
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GilbertElliott(_Spec):
    """Two-state bursty loss: a Markov chain stepped once per packet.

    With ``loss_bad = 1`` and ``loss_good = 0`` the mean loss is
    ``p_enter_bad / (p_enter_bad + p_leave_bad)`` and the mean burst length is
    ``1 / p_leave_bad`` packets.
    """

    p_enter_bad: Probability
    """Probability of going from the good to the bad state at a packet."""
    p_leave_bad: Annotated[float, Field(gt=0.0, le=1.0)]
    """Probability of going from the bad to the good state at a packet."""
    loss_bad: Probability = 1.0
    """Probability that a packet is lost in the bad state."""
    loss_good: Probability = 0.0
    """Probability that a packet is lost in the good state."""

    @property
    def mean_loss(self) -> float:
        """Long-run fraction of packets lost by this chain alone."""
        bad = self.p_enter_bad / (self.p_enter_bad + self.p_leave_bad)
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good


class Impairment(_Spec):
    """What one direction of a path does to packets; the defaults do nothing."""

    delay_ms: NonNegative = 0.0
    """One-way delay [ms] added to every packet."""
    jitter_ms: NonNegative = 0.0
    """Standard deviation [ms] of a normal variation of the delay (never below zero delay)."""
    jitter_correlation_ms: NonNegative = 0.0
    """Time constant [ms] of the jitter (an Ornstein-Uhlenbeck process); 0 draws each packet
    independently. Radio and queueing jitter drifts rather than jumps, so profiles set it."""
    reorder: bool = False
    """Let a packet overtake an earlier one when its jitter is smaller; when False a packet never
    leaves before the previous one (so, as behind a FIFO queue, jitter at packet intervals
    shorter than itself also raises the mean delay)."""
    loss: Probability = 0.0
    """Independent (random) loss probability per packet."""
    burst_loss: GilbertElliott | None = None
    """Bursty loss, applied after the random loss."""
    duplicate: Probability = 0.0
    """Probability that a delivered packet is delivered twice."""
    rate_mbit_s: NonNegative = 0.0
    """Bandwidth cap [Mbit/s]; 0 is no cap."""
    queue_ms: Annotated[float, Field(gt=0.0)] = 50.0
    """Bound of the queue in front of the cap, as the time [ms] it takes to drain; packets that
    do not fit are dropped (tail drop). An empty queue always takes one packet."""
    outages: tuple[tuple[NonNegative, NonNegative], ...] = ()
    """Scheduled outages as (start [s], duration [s]) from the start of the emulation."""

    @field_validator("outages")
    @classmethod
    def _sorted(cls, v: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return tuple(sorted(v))


class DropReason(enum.Enum):
    """Why a packet was not delivered."""

    CUT = "cut"
    OUTAGE = "outage"
    LOSS = "loss"
    BURST_LOSS = "burst_loss"
    QUEUE_FULL = "queue_full"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The fate of one packet: its release times [ns] (0, 1 or 2) and, if dropped, why."""

    releases_ns: tuple[int, ...]
    dropped: DropReason | None = None


class ImpairmentModel:
    """The stateful model of one direction; seeded, so its decisions are reproducible.

    ``start_ns`` is the time origin of the scheduled outages. ``reliable`` selects the
    behaviour for byte streams (see the module docstring).
    """

    def __init__(self, spec: Impairment, *, seed: int | None = None, start_ns: int = 0,
                 reliable: bool = False) -> None:
        self.reliable = reliable
        self._rng = random.Random(seed)
        self._start_ns = start_ns
        self.retune(spec)
        self._cut = False
        self._bad = False
        self._link_free_ns = 0
        self._last_release_ns = 0
        self._jitter_state: float | None = None
        self._jitter_at_ns = 0

    def retune(self, spec: Impairment) -> None:
        """Apply ``spec`` from the next packet on; the random stream, the cut, the queue and
        the order of releases carry over, so a retuned direction never releases a packet
        before one it released already (unless ``spec`` allows reordering)."""
        self.spec = spec
        self._outages_ns = tuple(
            (self._start_ns + round(s * NS_PER_S), self._start_ns + round((s + d) * NS_PER_S))
            for s, d in spec.outages
        )
        self._delay_ns = round(spec.delay_ms * NS_PER_MS)
        self._jitter_ns = spec.jitter_ms * NS_PER_MS
        self._tau_ns = spec.jitter_correlation_ms * NS_PER_MS
        self._queue_ns = spec.queue_ms * NS_PER_MS
        self._ns_per_byte = 8e3 / spec.rate_mbit_s if spec.rate_mbit_s > 0.0 else 0.0

    @property
    def delay_ns(self) -> int:
        """The one-way delay [ns] without jitter."""
        return self._delay_ns

    @property
    def cut(self) -> bool:
        """True while the direction is cut by hand."""
        return self._cut

    def set_cut(self, cut: bool) -> None:
        """Cut (True) or restore (False) the direction."""
        self._cut = cut

    def outage_end_ns(self, t_ns: int) -> int | None:
        """End [ns] of the scheduled outage covering ``t_ns``; None outside every outage."""
        for begin, end in self._outages_ns:
            if begin <= t_ns < end:
                return end
        return None

    def is_open(self, t_ns: int) -> bool:
        """True when neither a cut nor a scheduled outage blocks the direction at ``t_ns``."""
        return not self._cut and self.outage_end_ns(t_ns) is None

    def decide(self, arrival_ns: int, size: int) -> Verdict:
        """Decide the fate of a packet of ``size`` [bytes] arriving at ``arrival_ns`` [ns]."""
        t = arrival_ns
        outage_end = self.outage_end_ns(t)
        if self.reliable:
            if outage_end is not None:
                t = outage_end
            extra = 2 * self._delay_ns if self._lost() is not None else 0
            return Verdict((self._through(t, size, extra),))
        if self._cut:
            return Verdict((), DropReason.CUT)
        if outage_end is not None:
            return Verdict((), DropReason.OUTAGE)
        lost = self._lost()
        if lost is not None:
            return Verdict((), lost)
        if self._queue_full(t, size):
            return Verdict((), DropReason.QUEUE_FULL)
        first = self._through(t, size, 0)
        duplicated = self.spec.duplicate > 0.0 and self._rng.random() < self.spec.duplicate
        if duplicated and not self._queue_full(t, size):
            return Verdict((first, self._through(t, size, 0)))
        return Verdict((first,))

    def _lost(self) -> DropReason | None:
        # The chain steps at every packet, whatever the random loss decided, so that its burst
        # statistics do not depend on the random loss.
        lost = self._rng.random() < self.spec.loss if self.spec.loss > 0.0 else False
        ge = self.spec.burst_loss
        burst = False
        if ge is not None:
            if self._bad:
                self._bad = self._rng.random() >= ge.p_leave_bad
            else:
                self._bad = self._rng.random() < ge.p_enter_bad
            p = ge.loss_bad if self._bad else ge.loss_good
            burst = self._rng.random() < p
        if lost:
            return DropReason.LOSS
        if burst:
            return DropReason.BURST_LOSS
        return None

    def _queue_full(self, t: int, size: int) -> bool:
        """True when a copy of ``size`` [bytes] arriving at ``t`` does not fit in the queue."""
        if self._ns_per_byte <= 0.0:
            return False
        backlog = self._link_free_ns - t
        return backlog > 0 and backlog + size * self._ns_per_byte > self._queue_ns

    def _through(self, t: int, size: int, extra_ns: int) -> int:
        """Serialise, delay and order one copy arriving at ``t``; its release [ns]."""
        depart = t
        if self._ns_per_byte > 0.0:
            self._link_free_ns = max(t, self._link_free_ns) + round(size * self._ns_per_byte)
            depart = self._link_free_ns
        release = depart + self._delay_ns + extra_ns + self._jitter(depart)
        if self.reliable or not self.spec.reorder:
            release = max(release, self._last_release_ns)
        self._last_release_ns = max(self._last_release_ns, release)
        return release

    def _jitter(self, t: int) -> int:
        """A jitter sample [ns] at ``t``, clipped so that the delay never goes below zero."""
        if self._jitter_ns <= 0.0:
            return 0
        z = self._rng.gauss(0.0, 1.0)
        prev = self._jitter_state
        if self._tau_ns > 0.0 and prev is not None:
            a = math.exp(-max(0, t - self._jitter_at_ns) / self._tau_ns)
            value = a * prev + self._jitter_ns * math.sqrt(1.0 - a * a) * z
        else:
            value = self._jitter_ns * z
        self._jitter_state = value
        self._jitter_at_ns = t
        return max(round(value), -self._delay_ns)


T = TypeVar("T")


class DelayLine(Generic[T]):
    """One direction of a path inside one process, on the caller's simulated time: a packet
    sent at ``now_ns`` comes out of ``arrived`` at each release time ``model`` decides (none
    when it is lost, two when duplicated), in release order. For benches that run both
    ends of a link in one loop; the emulator does the same with sockets."""

    def __init__(self, model: ImpairmentModel) -> None:
        self.model = model
        self.sent = 0
        self.lost = 0
        self._flight: list[tuple[int, int, T]] = []
        self._order = itertools.count()

    def send(self, now_ns: int, size: int, packet: T) -> None:
        """Send ``packet`` of ``size`` [bytes] at ``now_ns`` [ns]."""
        self.sent += 1
        releases = self.model.decide(now_ns, size).releases_ns
        if not releases:
            self.lost += 1
        for release in releases:
            heapq.heappush(self._flight, (release, next(self._order), packet))

    def arrived(self, now_ns: int) -> list[T]:
        """The packets released by ``now_ns`` [ns], oldest release first."""
        out = []
        while self._flight and self._flight[0][0] <= now_ns:
            out.append(heapq.heappop(self._flight)[2])
        return out
