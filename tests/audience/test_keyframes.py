"""The gateway asks the patient for keyframes at most once per ``KEY_MIN_INTERVAL_S``,
however many ask: every IDR is a burst in the surgeon's own stream."""

from __future__ import annotations

import itertools

from telesurgery.audience.gateway import KEY_MIN_INTERVAL_S, KeyframeLimiter

MS = 1_000_000


def test_a_burst_of_requests_sends_one() -> None:
    keys = KeyframeLimiter()
    t0 = 10_000 * MS
    # 200 viewers joining within 100 ms, and a resync after a lost frame among them.
    sent = sum(keys.allow(t0 + i * MS // 2) for i in range(200))
    assert sent == 1
    assert keys.refused == 199


def test_at_most_one_per_interval_over_time() -> None:
    keys = KeyframeLimiter()
    interval_ms = round(KEY_MIN_INTERVAL_S * 1e3)
    # Asked every 10 ms for 10 s: one request per interval, the first at once.
    sent = [t for t in range(0, 10_000, 10) if keys.allow(t * MS)]
    assert sent[0] == 0
    assert all(b - a >= interval_ms for a, b in itertools.pairwise(sent))
    assert len(sent) == 10_000 // interval_ms


def test_reset_lets_the_next_go_at_once() -> None:
    keys = KeyframeLimiter()
    assert keys.allow(0)
    assert not keys.allow(MS)
    keys.reset()
    assert keys.allow(2 * MS)
