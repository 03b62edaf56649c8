"""Which safety transitions the surgeon's page shows as alarms: read from fields, not words."""

from __future__ import annotations

import pytest

from telesurgery.console.display import _is_alarm
from telesurgery.messages import SafetyCause, SafetyEvent
from telesurgery.types import ArmMode, OperatingState, SafetyState

E, H, ON = SafetyState.ENGAGED, SafetyState.HOLD, OperatingState.ENABLED


@pytest.mark.parametrize(
    ("event", "alarm"),
    [
        (SafetyEvent(SafetyState.ESTOP, E, ON, SafetyCause.ESTOP, "button"), True),
        (SafetyEvent(H, E, ON, SafetyCause.WATCHDOG, "quiet", "psm1", ArmMode.FOLLOWING,
                     ArmMode.HELD), True),
        # One arm held while the other still follows: the supervisor stays ENGAGED.
        (SafetyEvent(E, E, ON, SafetyCause.WATCHDOG, "quiet", "psm2", ArmMode.FOLLOWING,
                     ArmMode.HELD), True),
        (SafetyEvent(H, H, ON, SafetyCause.CLUTCH_PRESSED, "clutch", "psm1", ArmMode.HELD,
                     ArmMode.ARMED), False),
        (SafetyEvent(E, H, ON, SafetyCause.ALIGNED_ENGAGE, "aligned", "psm1", ArmMode.ARMED,
                     ArmMode.FOLLOWING), False),
        # Words that once marked a hold do not make one.
        (SafetyEvent(E, E, ON, SafetyCause.CLUTCH_PRESSED, "x -> held", "psm1",
                     ArmMode.FOLLOWING, ArmMode.CLUTCHED), False),
    ],
)
def test_alarms_are_holds_and_stops(event: SafetyEvent, alarm: bool) -> None:
    assert _is_alarm(event) is alarm


def test_an_arm_comes_with_both_modes_or_none() -> None:
    with pytest.raises(ValueError, match="both its modes"):
        SafetyEvent(H, E, ON, SafetyCause.WATCHDOG, "quiet", "psm1")
