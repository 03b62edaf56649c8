"""Replay pins each released pose command to the anchor interval it was applied in."""

from __future__ import annotations

import numpy as np

from telesurgery.record.replay import _Anchors, _pin


def _anchors(rows: list[tuple[int, int, bool]]) -> _Anchors:
    ticks, applied, following = zip(*rows, strict=True)
    return _Anchors(np.array(ticks, dtype=np.int64), np.array(applied, dtype=np.int64),
                    np.array(following, dtype=bool))


def _pinned(seq: int, estimate: int, anchors: _Anchors) -> int:
    return int(_pin(np.array([seq], dtype=np.int64), np.array([estimate], dtype=np.int64),
                    anchors)[0])


def test_a_command_moves_into_the_interval_that_applied_it() -> None:
    a = _anchors([(10, 5, True), (12, 6, True), (14, 7, True)])
    assert _pinned(6, 30, a) == 12  # arrived no later than the anchor that tracks it
    assert _pinned(6, 2, a) == 11  # and after the one that still tracked an older one
    assert _pinned(6, 11, a) == 11


def test_a_command_cut_off_by_a_clutch_stays_before_the_pause() -> None:
    # Released command 6 arrived at tick 11, then the clutch: never applied; after the
    # pause the arm follows again (still on 5) and then tracks 30.
    a = _anchors([(10, 5, True), (12, 5, False), (14, 5, False), (16, 5, True),
                  (18, 30, True)])
    assert _pinned(6, 11, a) == 11
    # Without a pause in between, the same anchors do move it.
    b = _anchors([(10, 5, True), (16, 5, True), (18, 30, True)])
    assert _pinned(6, 11, b) == 17
