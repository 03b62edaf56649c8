"""The predictive display's ghost: on the tool when nothing is late, ahead of it by the
commanded motion when the state comes back a round trip late."""

from __future__ import annotations

import collections
from collections.abc import Mapping

import pytest

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.console.ghost import ghost_view
from telesurgery.console.teleop import Teleop
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.types import Pose

SPEED_M_S = 0.1
"""The hand's speed to the right [m/s]; the tool goes 0.2 times as fast."""
REGISTRATION = Pose((0.0, 0.0, 0.12))  # the base 12 cm in front of the camera
START = Pose((0.0, 0.0, 0.0))
CAMERA = Intrinsics.from_fovy(640, 480, 50.0)


class SteadyHand(InputDevice):
    """One hand, engaged, moving right at ``SPEED_M_S``; it remembers what it was shown."""

    def __init__(self) -> None:
        self.arms = ("psm1",)
        self.rate_hz = 1000.0
        self.foreseen: list[Pose] = []

    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        x = SPEED_M_S * now_ns * 1e-9
        return {"psm1": HandSample(now_ns, Pose((x, 0.0, 0.0)), 0.5, now_ns == 0)}

    def foresee(self, arm: str, commanded_in_view: Pose, jaw: float) -> None:
        self.foreseen.append(commanded_in_view)


def _run(delay_ms: int, predictive: bool = True) -> tuple[Teleop, SteadyHand]:
    """One second of teleoperation; the tool follows its commands exactly, and its state
    reaches the console ``delay_ms`` later."""
    hand = SteadyHand()
    teleop = Teleop(hand, predictive=predictive)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", START, 0.0)
    sent: collections.deque[Pose] = collections.deque()
    for ms in range(1000):
        for body in teleop.tick(hand.read(ms * 1_000_000), True):
            if hasattr(body, "pose"):
                sent.append(body.pose)
        if len(sent) > delay_ms:
            teleop.observe("psm1", sent.popleft(), 0.0)
    return teleop, hand


def test_with_nothing_late_the_ghost_is_on_the_tool() -> None:
    teleop, hand = _run(0)
    view = ghost_view(teleop, CAMERA, None)
    arm = view["arms"]["psm1"]
    assert arm["lead_mm"] < 0.05
    assert arm["ghost"] == pytest.approx(arm["seen"], abs=0.5)
    assert (view["width"], view["height"], view["rtt_ms"]) == (640, 480, None)
    assert len(hand.foreseen) > 900  # shown to the device every tick


def test_a_round_trip_late_the_ghost_leads_by_the_commanded_motion() -> None:
    teleop, _ = _run(135)
    view = ghost_view(teleop, CAMERA, 135.0)
    arm = view["arms"]["psm1"]
    # The tool moves at 0.2 x 0.1 m/s: 135 ms of that is 2.7 mm, to the right in the view.
    assert arm["lead_mm"] == pytest.approx(2.7, abs=0.1)
    ghost, seen = teleop.ghost("psm1"), teleop.seen("psm1")
    assert ghost is not None
    assert seen is not None
    assert ghost[0].position[0] - seen.position[0] == pytest.approx(0.0027, abs=1e-4)
    expected = CAMERA.fx * 0.0027 / REGISTRATION.position[2]  # pixels at 12 cm depth
    assert arm["ghost"][0] - arm["seen"][0] == pytest.approx(expected, abs=1.0)
    assert arm["ghost"][1] == pytest.approx(arm["seen"][1], abs=0.5)
    assert view["rtt_ms"] == 135.0


def test_with_the_predictive_display_off_the_device_is_not_shown_it() -> None:
    teleop, hand = _run(0, predictive=False)
    assert hand.foreseen == []
    assert teleop.ghost("psm1") is not None  # the page's toggle is its own
