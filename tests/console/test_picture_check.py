"""The console's verdict on the age of the surgeon's picture, with its hysteresis."""

from __future__ import annotations

from telesurgery.console.video import (
    VIDEO_BACK_S,
    VIDEO_FROZEN_MS,
    VIDEO_LATE_MS,
    PictureCheck,
    VideoAge,
    video_age,
)

MS = 1_000_000
T0 = 10**12


def test_the_newest_frame_age_decides_fresh_late_and_frozen() -> None:
    assert video_age(0, T0) is VideoAge.FRESH  # no frame yet: not judged
    assert video_age(T0, T0 + round(VIDEO_LATE_MS) * MS) is VideoAge.FRESH
    assert video_age(T0, T0 + round(VIDEO_LATE_MS + 1) * MS) is VideoAge.LATE
    assert video_age(T0, T0 + round(VIDEO_FROZEN_MS) * MS) is VideoAge.LATE
    assert video_age(T0, T0 + round(VIDEO_FROZEN_MS + 1) * MS) is VideoAge.FROZEN


def test_a_frozen_picture_must_stay_fresh_for_a_while_before_the_hands_drive() -> None:
    check = PictureCheck()
    frozen_at = T0 + round(VIDEO_FROZEN_MS + 1) * MS
    assert check.update(T0, frozen_at) is VideoAge.FROZEN
    # A frame comes, then the picture goes late again: still frozen.
    assert check.update(frozen_at, frozen_at) is VideoAge.FROZEN
    late = frozen_at + round(VIDEO_LATE_MS + 1) * MS
    assert check.update(frozen_at, late) is VideoAge.FROZEN
    # Fresh frames for just under VIDEO_BACK_S: frozen; from then on: fresh.
    back = late
    t = back
    while t - back < VIDEO_BACK_S * 1e9:
        assert check.update(t, t) is VideoAge.FROZEN
        t += 10 * MS
    assert check.update(t, t) is VideoAge.FRESH
    # Without a freeze, late and fresh follow the age at once.
    assert check.update(t, t + round(VIDEO_LATE_MS + 1) * MS) is VideoAge.LATE
    assert check.update(t + 400 * MS, t + 400 * MS) is VideoAge.FRESH
