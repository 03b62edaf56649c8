"""The browser as an input device: keyboard, mouse and gamepad read by the console's page.

The page sends what the surgeon's hands do (``console.web.protocol.HandInput``:
velocities along the view axes, mouse nudges, roll, grip, clutch); this device
integrates them into a virtual hand pose per arm at the teleoperation rate, so
the page's messages go through the same pipeline (clutch, scaling, tremor
filter, camera frame) as every other device.

Presence, as on a surgeon console whose head sensor locks the instruments when
the surgeon looks away: an arm whose page input is older than ``timeout_s``
(the page closed, the tab lost focus, the network stalled) reads as clutched,
so its instrument stays where it is; the page sends its state at least every
100 ms while open. After a hold the surgeon clutches again by hand: this device
is a person (``auto_reclutch`` False). ``hold()`` latches the clutch on every
arm until ``resume()``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from telesurgery.errors import CodecError, CodecReason, ConfigError
from telesurgery.geometry import IDENTITY_QUAT, Quat, quat_mul, quat_normalize, rotvec_to_quat
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.types import Pose

HAND_SPEED_M_S: Final = 0.1
"""Hand speed [m/s] at full deflection (a key held, a stick pushed all the way); the tool
moves at the motion scale times this, 20 mm/s at the default 0.2."""
ROLL_SPEED_RAD_S: Final = 1.0
"""Roll rate [rad/s] at full deflection (not scaled: orientation maps 1:1)."""
NUDGE_M_PER_PX: Final = 0.0005
"""Hand motion per pixel of mouse drag [m/px]."""
WHEEL_M_PER_PX: Final = 0.0001
"""Hand motion along the view axis per pixel of wheel scroll [m/px]."""
DEFAULT_TIMEOUT_S: Final = 0.25
"""Page input older than this [s] reads as a released hand: clutch pressed, no motion."""
MIN_CLUTCH_S: Final = 0.05
"""A clutch press lasts at least this long [s]: a quick tap whose press and release arrive
between two ticks still reaches the safety supervisor (which re-arms a held arm on it)."""
HAND_START_M: Final = (0.0, 0.0, 0.3)
"""Where each virtual hand starts in the view frame [m]; the mapping re-anchors on clutch
release, so only displacements matter."""


@dataclass
class _Hand:
    """One arm's virtual hand (mutable; guarded by the device's lock)."""

    position: list[float] = field(default_factory=lambda: list(HAND_START_M))
    orientation: Quat = IDENTITY_QUAT
    move: tuple[float, float, float] = (0.0, 0.0, 0.0)
    roll: float = 0.0
    grip: float = 1.0
    clutch: bool = False
    clutch_until_ns: int = 0
    input_ns: int | None = None
    read_ns: int | None = None


class WebInputDevice(InputDevice):
    """Hand samples for ``arms`` from the console page's input messages, at ``rate_hz`` [Hz].

    ``apply`` runs on the web server's thread, ``read`` on the teleoperation loop;
    both hold one lock for microseconds. ``inputs`` counts accepted messages,
    ``rejected`` those naming an arm this console does not drive.
    """

    auto_reclutch = False

    def __init__(self, arms: tuple[str, ...], rate_hz: float = 1000.0,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not arms:
            raise ConfigError("the web device needs at least one arm, e.g. ('psm1',)")
        self.arms = arms
        self.rate_hz = rate_hz
        self.timeout_ns = round(timeout_s * 1e9)
        self.min_clutch_ns = round(MIN_CLUTCH_S * 1e9)
        self.inputs = 0
        self.rejected = 0
        self._hands = {arm: _Hand() for arm in arms}
        self._held = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """True while ``hold()`` latches the clutch on every arm."""
        return self._held

    def apply(self, arm: str, move: tuple[float, float, float],
              nudge: tuple[float, float, float], roll: float, grip: float, clutch: bool,
              now_ns: int) -> None:
        """The page's latest reading of the hand on ``arm`` at ``now_ns`` [ns]: velocity
        fractions ``move`` and ``roll`` in [-1, 1], ``nudge`` [px] (x, y drag, z wheel),
        ``grip`` in [0, 1], ``clutch``. Raises ``CodecError`` for an arm not driven here."""
        hand = self._hands.get(arm)
        if hand is None:
            with self._lock:
                self.rejected += 1
            raise CodecError(f"arm {arm!r} is not driven by this console; it drives "
                             f"{', '.join(self.arms)}", CodecReason.BAD_FIELD)
        with self._lock:
            hand.move = move
            hand.roll = roll
            hand.grip = grip
            if clutch and not hand.clutch:
                hand.clutch_until_ns = now_ns + self.min_clutch_ns
            hand.clutch = clutch
            hand.position[0] += nudge[0] * NUDGE_M_PER_PX
            hand.position[1] += nudge[1] * NUDGE_M_PER_PX
            hand.position[2] += nudge[2] * WHEEL_M_PER_PX
            hand.input_ns = now_ns
            self.inputs += 1

    def hold(self) -> None:
        """Latch the clutch on every arm: the instruments stay where they are."""
        self._held = True

    def resume(self) -> None:
        """Release ``hold()``; each arm re-anchors on its tool when its clutch is released."""
        self._held = False

    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        out = {}
        with self._lock:
            held = self._held
            for arm, hand in self._hands.items():
                fresh = hand.input_ns is not None and now_ns - hand.input_ns <= self.timeout_ns
                if fresh and hand.read_ns is not None:
                    dt = max(0, now_ns - hand.read_ns) * 1e-9
                    step = HAND_SPEED_M_S * dt
                    for axis in range(3):
                        hand.position[axis] += hand.move[axis] * step
                    if hand.roll:
                        turn = rotvec_to_quat((0.0, 0.0, hand.roll * ROLL_SPEED_RAD_S * dt))
                        hand.orientation = quat_normalize(quat_mul(turn, hand.orientation))
                hand.read_ns = now_ns
                pose = Pose((hand.position[0], hand.position[1], hand.position[2]),
                            hand.orientation)
                pressed = hand.clutch or now_ns < hand.clutch_until_ns
                out[arm] = HandSample(now_ns, pose, hand.grip,
                                      clutch=held or not fresh or pressed)
        return out

    def hands(self, now_ns: int) -> dict[str, dict[str, object]]:
        """Per arm, for the HUD: ``present`` (fresh page input) and ``clutch`` (as read)."""
        with self._lock:
            return {arm: {"present": h.input_ns is not None
                          and now_ns - h.input_ns <= self.timeout_ns,
                          "clutch": self._held or h.clutch}
                    for arm, h in self._hands.items()}


__all__ = ["DEFAULT_TIMEOUT_S", "HAND_SPEED_M_S", "MIN_CLUTCH_S", "NUDGE_M_PER_PX",
           "ROLL_SPEED_RAD_S", "WHEEL_M_PER_PX", "WebInputDevice"]
