"""The page as an input device: velocities integrate into hand motion, presence locks, hold."""

from __future__ import annotations

import math

import pytest

from telesurgery.config import ConsoleConfig, WebConfig
from telesurgery.errors import CodecError, ConfigError
from telesurgery.geometry import quat_to_rotvec
from telesurgery.input.registry import make_device
from telesurgery.input.web import (
    HAND_SPEED_M_S,
    MIN_CLUTCH_S,
    NUDGE_M_PER_PX,
    ROLL_SPEED_RAD_S,
    WHEEL_M_PER_PX,
    WebInputDevice,
)

MS = 1_000_000
STILL = (0.0, 0.0, 0.0)


def _device() -> WebInputDevice:
    return WebInputDevice(("psm1", "psm2"), timeout_s=0.25)


def _move(dev: WebInputDevice, now: int, move: tuple[float, float, float] = STILL, *,
          nudge: tuple[float, float, float] = STILL, roll: float = 0.0, grip: float = 1.0,
          clutch: bool = False, arm: str = "psm1") -> None:
    dev.apply(arm, move, nudge, roll, grip, clutch, now)


def test_a_held_key_moves_the_hand_at_the_set_speed_along_its_axis() -> None:
    dev = _device()
    _move(dev, 0, (1.0, 0.0, -0.5))
    start = dev.read(0)["psm1"].pose.position
    for t in range(1, 201):  # 200 ms at 1 kHz, input refreshed every 20 ms
        if t % 20 == 0:
            _move(dev, t * MS, (1.0, 0.0, -0.5))
        sample = dev.read(t * MS)["psm1"]
    end = sample.pose.position
    assert end[0] - start[0] == pytest.approx(0.2 * HAND_SPEED_M_S, rel=1e-6)
    assert end[1] == pytest.approx(start[1])
    assert end[2] - start[2] == pytest.approx(-0.1 * HAND_SPEED_M_S, rel=1e-6)
    assert not sample.clutch
    assert sample.t_ns == 200 * MS


def test_input_older_than_the_timeout_stops_the_hand_and_presses_the_clutch() -> None:
    dev = _device()
    _move(dev, 0, (1.0, 0.0, 0.0))
    dev.read(0)
    moving = dev.read(250 * MS)["psm1"]
    assert not moving.clutch
    stopped_at = moving.pose.position
    later = dev.read(400 * MS)["psm1"]
    assert later.clutch
    assert later.pose.position == stopped_at
    # The arm the page never spoke for is locked from the start.
    assert dev.read(400 * MS)["psm2"].clutch


def test_mouse_and_wheel_nudges_roll_and_grip() -> None:
    dev = _device()
    before = dev.read(0)["psm1"]
    _move(dev, MS, nudge=(10.0, -4.0, 50.0), roll=1.0, grip=0.25)
    dev.read(MS)
    after = dev.read(101 * MS)["psm1"]
    dx, dy, dz = (a - b for a, b in zip(after.pose.position, before.pose.position, strict=True))
    assert (dx, dy, dz) == pytest.approx((10 * NUDGE_M_PER_PX, -4 * NUDGE_M_PER_PX,
                                          50 * WHEEL_M_PER_PX))
    rotvec = quat_to_rotvec(after.pose.orientation)
    assert rotvec[2] == pytest.approx(0.101 * ROLL_SPEED_RAD_S, rel=1e-6)  # reads at 0, 1, 101 ms
    assert math.hypot(rotvec[0], rotvec[1]) < 1e-12
    assert after.grip == 0.25


def test_the_clutch_follows_the_page_and_hold_latches_it_on_every_arm() -> None:
    dev = _device()
    _move(dev, 0, clutch=True)
    _move(dev, 0, arm="psm2")
    assert dev.read(0)["psm1"].clutch
    assert not dev.read(0)["psm2"].clutch
    dev.hold()
    assert dev.held
    _move(dev, MS, (1.0, 0.0, 0.0), arm="psm2")
    assert all(s.clutch for s in dev.read(MS).values())
    dev.resume()
    assert not dev.read(2 * MS)["psm2"].clutch
    assert dev.hands(2 * MS) == {"psm1": {"present": True, "clutch": True},
                                 "psm2": {"present": True, "clutch": False}}


def test_a_quick_clutch_tap_lasts_long_enough_to_be_seen() -> None:
    dev = _device()
    _move(dev, 0)
    dev.read(0)
    # Press and release arrive between two ticks.
    _move(dev, MS + 100, clutch=True)
    _move(dev, MS + 200, clutch=False)
    pressed = [t for t in range(1, 100) if dev.read(t * MS)["psm1"].clutch]
    # Every tick from the first after the press to MIN_CLUTCH_S after it (1.0001 + 50 ms).
    assert pressed == list(range(1, 2 + round(MIN_CLUTCH_S * 1000)))


def test_an_arm_this_console_does_not_drive_is_refused_and_counted() -> None:
    dev = _device()
    with pytest.raises(CodecError, match="'ecm' is not driven by this console"):
        _move(dev, 0, (1.0, 0.0, 0.0), arm="ecm")
    assert dev.rejected == 1
    assert dev.inputs == 0


def test_the_registry_makes_it_from_the_console_config() -> None:
    dev = make_device(ConsoleConfig(device="web", arms=["psm2"], rate_hz=500.0))
    assert isinstance(dev, WebInputDevice)
    assert dev.arms == ("psm2",)
    assert dev.rate_hz == 500.0
    assert not dev.auto_reclutch
    with pytest.raises(ConfigError, match="turn the page on"):
        make_device(ConsoleConfig(device="web", web=WebConfig(enabled=False)))
