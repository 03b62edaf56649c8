"""``demo --record DIR``: a recorder process on the site router, and the patient's audit trail;
``demo --foxglove [PORT]``: the same process serving the session live to Foxglove.

The recorder is its own process (``telesurgery record``), a Zenoh client of the
demo's router: it costs the 1 kHz nodes nothing but the router's copy of each
message, and a stall in its writing never reaches them. It starts first, and
the demo waits for its liveliness token, so the recording holds the session
from the patient's first transition on. The patient writes its signed audit
trail into the same directory (``--record``). What is not recorded: with
``--link``, commands travel only on the emulated control paths, which the
router does not carry (measured poses, status, link statistics and alarms are
on the main session and are recorded). With ``--foxglove`` alone the recorder
writes no file and the patient no audit trail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.record.audit import short
from telesurgery.record.layout import KEY_SUFFIX, audit_dir, recording_paths
from telesurgery.record.live import DEFAULT_HOST
from telesurgery.record.recorder import PRESENCE

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
"""The recorder writes what it has queued before it exits: give it time on a busy machine."""


class DemoRecording:
    """The recorder child of one demo run, recording session ``session`` into ``directory``
    and serving it to Foxglove on port ``foxglove`` (either may be None, not both)."""

    def __init__(self, directory: Path | None, session: str, router_ep: str, workdir: Path,
                 log_level: str, security_args: list[str], foxglove: int | None = None
                 ) -> None:
        args = ["record", "--session", session, "--connect", router_ep, "--log-level",
                log_level, *security_args]
        self.directory = None
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create --record directory {directory}: "
                                  f"{exc.strerror}; choose a writable directory") from exc
            self.directory = directory.resolve()
            args += ["--out", str(self.directory)]
        self.foxglove_url = None
        if foxglove is not None:
            # The port is chosen here, so the demo can say where to connect.
            foxglove = foxglove or free_port()
            args += ["--foxglove", str(foxglove)]
            self.foxglove_url = f"ws://{DEFAULT_HOST}:{foxglove}"
        self.process = NodeProcess("recorder", args, workdir)

    @property
    def patient_args(self) -> list[str]:
        """What the patient node needs to write its audit trail beside the recording."""
        return [] if self.directory is None else ["--record", str(self.directory)]

    def start(self, monitor: Monitor) -> None:
        """Start the recorder; return once it is subscribed (its token is seen)."""
        self.process.start()
        wait_present(monitor, [self.process], {PRESENCE})

    def announce(self) -> None:
        """Print where the session goes and who signs its audit trails (once nodes are up):
        the fingerprint is what to keep elsewhere to check the trail later."""
        lines = [] if self.directory is None else [f"recording to {self.directory}"]
        lines += [f"audit trail of {a['node']} signed by {a['fingerprint']}"
                  for a in self.trails()]
        if self.foxglove_url is not None:
            lines.append(f"live in Foxglove: open a connection to {self.foxglove_url}")
        print("\n".join(lines), file=sys.stderr, flush=True)

    def trails(self) -> list[dict[str, str]]:
        """The audit trails written so far: node, trail file and signer's fingerprint."""
        out: list[dict[str, str]] = []
        if self.directory is None:
            return out
        for key_file in sorted(audit_dir(self.directory).glob("*" + KEY_SUFFIX)):
            try:
                key = json.loads(key_file.read_text(encoding="utf-8"))
                out.append({"node": str(key["node"]), "trail": str(key["trail"]),
                            "fingerprint": str(key["fingerprint"])})
            except (OSError, ValueError, KeyError, TypeError):
                out.append({"node": "?", "trail": key_file.name,
                            "fingerprint": "unreadable key file"})
        return out

    def stop(self) -> dict[str, Any]:
        """Stop the recorder (after the nodes, so their last words are in); the summary's
        ``record`` section: directory, recordings and their size [bytes], the recorder's
        counters, the audit trails; ``foxglove``: where it was served live."""
        self.process.interrupt()
        self.process.wait(STOP_TIMEOUT_S)
        out: dict[str, Any] = {}
        if self.directory is not None:
            files = recording_paths(self.directory)
            out |= {"dir": str(self.directory), "recordings": [p.name for p in files],
                    "bytes": sum(p.stat().st_size for p in files), "audit": self.trails()}
        if self.foxglove_url is not None:
            out["foxglove"] = self.foxglove_url
        try:
            out["recorder"] = self.process.report()
        except TelesurgeryError as exc:
            out["recorder"] = {"error": str(exc)}
        return out



def summary_line(section: dict[str, Any]) -> str:
    """One line for the end of the demo from the summary's ``record`` section."""
    rec = section.get("recorder", {})
    if "dir" not in section:
        return (f"served {rec.get('written', '?')} messages live to Foxglove at "
                f"{section.get('foxglove')} (dropped {rec.get('dropped', '?')})")
    signers = ", ".join(f"{a['node']} {short(a['fingerprint'])}"
                        for a in section.get("audit", []))
    return (f"recorded {rec.get('written', '?')} messages ({section['bytes'] / 1e6:.1f} MB, "
            f"dropped {rec.get('dropped', '?')}) to {section['dir']}; audit signed by "
            f"{signers or 'nobody'}")


def wait_present(monitor: Monitor, processes: list[NodeProcess], tokens: set[str]) -> None:
    """Wait for the liveliness ``tokens`` of ``processes``; a clear error if one died or
    they did not come up within ``STARTUP_TIMEOUT_S``."""
    if monitor.wait_present(tokens, STARTUP_TIMEOUT_S):
        return
    dead = [p for p in processes if not p.alive()]
    why = "; ".join(f"{p.name}: {p.last_log_line()}" for p in dead) or "timed out"
    raise TelesurgeryError(f"{', '.join(sorted(tokens))} did not come up ({why}); logs in "
                           f"{processes[0].workdir}")


__all__ = ["DemoRecording", "summary_line", "wait_present"]
