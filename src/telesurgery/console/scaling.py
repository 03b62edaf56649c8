"""Motion scaling that follows the delay: the longer the round trip, the smaller the motion.

Under delay, a smaller motion scale (less instrument travel per hand travel) cuts errors:
Orosco et al. (Surgical Endoscopy 35:2613-2618, 2021) saw task time and errors rise
significantly at 500 and 750 ms on a dVRK ring transfer, and fewer errors with a lower
motion scale at 750 ms; Richter, Orosco and Yip (ICRA 2019, arXiv:1902.03290) found
lower scaling reduced errors under high delay in a 17-user study. Neither gives one law
for every surgeon (Lim et al., IROS 2025, arXiv:2506.21689, find the best scale differs
per user), so the law here is ours, in the direction they found:

    fraction(RTT) = 1                                 RTT <= 250 ms
                  = 1 - 0.5 (RTT - 250) / (750 - 250)  250 ms < RTT < 750 ms
                  = 0.5                                RTT >= 750 ms

the console's scale times that fraction. 250 ms is where dexterity first suffers in the
delay literature (Kim et al. 2005) and 750 ms the longest delay Orosco et al. tried. The
fraction moves toward its target no faster than ``SLEW_PER_S`` of the scale per second, so
a jump in the measured RTT never jumps the scale; and the mapping applies a new scale to
the hand's motion from then on only (``TeleopMapping``), so the commanded pose never jumps.
"""

from __future__ import annotations

import math
from typing import Final

FULL_SCALE_RTT_MS: Final = 250.0
"""Up to this round trip [ms] the scale is the console's own."""
HALF_SCALE_RTT_MS: Final = 750.0
"""From this round trip [ms] on the scale is ``MIN_FRACTION`` of the console's."""
MIN_FRACTION: Final = 0.5
"""The smallest fraction of the console's scale the delay brings it to."""
SLEW_PER_S: Final = 0.25
"""Fastest change of the fraction per second: from full to half scale in 2 s."""


def delay_fraction(rtt_ms: float | None) -> float:
    """The fraction of the console's motion scale at a round trip of ``rtt_ms`` [ms] (the
    law above); 1 when the round trip is unknown or not finite."""
    if rtt_ms is None or not math.isfinite(rtt_ms) or rtt_ms <= FULL_SCALE_RTT_MS:
        return 1.0
    if rtt_ms >= HALF_SCALE_RTT_MS:
        return MIN_FRACTION
    return 1.0 - (1.0 - MIN_FRACTION) * (rtt_ms - FULL_SCALE_RTT_MS) / (
        HALF_SCALE_RTT_MS - FULL_SCALE_RTT_MS)


def best_rtt_ms(paths: object) -> float | None:
    """The median round trip [ms] of the best path up, from the patient's status (its
    ``link.paths``: per path a ``state`` and an ``rtt_ms`` summary); None when no path is up
    with a finite one. Commands take the first copy to arrive, so the best path is the
    delay the surgeon works with."""
    best: float | None = None
    if isinstance(paths, dict):
        for p in paths.values():
            if not isinstance(p, dict) or p.get("state") != "UP":
                continue
            rtt = p.get("rtt_ms")
            value = rtt.get("p50") if isinstance(rtt, dict) else None
            if (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value) and (best is None or value < best)):
                best = float(value)
    return best


class DelayScaling:
    """The fraction of the console's motion scale now: set ``rtt_ms`` whenever the round
    trip is measured and ``update`` once a tick; off (``enabled`` False), always 1."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.fraction = 1.0
        self.rtt_ms: float | None = None
        """The latest round trip [ms] (None: unknown)."""

    def update(self, dt_s: float) -> float:
        """Move the fraction toward the law's value for ``rtt_ms``, by at most
        ``SLEW_PER_S * dt_s`` [s]; returns it."""
        target = delay_fraction(self.rtt_ms) if self.enabled else 1.0
        step = SLEW_PER_S * dt_s
        self.fraction += min(max(target - self.fraction, -step), step)
        return self.fraction


__all__ = ["FULL_SCALE_RTT_MS", "HALF_SCALE_RTT_MS", "MIN_FRACTION", "SLEW_PER_S",
           "DelayScaling", "best_rtt_ms", "delay_fraction"]
