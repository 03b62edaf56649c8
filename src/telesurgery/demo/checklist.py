"""The demo's own pre-flight checklist: its credential policy and the bedside's word.

The demo has no bedside team to read the list aloud, so its configuration confirms it
(``confirmed_by = "demo"``) and overrides, each with its reason, exactly the items a
demo on one machine cannot meet as asked: the paths are not qualified by ``probe``, and,
as its options say, no bedside console (no ``--backup``), no certificates
(``--insecure``), no recording (no ``--record``) or no video (``--no-video``). Every
other item the patient node checks for itself, and the summary shows each one's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from telesurgery.errors import ConfigError
from telesurgery.patient.checklist import write_confirmation
from telesurgery.security.node import DEMO_POLICY

DEMO_LEAD = "demo"
"""Who confirms the demo's checklist."""


class _Options(Protocol):
    """What of ``DemoOptions`` the checklist reads."""

    @property
    def insecure(self) -> bool: ...
    @property
    def backup(self) -> bool: ...
    @property
    def record(self) -> Path | None: ...
    @property
    def video(self) -> bool: ...


def demo_overrides(opts: _Options) -> dict[str, str]:
    """The items the demo overrides for ``opts``, each with its reason."""
    out = {"link": "demo on one machine: its paths are loopback or emulated, not "
                   "qualified by probe"}
    if not opts.backup:
        out["bedside"] = "demo without --backup: a simulated patient, no bedside console"
    if opts.insecure:
        out["credential"] = "demo --insecure: no certificates, so no licence to check"
    if opts.record is None:
        out["recording"] = "demo without --record: nothing is recorded"
    if not opts.video:
        out["video"] = "demo --no-video: the control loop alone, no endoscope"
    return out


def checklist_args(opts: _Options, workdir: Path) -> list[str]:
    """Write the demo's policy and confirmation into ``workdir``; the patient's flags."""
    confirmation = workdir / "checklist.toml"
    write_confirmation(confirmation, DEMO_LEAD, demo_overrides(opts))
    args = ["--checklist", "--checklist-confirmation", str(confirmation)]
    try:
        if not opts.insecure:
            policy = workdir / "policy.toml"
            policy.write_text(DEMO_POLICY, encoding="utf-8")
            args += ["--policy", str(policy)]
    except OSError as exc:
        raise ConfigError(f"cannot write the demo's checklist in {workdir}: "
                          f"{exc.strerror}; choose a writable --workdir") from exc
    return args
