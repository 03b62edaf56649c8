"""What a force sensor at the tool tip reports: the contact wrench and the grip, low-passed.

A real sensor never reports the raw contact force: its own mechanics and its
electronics low-pass it (an ATI Nano17's strain gauges resonate above 7 kHz, and its
controllers filter to a chosen bandwidth), and a simulator's raw contacts jump from
one step to the next as contacts come and go. ``ForceSensor`` passes each channel
through a second-order Butterworth low-pass at ``FORCE_BANDWIDTH_HZ``.
"""

from __future__ import annotations

import math
from typing import Final

FORCE_BANDWIDTH_HZ: Final = 100.0
"""Cut-off [Hz] of the force channel. Our choice: well above the 20 to 30 Hz a hand feels
in kinesthetic force (the rest is tactile vibration), and below half the 500 Hz state
rate at which the forces are published, so published samples do not alias. Its delay
near DC is about 2.3 ms (the filter's group delay, 2 * zeta / omega_c)."""

_QUIET_N: Final = 1e-6
"""Below this [N, N m] on every channel, a filter with no input has settled to zero."""


class ForceSensor:
    """A ``channels``-wide second-order Butterworth low-pass sampled at ``rate_hz`` [Hz].

    ``update`` takes one raw sample per channel and returns the filtered one; while the
    input is all zero and the output has decayed below a micronewton it returns zeros
    without computing, so an instrument touching nothing costs a comparison.
    """

    def __init__(self, channels: int, rate_hz: float,
                 cutoff_hz: float = FORCE_BANDWIDTH_HZ) -> None:
        if not 0.0 < cutoff_hz < rate_hz / 2.0:
            raise ValueError(f"cut-off {cutoff_hz} Hz must lie between 0 and half the "
                             f"sampling rate {rate_hz} Hz")
        # Bilinear transform with the cut-off pre-warped, so it lands where asked.
        k = math.tan(math.pi * cutoff_hz / rate_hz)
        norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
        self._b0 = k * k * norm
        self._a1 = 2.0 * (k * k - 1.0) * norm
        self._a2 = (1.0 - math.sqrt(2.0) * k + k * k) * norm
        self._zeros = (0.0,) * channels
        self._s1 = [0.0] * channels
        self._s2 = [0.0] * channels
        self._out: tuple[float, ...] = self._zeros
        self._quiet = True

    @property
    def value(self) -> tuple[float, ...]:
        """The latest filtered sample."""
        return self._out

    def update(self, raw: tuple[float, ...] | None) -> tuple[float, ...]:
        """Filter one sample (None: all zero) and return the filtered one."""
        if raw is None:
            if self._quiet:
                return self._out
            raw = self._zeros
        b0, a1, a2, s1, s2 = self._b0, self._a1, self._a2, self._s1, self._s2
        out = []
        # Direct form II transposed; b1 = 2 b0 and b2 = b0 for a Butterworth low-pass.
        for i, x in enumerate(raw):
            y = b0 * x + s1[i]
            s1[i] = 2.0 * b0 * x - a1 * y + s2[i]
            s2[i] = b0 * x - a2 * y
            out.append(y)
        self._quiet = raw is self._zeros and all(abs(y) < _QUIET_N for y in out)
        if self._quiet:
            self._s1 = [0.0] * len(s1)
            self._s2 = [0.0] * len(s2)
            self._out = self._zeros
        else:
            self._out = tuple(out)
        return self._out


__all__ = ["FORCE_BANDWIDTH_HZ", "ForceSensor"]
