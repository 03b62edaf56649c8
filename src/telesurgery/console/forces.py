"""The force at each instrument's tip as the surgeon's page shows it: gauge, colour, alarm.

``ForceBook.observe`` runs on Zenoh's receive thread for every ``MeasuredCP`` of the state
bundle (500 Hz per arm): it keeps a reference to the message (its force and grip come with
it; nothing is copied) and raises the arm's running peak magnitude (and its time), one
``math.hypot`` and two comparisons: 0.25 us a call on the 2-core development machine
(timeit), 0.25 ms a second for two arms at 500 Hz. Everything else (staleness, the view
frame, the colour) is worked out by ``ForceBook.snapshot`` at the page's HUD rate (4 Hz).

The colour (``ForceLevel``) follows the highest finite magnitude seen within the last
``PEAK_WINDOW_S`` to ``2 * PEAK_WINDOW_S``, so a press above the cap shorter than the HUD's
period still turns the gauge red and sounds the cue: ``OK`` below ``NEAR_FRACTION`` of the
cap, ``NEAR`` from there, ``OVER`` at or above the cap (``force_level``). A force that is
not finite, or older than ``STALE_S``, is unknown: the page shows it as such, never as a
number. Forces [N]; the tip force is measured in the arm's base frame and shown in the
view (camera) frame through the arm's registration: x right, y down, z into the scene.

Threads: the writer (Zenoh's thread) and the reader (the page's) share no lock. A reader
rotating the peak window may lose the one sample written in between; the sensor is
low-passed at 100 Hz, so the next sample, 2 ms later, carries nearly the same force.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Final

from telesurgery.geometry import Vec3, rotate
from telesurgery.messages import MeasuredCP
from telesurgery.types import Pose

NEAR_FRACTION: Final = 0.75
"""From this fraction of the cap the gauge turns amber (our choice: a quarter of the cap
left to ease off before the alarm)."""
PEAK_WINDOW_S: Final = 0.25
"""The peak the colour follows covers the last one to two of these [s] (the HUD's period)."""
STALE_S: Final = 0.5
"""A force not refreshed for this long [s] is unknown (the state arrives every 2 ms)."""

_INF: Final = math.inf
_NONE: Final = -1.0
"""The peak of a window that saw no finite force."""


class ForceLevel(enum.Enum):
    """The gauge's colour: green, amber, red; grey when the force is unknown."""

    OK = "ok"
    NEAR = "near"
    OVER = "over"
    UNKNOWN = "unknown"


def force_level(magnitude_n: float | None, cap_n: float) -> ForceLevel:
    """The colour of a force of ``magnitude_n`` [N] against ``cap_n`` [N]: ``OVER`` at or
    above the cap, ``NEAR`` from ``NEAR_FRACTION`` of it, ``OK`` below; ``UNKNOWN`` for
    None or a value that is not finite."""
    if magnitude_n is None or not math.isfinite(magnitude_n):
        return ForceLevel.UNKNOWN
    if magnitude_n >= cap_n:
        return ForceLevel.OVER
    if magnitude_n >= NEAR_FRACTION * cap_n:
        return ForceLevel.NEAR
    return ForceLevel.OK


@dataclass(frozen=True, slots=True)
class ArmForce:
    """What the page shows of one arm: the latest tip force's magnitude [N] and its
    direction in the view frame [N] (None: unknown, or no registration yet for the
    direction), the peak magnitude the colour follows [N], the grip [N], the colour."""

    force_n: float | None
    view_n: Vec3 | None
    peak_n: float | None
    grip_n: float | None
    level: ForceLevel

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to what a gauge shows (10 mN)."""
        return {"force_n": _round(self.force_n), "peak_n": _round(self.peak_n),
                "view_n": None if self.view_n is None else [round(v, 2) for v in self.view_n],
                "grip_n": _round(self.grip_n), "level": self.level.value}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


class _Slot:
    """One arm's latest state and the running peak; written by ``observe`` only."""

    __slots__ = ("latest", "peak", "peak_ns", "previous_peak", "received_ns", "window_ns")

    def __init__(self) -> None:
        self.latest: MeasuredCP | None = None
        self.received_ns = 0
        self.peak = _NONE
        self.peak_ns = 0
        self.previous_peak = _NONE
        self.window_ns = 0
        """When [ns] the reader last rotated the peak window."""


class ForceBook:
    """The latest tip force and grip of each of ``arms``, and the colour of each against
    ``cap_n`` [N] (see the module docstring). Arms not named are ignored."""

    def __init__(self, arms: list[str] | tuple[str, ...], cap_n: float) -> None:
        self.cap_n = cap_n
        self._slots = {arm: _Slot() for arm in arms}
        self._registrations: dict[str, Pose] = {}

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms watched, in the given order."""
        return tuple(self._slots)

    def observe(self, state: MeasuredCP, received_ns: int) -> None:
        """The latest ``measured_cp`` of an arm, received at ``received_ns`` [ns, this
        console's clock]. The state-rate path: no allocation, no lock."""
        slot = self._slots.get(state.arm)
        if slot is None:
            return
        slot.latest = state
        slot.received_ns = received_ns
        f = state.force
        m = math.hypot(f[0], f[1], f[2])
        if slot.peak < m < _INF:  # False for NaN
            slot.peak = m
            slot.peak_ns = received_ns

    def register(self, arm: str, base_in_view: Pose) -> None:
        """The registration of ``arm``: its base frame in the camera frame (the direction
        of its force on the page)."""
        if arm in self._slots:
            self._registrations[arm] = base_in_view

    def latest_in_view(self, arm: str) -> tuple[Vec3, Vec3, int] | None:
        """The latest state of ``arm`` as a haptic device renders it: the force at the tip
        [N] and the tip's position [m] in the view frame, and when it was received [ns,
        this console's clock]; None before a state and a registration."""
        slot = self._slots.get(arm)
        registration = self._registrations.get(arm)
        state = None if slot is None else slot.latest
        if slot is None or state is None or registration is None:
            return None
        return (rotate(registration.orientation, state.force),
                registration.compose(state.measured).position, slot.received_ns)

    def snapshot(self, now_ns: int) -> dict[str, ArmForce]:
        """What the page shows of every arm at ``now_ns`` [ns, this console's clock]."""
        return {arm: self._arm(arm, slot, now_ns) for arm, slot in self._slots.items()}

    def hud(self, now_ns: int) -> tuple[dict[str, Any], list[str]]:
        """The page's ``forces`` section at ``now_ns`` (the cap, each arm's ``as_dict``) and
        its alarm lines."""
        forces = self.snapshot(now_ns)
        return ({"cap_n": self.cap_n, "arms": {a: f.as_dict() for a, f in forces.items()}},
                self.alarms(forces))

    def alarms(self, forces: dict[str, ArmForce]) -> list[str]:
        """The arms at or above the cap, in one line each, for the page's alarm list."""
        return [f"force {arm}: {f.peak_n:.1f} N at or above the cap of {self.cap_n:g} N"
                for arm, f in forces.items() if f.level is ForceLevel.OVER
                and f.peak_n is not None]

    def _arm(self, arm: str, slot: _Slot, now_ns: int) -> ArmForce:
        window = PEAK_WINDOW_S * 1e9
        if now_ns - slot.window_ns >= window:
            # After a longer gap (no page open) the running peak may be from long ago.
            recent = now_ns - slot.peak_ns < 2 * window
            slot.previous_peak = slot.peak if recent else _NONE
            slot.peak = _NONE
            slot.window_ns = now_ns
        state = slot.latest
        if state is None or now_ns - slot.received_ns > STALE_S * 1e9:
            return ArmForce(None, None, None, None, ForceLevel.UNKNOWN)
        f = state.force
        magnitude = math.hypot(f[0], f[1], f[2])
        force_n = magnitude if math.isfinite(magnitude) else None
        peak = max(slot.peak, slot.previous_peak, _NONE if force_n is None else force_n)
        peak_n = peak if peak != _NONE else None
        view = None
        registration = self._registrations.get(arm)
        if force_n is not None and registration is not None:
            v = rotate(registration.orientation, f)
            view = v if all(math.isfinite(c) for c in v) else None
        grip_n = state.grip if math.isfinite(state.grip) else None
        return ArmForce(force_n, view, peak_n, grip_n, force_level(peak_n, self.cap_n))


__all__ = ["NEAR_FRACTION", "PEAK_WINDOW_S", "STALE_S", "ArmForce", "ForceBook", "ForceLevel",
           "force_level"]
