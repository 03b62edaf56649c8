"""Long-distance links: impairment models, profiles, the emulator proxy and the probe.

``ImpairmentModel`` is the pure per-direction model; ``Emulator`` applies it to
real UDP or TCP traffic (run it as ``telesurgery link``, or drive a child with
``EmulatorProcess``); ``load_profile`` reads the built-in or a user's profile.
``run_probe`` qualifies paths against ``Thresholds`` (GO / NO-GO) with a
``Responder`` (or ``ResponderProcess``) on the far side.
"""

from telesurgery.link.control import EmulatorProcess, ResponderProcess, send_control
from telesurgery.link.emulator import Direction, Emulator
from telesurgery.link.impairment import (
    DropReason,
    GilbertElliott,
    Impairment,
    ImpairmentModel,
    Verdict,
)
from telesurgery.link.locator import Locator, precise_loop
from telesurgery.link.probe import (
    ProbeReport,
    ProbeSettings,
    Responder,
    Thresholds,
    probe_paths,
    run_probe,
)
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
    "ProbeReport",
    "ProbeSettings",
    "Profile",
    "Responder",
    "ResponderProcess",
    "Thresholds",
    "Verdict",
    "load_profile",
    "precise_loop",
    "probe_paths",
    "profile_names",
    "run_probe",
    "send_control",
]
