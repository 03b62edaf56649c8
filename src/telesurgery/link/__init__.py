"""Long-distance links: impairment models, profiles, the emulator proxy, clock sync and the probe.

``ImpairmentModel`` is the pure per-direction model; ``Emulator`` applies it to
real UDP or TCP traffic (run it as ``telesurgery link``, or drive a child with
``EmulatorProcess``); ``load_profile`` reads the built-in or a user's profile.
``ClockSync`` estimates the clock offset between two nodes with an error bound;
``run_probe`` qualifies paths against ``Thresholds`` (GO / NO-GO) with a
``Responder`` (or ``ResponderProcess``) on the far side.
"""

from telesurgery.link.clocksync import ClockSync, Exchange, OffsetEstimate
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
    "ClockSync",
    "Direction",
    "DropReason",
    "Emulator",
    "EmulatorProcess",
    "Exchange",
    "GilbertElliott",
    "Impairment",
    "ImpairmentModel",
    "Locator",
    "OffsetEstimate",
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
