"""The console's force bookkeeping: latest force and grip per arm, colour, alarm, unknowns."""

from __future__ import annotations

import math

import pytest

from telesurgery.config import FORCE_CAP_N, ConsoleConfig
from telesurgery.console.forces import (
    NEAR_FRACTION,
    PEAK_WINDOW_S,
    STALE_S,
    ForceBook,
    ForceLevel,
    force_level,
)
from telesurgery.geometry import Vec3
from telesurgery.messages import MeasuredCP
from telesurgery.types import ArmMode, OperatingState, Pose

CAP = 8.0
MS = 1_000_000
WINDOW_NS = int(PEAK_WINDOW_S * 1e9)
HOME = Pose((0.0, 0.0, -0.1), (1.0, 0.0, 0.0, 0.0))


def state(arm: str, force: Vec3, grip: float = 0.0) -> MeasuredCP:
    return MeasuredCP(arm, HOME, HOME, 0.0, 1, 0, OperatingState.ENABLED, ArmMode.FOLLOWING,
                      force, grip)


@pytest.mark.parametrize(
    ("magnitude", "level"),
    [
        (0.0, ForceLevel.OK),
        (NEAR_FRACTION * CAP - 1e-9, ForceLevel.OK),
        (NEAR_FRACTION * CAP, ForceLevel.NEAR),
        (CAP - 1e-9, ForceLevel.NEAR),
        (CAP, ForceLevel.OVER),
        (100.0, ForceLevel.OVER),
        (None, ForceLevel.UNKNOWN),
        (math.nan, ForceLevel.UNKNOWN),
        (math.inf, ForceLevel.UNKNOWN),
    ],
)
def test_green_below_three_quarters_amber_near_red_at_the_cap(
        magnitude: float | None, level: ForceLevel) -> None:
    assert force_level(magnitude, CAP) is level


def test_the_console_cap_defaults_to_the_documented_one() -> None:
    assert ConsoleConfig().force_cap_n == FORCE_CAP_N == 8.0


def test_latest_force_and_grip_per_arm_with_the_alarm_above_the_cap() -> None:
    book = ForceBook(["psm1", "psm2"], CAP)
    t = 10 * WINDOW_NS
    book.observe(state("psm1", (3.0, 4.0, 0.0), grip=1.5), t)
    book.observe(state("psm2", (0.0, 0.0, 9.0), grip=0.25), t)
    book.observe(state("ecm", (0.0, 0.0, 99.0)), t)  # not watched: ignored
    shown = book.snapshot(t + MS)
    assert set(shown) == {"psm1", "psm2"}
    one, two = shown["psm1"], shown["psm2"]
    assert one.force_n == pytest.approx(5.0)
    assert one.grip_n == 1.5
    assert one.level is ForceLevel.OK
    assert two.force_n == pytest.approx(9.0)
    assert two.level is ForceLevel.OVER
    assert book.alarms(shown) == ["force psm2: 9.0 N at or above the cap of 8 N"]
    # The latest wins: psm2 eases off; its peak keeps it red for the window, then green.
    book.observe(state("psm2", (0.0, 0.0, 6.5)), t + 2 * MS)
    assert book.snapshot(t + 3 * MS)["psm2"].level is ForceLevel.OVER
    book.observe(state("psm2", (0.0, 0.0, 6.5)), t + 2 * WINDOW_NS)
    later = book.snapshot(t + 2 * WINDOW_NS + MS)
    book.observe(state("psm2", (0.0, 0.0, 1.0)), t + 3 * WINDOW_NS)
    latest = book.snapshot(t + 3 * WINDOW_NS + MS)
    assert later["psm2"].force_n == pytest.approx(6.5)
    assert later["psm2"].level is ForceLevel.NEAR
    assert latest["psm2"].level is ForceLevel.OK
    assert book.alarms(latest) == []


def test_a_press_shorter_than_the_hud_period_still_turns_the_gauge_red() -> None:
    book = ForceBook(["psm1"], CAP)
    t = 10 * WINDOW_NS
    book.snapshot(t)  # a page read: a window starts
    book.observe(state("psm1", (0.0, 8.5, 0.0)), t + 50 * MS)
    book.observe(state("psm1", (0.0, 2.0, 0.0)), t + 60 * MS)
    shown = book.snapshot(t + WINDOW_NS)["psm1"]
    assert shown.force_n == pytest.approx(2.0)
    assert shown.peak_n == pytest.approx(8.5)
    assert shown.level is ForceLevel.OVER


def test_a_peak_from_long_ago_does_not_alarm_the_first_page() -> None:
    book = ForceBook(["psm1"], CAP)
    book.observe(state("psm1", (20.0, 0.0, 0.0)), 0)
    t = 100 * WINDOW_NS
    book.observe(state("psm1", (1.0, 0.0, 0.0)), t)
    shown = book.snapshot(t + MS)["psm1"]
    assert shown.peak_n == pytest.approx(1.0)
    assert shown.level is ForceLevel.OK


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_force_that_is_not_finite_is_unknown_never_a_number(bad: float) -> None:
    book = ForceBook(["psm1"], CAP)
    t = 10 * WINDOW_NS
    book.observe(state("psm1", (bad, 0.0, 0.0), grip=bad), t)
    book.register("psm1", HOME)
    shown = book.snapshot(t + MS)["psm1"]
    assert (shown.force_n, shown.peak_n, shown.view_n, shown.grip_n) == (None,) * 4
    assert shown.level is ForceLevel.UNKNOWN
    assert shown.as_dict() == {"force_n": None, "peak_n": None, "view_n": None,
                               "grip_n": None, "level": "unknown"}
    assert book.alarms({"psm1": shown}) == []


def test_a_force_not_refreshed_is_unknown_and_nothing_received_is_unknown() -> None:
    book = ForceBook(["psm1", "psm2"], CAP)
    book.observe(state("psm1", (9.0, 0.0, 0.0)), 0)
    shown = book.snapshot(int(STALE_S * 1e9) + MS)
    assert shown["psm1"].level is ForceLevel.UNKNOWN
    assert shown["psm1"].force_n is None
    assert shown["psm2"].level is ForceLevel.UNKNOWN


def test_the_direction_is_shown_in_the_view_frame_through_the_registration() -> None:
    book = ForceBook(["psm1"], CAP)
    t = 10 * WINDOW_NS
    book.observe(state("psm1", (1.0, 0.0, 0.0)), t)
    assert book.snapshot(t + MS)["psm1"].view_n is None  # no registration yet
    # The base frame turned a quarter turn about the camera's z: base x is view y (down).
    s = math.sqrt(0.5)
    book.register("psm1", Pose((0.0, 0.0, 0.2), (s, 0.0, 0.0, s)))
    view = book.snapshot(t + 2 * MS)["psm1"].view_n
    assert view is not None
    assert view == pytest.approx((0.0, 1.0, 0.0), abs=1e-12)
    assert book.snapshot(t + 3 * MS)["psm1"].as_dict()["view_n"] == [0.0, 1.0, 0.0]
