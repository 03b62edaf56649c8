"""The simulated Touch: force limits, workspace, friction, rate and readout; the real
device's adapter without its SDK."""

from __future__ import annotations

import importlib.util
import math

import pytest

from telesurgery.errors import ConfigError
from telesurgery.input.haptic import (
    TOUCH_FRICTION_N,
    TOUCH_LIMITS,
    TOUCH_MASS_KG,
    OpenHapticsDevice,
    SimulatedTouch,
)


def test_a_force_over_the_peak_is_clipped_to_3_3_n_along_its_direction() -> None:
    touch = SimulatedTouch()
    applied = touch.command_force((3.0, 4.0, 0.0))
    assert math.hypot(*applied) == pytest.approx(3.3)
    assert applied[0] / applied[1] == pytest.approx(0.75)
    assert touch.read().force_n == applied
    assert touch.command_force((0.5, 0.0, -0.2)) == pytest.approx((0.5, 0.0, -0.2))


def test_a_force_held_long_falls_to_the_continuous_force_and_a_small_one_stays() -> None:
    touch = SimulatedTouch()
    first = math.hypot(*touch.command_force((0.0, 2.0, 0.0)))
    assert first == pytest.approx(2.0), "a brief peak is allowed"
    held = [math.hypot(*touch.command_force((0.0, 2.0, 0.0))) for _ in range(3000)]
    assert held[-1] == pytest.approx(TOUCH_LIMITS.continuous_force_n)
    assert max(held[2000:]) <= TOUCH_LIMITS.continuous_force_n + 1e-9
    small = SimulatedTouch()
    assert all(math.hypot(*small.command_force((0.8, 0.0, 0.0))) == pytest.approx(0.8)
               for _ in range(5000))


@pytest.mark.parametrize(("axis", "sign"), [(0, 1.0), (1, -1.0), (2, -1.0)])
def test_the_tip_stops_at_the_workspace_walls(axis: int, sign: float) -> None:
    touch = SimulatedTouch()
    push = [0.0, 0.0, 0.0]
    push[axis] = 3.0 * sign
    for _ in range(2000):
        touch.step((push[0], push[1], push[2]))
    wall = TOUCH_LIMITS.workspace_m[axis] / 2.0
    assert touch.exact().position_m[axis] == pytest.approx(sign * wall)
    assert touch.exact().velocity_m_s[axis] == 0.0
    assert abs(touch.read().position_m[axis]) <= wall + TOUCH_LIMITS.resolution_m / 2


def test_friction_holds_the_tip_against_a_small_force_and_lets_a_larger_one_move_it() -> None:
    touch = SimulatedTouch()
    for _ in range(500):
        touch.step((0.2, -0.1, 0.0))  # 0.22 N, under the 0.26 N backdrive friction
    assert touch.exact().position_m == (0.0, 0.0, 0.0)
    touch.command_force((0.2, 0.0, 0.0))  # with the device's own force: 0.4 N in all
    for _ in range(10):
        touch.step((0.2, 0.0, 0.0))
    # 10 ms of (0.4 - 0.26) N on 45 g, less a little viscous friction.
    expected = (0.4 - TOUCH_FRICTION_N) / TOUCH_MASS_KG * 0.010
    assert touch.exact().velocity_m_s[0] == pytest.approx(expected, rel=0.02)


def test_one_step_is_one_servo_period_and_the_readout_is_quantised() -> None:
    touch = SimulatedTouch()
    assert touch.rate_hz == 1000.0
    touch.command_force((1.0, 0.0, 0.0))
    for _ in range(20):
        touch.step((0.0, 0.0, 0.0))
    state = touch.read()
    assert state.t_ns == 20_000_000
    res = TOUCH_LIMITS.resolution_m
    assert state.position_m[0] == pytest.approx(round(touch.exact().position_m[0] / res) * res)
    assert abs(state.position_m[0] - touch.exact().position_m[0]) <= res / 2
    # The velocity is the difference of the last two readings over one period.
    before = state.position_m[0]
    touch.step((0.0, 0.0, 0.0))
    after = touch.read()
    assert after.velocity_m_s[0] == pytest.approx((after.position_m[0] - before) * 1000.0)


@pytest.mark.skipif(importlib.util.find_spec("pyOpenHaptics") is not None,
                    reason="the OpenHaptics wrapper is installed here")
def test_the_real_device_without_its_sdk_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match=r"pip install 'telesurgery\[haptics\]'"):
        OpenHapticsDevice()
