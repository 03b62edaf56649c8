"""The predictive display: each instrument drawn where the console has commanded it.

Over a long link the picture shows the instruments a round trip late (the command's way
out, the video's way back); the console's own latest command is where they are going. The
page draws that command's tool tip (the "ghost", from ``Teleop.ghost``: the setpoint the
console sent, in the camera frame through the arm's registration) over the delayed video,
with a line to where the latest measured state puts the tip, projected by the endoscope's
intrinsics that the patient publishes with its video (``camera.intrinsics``). As the
tool catches up, the line shrinks to nothing; while the safety supervisor holds or clamps
the arm, the ghost stays ahead and says so. Published predictive displays carried peg
transfer and suturing at delays of up to 900 ms (npj Digital Medicine 2025, DTVA).
"""

from __future__ import annotations

import math
from typing import Any

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.console.teleop import Teleop


def ghost_view(teleop: Teleop, camera: Intrinsics, rtt_ms: float | None) -> dict[str, Any]:
    """Per arm: the ghost's and the measured tip's pixels (u right, v down) [px] in an
    image of ``camera``'s size, the ghost's jaw [rad] and how far [mm] the ghost leads the
    measured tip; ``rtt_ms``: the round trip the picture is late by [ms], if measured."""
    arms: dict[str, Any] = {}
    for arm in teleop.arms:
        ghost, seen = teleop.ghost(arm), teleop.seen(arm)
        if ghost is None or seen is None:
            continue
        pose, jaw = ghost
        at, now = camera.project(pose.position), camera.project(seen.position)
        arms[arm] = {
            "ghost": None if at is None else [round(at[0], 1), round(at[1], 1)],
            "seen": None if now is None else [round(now[0], 1), round(now[1], 1)],
            "jaw": round(jaw, 3),
            "lead_mm": round(math.dist(pose.position, seen.position) * 1e3, 2),
        }
    return {"width": camera.width, "height": camera.height,
            "rtt_ms": None if rtt_ms is None else round(rtt_ms, 1), "arms": arms}


__all__ = ["ghost_view"]
