"""Robot metrics from scripted tip samples."""

from __future__ import annotations

import pytest

from telesurgery.tasks import MotionTracker
from telesurgery.tasks.metrics import HANDOVER_GAP_S, START_M


def test_path_idle_force_and_collisions_from_scripted_samples() -> None:
    t = MotionTracker(force_cap_n=8.0)
    left = (-0.05, 0.0, 0.05)
    # Still for a second (waiting to start: not idle), then psm1 moves 10 cm in 1 s toward
    # psm2, pauses half a second, pressing 9 N, then moves on.
    for k in range(51):
        t.sample(k * 0.02, {"psm1": (0.05, 0.0, 0.05), "psm2": left}, {"psm1": 0.0})
    assert t.started_s is None
    for k in range(1, 51):
        x = 0.05 - 0.1 * k / 50
        t.sample(1.0 + k * 0.02, {"psm1": (x, 0.0, 0.05), "psm2": left}, {"psm1": 0.0})
    assert t.started_s is not None
    assert t.started_s <= 1.0 + START_M / 0.1 + 0.02
    for k in range(1, 26):
        t.sample(2.0 + k * 0.02, {"psm1": (-0.05, 0.0, 0.05), "psm2": left}, {"psm1": 9.0})
    t.sample(2.52, {"psm1": (-0.05, 0.01, 0.05), "psm2": left}, {"psm1": 0.0})
    m = t.metrics(done=2, clutches=3)
    assert m.path_m["psm1"] == pytest.approx(0.11)
    assert m.path_m["psm2"] == 0.0
    assert m.economy_mm == pytest.approx(110.0 / 2)
    assert m.idle_s == pytest.approx(0.5)
    assert m.over_force_s == pytest.approx(0.5)
    assert m.collisions == 1  # the tips met once and stayed together
    assert m.clutches == 3
    assert t.metrics(done=0).economy_mm is None


def test_a_handover_is_one_window_and_the_motion_in_it() -> None:
    t = MotionTracker(force_cap_n=8.0)
    t.handover(0.0, False, (0.0, 0.0, 0.03))
    for k in range(5):
        t.handover(1.0 + 0.02 * k, True, (0.001 * k, 0.0, 0.03))
    # A brush of the leaving jaw shorter than the gap: the same handover.
    t.handover(1.1, False, (0.004, 0.0, 0.03))
    t.handover(1.12, True, (0.005, 0.0, 0.03))
    t.handover(1.14, False, (0.005, 0.0, 0.03))
    assert t.handing_over
    t.handover(1.15 + HANDOVER_GAP_S, False, (0.05, 0.0, 0.03))
    (h,) = t.metrics(done=1).handovers
    assert (h.start_s, h.duration_s) == pytest.approx((1.0, 0.14))
    assert h.motion_mm == pytest.approx(5.0)
