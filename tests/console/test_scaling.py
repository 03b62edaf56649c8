"""Motion scaling that follows the delay: the law, its slew, and the round trip it reads."""

from __future__ import annotations

import math

import pytest

from telesurgery.console.scaling import (
    HALF_SCALE_RTT_MS,
    MIN_FRACTION,
    SLEW_PER_S,
    DelayScaling,
    best_rtt_ms,
    delay_fraction,
)


@pytest.mark.parametrize(("rtt_ms", "fraction"), [
    (None, 1.0), (math.nan, 1.0), (0.0, 1.0), (99.0, 1.0), (250.0, 1.0),
    (500.0, 0.75), (600.0, 0.65), (750.0, 0.5), (5000.0, 0.5),
])
def test_the_law(rtt_ms: float | None, fraction: float) -> None:
    assert delay_fraction(rtt_ms) == pytest.approx(fraction)


def test_the_scale_slews_to_the_law_and_back() -> None:
    s = DelayScaling()
    dt = 0.001
    # A round trip that jumps to a second: from full to half scale in 2 s, not sooner.
    s.rtt_ms = 1000.0
    fractions = [s.update(dt) for _ in range(2500)]
    steps = [abs(b - a) for a, b in zip([1.0, *fractions], fractions, strict=False)]
    assert max(steps) <= SLEW_PER_S * dt + 1e-12
    assert fractions[1899] > MIN_FRACTION
    assert fractions[-1] == pytest.approx(MIN_FRACTION)
    # The link recovers: back to full scale, as slowly.
    s.rtt_ms = 80.0
    for _ in range(2100):
        s.update(dt)
    assert s.fraction == pytest.approx(1.0)


def test_off_it_stays_at_full_scale() -> None:
    s = DelayScaling(enabled=False)
    s.rtt_ms = HALF_SCALE_RTT_MS * 2
    for _ in range(3000):
        s.update(0.001)
    assert s.fraction == 1.0


def test_the_round_trip_is_the_best_path_up() -> None:
    paths = {"fibre": {"state": "UP", "rtt_ms": {"p50": 99.0}},
             "5g": {"state": "UP", "rtt_ms": {"p50": 113.0}},
             "sat": {"state": "DOWN", "rtt_ms": {"p50": 20.0}}}
    assert best_rtt_ms(paths) == 99.0
    assert best_rtt_ms({"a": {"state": "UP", "rtt_ms": {}}}) is None
    assert best_rtt_ms({"a": {"state": "UP", "rtt_ms": {"p50": math.inf}}}) is None
    assert best_rtt_ms({"a": "garbage", "b": {"state": "UP", "rtt_ms": {"p50": True}}}) is None
    assert best_rtt_ms([]) is None
