"""The clock-offset estimator on synthetic clocks: the true offset stays within its bound."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.clocksync import ClockSync, Exchange

MS = 1_000_000


def _exchange(t0: int, offset: int, forward: int, hold: int, reverse: int) -> Exchange:
    """An exchange on a local clock and a remote clock ``offset`` [ns] ahead."""
    t1 = t0 + forward + offset
    t2 = t1 + hold
    return Exchange(t0, t1, t2, t2 - offset + reverse)


def test_symmetric_path_gives_the_exact_offset() -> None:
    ex = _exchange(1_000, offset=5 * MS, forward=20 * MS, hold=MS, reverse=20 * MS)
    assert ex.offset_ns == 5 * MS
    assert ex.rtt_ns == 40 * MS


@given(offset=st.integers(-10**12, 10**12), forward=st.integers(0, 10**9),
       reverse=st.integers(0, 10**9), hold=st.integers(0, 10**7))
def test_true_offset_is_always_within_the_bound(offset: int, forward: int, reverse: int,
                                                hold: int) -> None:
    sync = ClockSync()
    sync.add(_exchange(10**9, offset, forward, hold, reverse))
    est = sync.estimate()
    assert est is not None
    assert abs(est.offset_ns - offset) <= est.bound_ns


def test_asymmetry_shows_as_offset_error_inside_the_bound() -> None:
    sync = ClockSync()
    sync.add(_exchange(0, offset=0, forward=30 * MS, hold=0, reverse=10 * MS))
    est = sync.estimate()
    assert est is not None
    assert est.offset_ns == 10 * MS
    assert est.bound_ns == 20 * MS
    # The reply left at t2 = 30 ms (remote) and arrived at t3 = 40 ms (local): read as 20 ms.
    assert est.one_way_ns(sent_remote_ns=30 * MS, received_local_ns=40 * MS) == 20 * MS


def test_minimum_round_trip_exchange_wins_under_jitter() -> None:
    rng = random.Random(1)
    offset = -123 * MS
    sync = ClockSync(window=8)
    exchanges = [_exchange(i * 10 * MS, offset, 10 * MS + rng.randrange(5 * MS), 50_000,
                           12 * MS + rng.randrange(5 * MS)) for i in range(8)]
    for ex in exchanges:
        sync.add(ex)
    est = sync.estimate()
    assert est is not None
    best = min(exchanges, key=lambda e: e.rtt_ns)
    assert (est.offset_ns, est.rtt_ns, est.samples) == (best.offset_ns, best.rtt_ns, 8)
    assert abs(est.offset_ns - offset) <= est.bound_ns


def test_window_forgets_old_exchanges() -> None:
    sync = ClockSync(window=2)
    sync.add(_exchange(0, 0, MS, 0, MS))
    sync.add(_exchange(MS * 10, 0, 5 * MS, 0, 5 * MS))
    sync.add(_exchange(MS * 20, 0, 6 * MS, 0, 6 * MS))
    est = sync.estimate()
    assert est is not None
    assert est.rtt_ns == 10 * MS


def test_bound_grows_with_age_at_the_drift_rate() -> None:
    sync = ClockSync(drift_ppm=15.0)
    sync.add(_exchange(0, 0, MS, 0, MS))
    est_now = sync.estimate()
    est_later = sync.estimate(now_ns=2 * MS + 10**9)
    assert est_now is not None
    assert est_later is not None
    assert est_later.bound_ns - est_now.bound_ns == 15_000


def test_no_estimate_before_the_first_exchange() -> None:
    assert ClockSync().estimate() is None


def test_exchange_going_back_in_time_is_refused() -> None:
    with pytest.raises(ValueError, match="back in time"):
        Exchange(10, 5, 4, 20)
