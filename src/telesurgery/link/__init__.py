"""Long-distance links: impairment models, profiles, the emulator proxy, clock sync and the probe.

``ImpairmentModel`` is the pure per-direction model; ``Emulator`` applies it to
real UDP or TCP traffic (run it as ``telesurgery link``, or drive a child with
``EmulatorProcess``); ``load_profile`` reads the built-in or a user's profile.
"""

from telesurgery.link.control import EmulatorProcess, send_control
from telesurgery.link.emulator import Direction, Emulator
from telesurgery.link.impairment import (
    DropReason,
    GilbertElliott,
    Impairment,
    ImpairmentModel,
    Verdict,
)
from telesurgery.link.locator import Locator, precise_loop
from telesurgery.link.profiles import PathSpec, Profile, load_profile, profile_names

__all__ = [
    "Direction",
    "DropReason",
    "Emulator",
    "EmulatorProcess",
    "GilbertElliott",
    "Impairment",
    "ImpairmentModel",
    "Locator",
    "PathSpec",
    "Profile",
    "Verdict",
    "load_profile",
    "precise_loop",
    "profile_names",
    "send_control",
]
