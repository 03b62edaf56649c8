"""The input-device interface: timestamped hand samples (pose, grip, clutch) per arm.

A device drives one or more arms; each ``read`` returns one sample per arm,
stamped with when it was taken. Poses are the surgeon's hand in the console's
view frame, whose axes are the endoscope camera's (x right, y down, z forward
into the scene) [m]; the teleoperation mapping scales and re-anchors them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telesurgery.geometry import Vec3
from telesurgery.types import Pose


@dataclass(frozen=True, slots=True)
class HandSample:
    """One sample of one hand: ``t_ns`` [ns, console clock], ``pose`` [m] in the view frame,
    ``grip`` in [0 closed, 1 open], ``clutch`` pressed, and any buttons held."""

    t_ns: int
    pose: Pose
    grip: float
    clutch: bool
    buttons: frozenset[str] = frozenset()


class InputDevice(ABC):
    """A source of hand samples at ``rate_hz`` [Hz] for the arms in ``arms``."""

    rate_hz: float
    arms: tuple[str, ...]
    auto_reclutch: bool = False
    """True for devices that are not a person (autopilot, replay): after the safety
    supervisor holds an arm they re-clutch by themselves; a person is asked to."""
    displays_force: bool = False
    """True for devices that display the force at the tip (``render_force``): the console
    calls it once per tick for those only."""

    @abstractmethod
    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        """The latest sample for each arm this device drives, at or before ``now_ns``."""

    def feedback(self, arm: str, tip_in_view: Pose, jaw: float) -> None:  # noqa: B027
        """What the surgeon sees of the instrument: tip pose in the view frame [m] and jaw
        opening [rad]. Devices that close a loop on it (the autopilot, a haptic device)
        override this; others ignore it."""

    def foresee(self, arm: str, commanded_in_view: Pose, jaw: float) -> None:  # noqa: B027
        """Where the console has commanded the instrument, as the predictive display draws
        it (its "ghost"): tip pose in the view frame [m] and jaw target [rad], now, ahead of
        the delayed ``feedback``. Called only while the predictive display is on; devices
        that look at it (the surgeon model) override this; others ignore it."""

    def rescale(self, scale: float) -> None:  # noqa: B027
        """The console's motion scale (tool over hand displacement) is now ``scale``, as its
        HUD shows (it follows the delay: ``console.scaling``). Devices that plan the hand's
        motion in the tool's units (the autopilot) take it; others ignore it."""

    def render_force(self, arm: str, force_view_n: Vec3, tip_view_m: Vec3,  # noqa: B027
                     t_ns: int) -> None:
        """The latest state of ``arm`` as the console received it at ``t_ns`` [ns, console
        clock]: the force on the instrument at its tip [N] and the tip's position [m], both
        in the view frame. A device with force feedback (``displays_force``) displays it;
        others ignore it."""

    def report(self) -> dict[str, Any]:
        """What the device has to say at the end of a run (empty for most)."""
        return {}

    def close(self) -> None:  # noqa: B027 - most devices hold nothing
        """Release the device."""
