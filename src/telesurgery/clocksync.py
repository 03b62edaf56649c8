"""Clock offset between two nodes from NTP-style exchanges, with a guaranteed error bound.

One exchange: the local node sends at ``t0`` (its clock), the remote node receives
at ``t1`` and replies at ``t2`` (its clock), the local node receives at ``t3``::

    offset = ((t1 - t0) + (t2 - t3)) / 2      remote clock minus local clock
    rtt    = (t3 - t0) - (t2 - t1)            time on the wire, both ways

If the one-way delays are ``f`` and ``r`` (both >= 0), the estimate is off by
``(f - r) / 2``, so whatever the asymmetry the true offset lies within
``offset +- rtt / 2``. The estimator keeps a window of recent exchanges and uses
the one with the smallest round trip (the least queueing and the tightest
bound, NTP's clock-filter idea); the bound then grows with that exchange's age
at the clocks' frequency tolerance, 15 ppm by default (the tolerance NTP
assumes, RFC 5905). Asymmetry cannot be measured from the two ends: a path of
30 ms one way and 10 ms back reads as 20 ms each way with a 10 ms offset error,
inside the 20 ms bound.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

DEFAULT_WINDOW = 8
"""Exchanges kept for the minimum-round-trip filter (NTP's clock filter keeps 8)."""
DEFAULT_DRIFT_PPM = 15.0
"""Frequency tolerance between the two clocks [ppm] (RFC 5905)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """The four timestamps [ns] of one request/reply: t0, t3 local; t1, t2 remote."""

    t0_ns: int
    t1_ns: int
    t2_ns: int
    t3_ns: int

    def __post_init__(self) -> None:
        if self.t3_ns < self.t0_ns or self.t2_ns < self.t1_ns:
            raise ValueError(
                f"exchange goes back in time (t0={self.t0_ns}, t1={self.t1_ns}, "
                f"t2={self.t2_ns}, t3={self.t3_ns}); stamp t0/t3 and t1/t2 on monotonic clocks"
            )

    @property
    def rtt_ns(self) -> int:
        """Round trip on the wire [ns], without the remote node's holding time."""
        return (self.t3_ns - self.t0_ns) - (self.t2_ns - self.t1_ns)

    @property
    def offset_ns(self) -> int:
        """Estimated remote clock minus local clock [ns]."""
        return ((self.t1_ns - self.t0_ns) + (self.t2_ns - self.t3_ns)) // 2


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """Remote clock minus local clock [ns], true within ``+- bound_ns``."""

    offset_ns: int
    bound_ns: int
    rtt_ns: int
    """Round trip [ns] of the exchange the estimate rests on."""
    at_ns: int
    """Local time [ns] of that exchange's reply."""
    samples: int
    """Exchanges in the window."""

    def to_local(self, remote_ns: int) -> int:
        """A remote timestamp [ns] on the local clock (within ``+- bound_ns``)."""
        return remote_ns - self.offset_ns

    def one_way_ns(self, sent_remote_ns: int, received_local_ns: int) -> int:
        """One-way delay [ns] of a message the remote node stamped at send and we at receipt,
        true within ``+- bound_ns``."""
        return received_local_ns - self.to_local(sent_remote_ns)


class ClockSync:
    """Minimum-round-trip filter over the last ``window`` exchanges."""

    def __init__(self, window: int = DEFAULT_WINDOW,
                 drift_ppm: float = DEFAULT_DRIFT_PPM) -> None:
        if window < 1 or drift_ppm < 0.0:
            raise ValueError("window must be >= 1 and drift_ppm >= 0")
        self._window: collections.deque[Exchange] = collections.deque(maxlen=window)
        self._drift = drift_ppm * 1e-6

    def add(self, exchange: Exchange) -> None:
        """Take one completed exchange."""
        self._window.append(exchange)

    def estimate(self, now_ns: int | None = None) -> OffsetEstimate | None:
        """The current estimate (None before the first exchange); ``now_ns`` [ns, local clock]
        widens the bound by the drift since the exchange used."""
        if not self._window:
            return None
        best = min(self._window, key=lambda e: e.rtt_ns)
        age = max(0, (now_ns if now_ns is not None else best.t3_ns) - best.t3_ns)
        bound = (best.rtt_ns + 1) // 2 + round(self._drift * age)
        return OffsetEstimate(best.offset_ns, bound, best.rtt_ns, best.t3_ns, len(self._window))
