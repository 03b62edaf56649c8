"""Run the whole system on one machine and produce the summary JSON.

Process layout (each its own OS process, all on loopback)::

    router  (Zenoh router, tcp/127.0.0.1:R)   <- the demo's monitor connects here (client)
    patient (peer, listens tcp/127.0.0.1:P, connects to the router)
    console (peer, connects to the router; learns P by gossip and connects directly)

Commands therefore go console -> patient directly; the router serves everyone
else (monitor now; observers and recorders later) without sitting on the hot path.

With ``link`` (a profile), commands, measured poses and clock sync travel instead
over one emulated path per profile path (``demo.linkrig``), each its own Zenoh
session over UDP through its own ``telesurgery link`` process; ``cuts`` cut and
restore paths during the run. Without it the main session is the one path.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurgery.clock import now_ns
from telesurgery.demo.linkrig import Cut, CutSchedule, LinkRig, paths_toml
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.demo.recording import DemoRecording, wait_present
from telesurgery.demo.summary import build_summary, security_section
from telesurgery.errors import TelesurgeryError
from telesurgery.security.node import DEMO_SURGEON, Site, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.session import Security
from telesurgery.video.latency import video_summary

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the ``demo`` verb was asked for. ``duration_s`` None runs until stopped."""

    duration_s: float | None = None
    session: str = "or1"
    workdir: Path | None = None
    device: str = "autopilot"
    log_level: str = "warning"
    link: str | None = None
    """Link profile (name or .toml file) to emulate between console and patient."""
    cuts: tuple[Cut, ...] = ()
    record: Path | None = None
    """Session directory to record into (MCAP and the patient's audit trail)."""
    video: bool = True
    """Endoscope video from the patient to the console (off: the control loop alone)."""
    web_port: int = 0
    """Port of the console page (0: any free port, not known to the caller)."""
    insecure: bool = False
    """Plain TCP without TLS, access control or command tags (default: a throwaway PKI in
    the work folder, mutual TLS on every link, role access control, tagged commands)."""


def _security_args(site: Site | None, role: Role, name: str) -> list[str]:
    return ["--insecure"] if site is None else site.args(role, name)


def run_demo(opts: DemoOptions, stop: threading.Event,
             on_tick: Callable[[Monitor, float], None] | None = None) -> dict[str, Any]:
    """Start router, patient and console; run; stop them all; return the summary.

    ``on_tick(monitor, elapsed_s)`` is called about four times a second (the live view).
    """
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="telesurgery-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    router_ep = f"tcp/127.0.0.1:{free_port()}"
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    common = ["--session", opts.session, "--log-level", opts.log_level,
              *([] if opts.video else ["--no-video"])]
    site = None if opts.insecure else throwaway_site(workdir / "security", opts.session)
    rig = LinkRig(opts.link, workdir) if opts.link else None
    schedule = CutSchedule(rig, opts.cuts)
    path_args = {n: ["--config", str(workdir / f"{n}-paths.toml")] if rig else []
                 for n in ("patient", "console")}
    recording = (DemoRecording(opts.record, opts.session, router_ep, workdir, opts.log_level,
                               _security_args(site, Role.RECORDER, "recorder"))
                 if opts.record else None)
    if recording is not None:
        path_args["patient"] += recording.patient_args
    router = NodeProcess("router", ["router", "--listen", router_ep,
                                    "--log-level", opts.log_level,
                                    *_security_args(site, Role.ROUTER, "site")], workdir)
    patient = NodeProcess("patient", ["patient", *common, "--mode", "peer", "--listen",
                                      patient_ep, "--connect", router_ep,
                                      *path_args["patient"],
                                      *_security_args(site, Role.ROBOT, "patient")], workdir)
    console = NodeProcess("console", ["console", *common, "--mode", "peer",
                                      "--connect", router_ep, "--device", opts.device,
                                      "--web-port", str(opts.web_port),
                                      *path_args["console"],
                                      *_security_args(site, Role.SURGEON, DEMO_SURGEON)],
                          workdir)
    nodes = [router, patient, console]
    router.start(with_report=False)
    monitor: Monitor | None = None
    emulators: dict[str, Any] = {}
    try:
        monitor = connect_monitor(opts.session, router_ep, router, None if site is None else
                                  site.security(Role.OBSERVER, "monitor").zenoh_settings())
        if rig is not None:
            rig.start()
            (workdir / "patient-paths.toml").write_text(paths_toml(rig.patient_paths()))
            (workdir / "console-paths.toml").write_text(paths_toml(rig.console_paths()))
            monitor.link_controls = rig.controls()
        if recording is not None:
            recording.start(monitor)
        patient.start()
        if recording is not None:
            # The recorder subscribes to every key: a console started before the patient
            # subscribes would take the recorder for it and stream commands into the void.
            wait_present(monitor, [patient], {"patient"})
            recording.announce()
        console.start()
        if not monitor.wait_present({"patient", "console"}, STARTUP_TIMEOUT_S):
            dead = [n for n in (patient, console) if not n.alive()]
            why = "; ".join(f"{n.name}: {n.last_log_line()}" for n in dead) or "timed out"
            raise TelesurgeryError(f"the nodes did not come up ({why}); logs in {workdir}")
        started = now_ns()
        end = None if opts.duration_s is None else started + int(opts.duration_s * 1e9)
        while not stop.is_set() and (end is None or now_ns() < end):
            if not (patient.alive() and console.alive()):
                gone = patient if not patient.alive() else console
                raise TelesurgeryError(f"{gone.name} stopped unexpectedly: "
                                       f"{gone.last_log_line()}; log in {gone.log_path}")
            schedule.due((now_ns() - started) * 1e-9)
            if on_tick is not None:
                on_tick(monitor, (now_ns() - started) * 1e-9)
            stop.wait(0.25)
        elapsed = (now_ns() - started) * 1e-9
    finally:
        for n in (console, patient):
            n.interrupt()
        for n in (console, patient):
            n.wait(STOP_TIMEOUT_S)
        record = recording.stop() if recording is not None else None
        if rig is not None:
            emulators = rig.stop()
        if monitor is not None:
            monitor.close()
        router.interrupt()
        router.wait(STOP_TIMEOUT_S)
    summary = build_summary(elapsed, patient.report(), console.report(),
                            {"workdir": str(workdir), "nodes": [n.name for n in nodes]},
                            link_profile=rig.profile.name if rig else None,
                            emulators=emulators, cuts=schedule.done)
    summary["security"] = security_section(opts.insecure, patient.report())
    if record is not None:
        summary["record"] = record
    video = video_summary(patient.report().get("video"), console.report().get("video"))
    if video is not None:
        summary["video"] = video
    return summary


def connect_monitor(session: str, router_ep: str, router: NodeProcess,
                    security: Security | None = None) -> Monitor:
    """The demo's monitor, a client of the router (``security``: its observer identity's
    Zenoh entries; None: plain TCP)."""
    # The router needs a moment to listen; retry until it does or it died.
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            return Monitor(session, [router_ep], security)
        except TelesurgeryError:
            if not router.alive() or time.monotonic() > deadline:
                raise TelesurgeryError(
                    f"the Zenoh router did not start: {router.last_log_line() or 'no output'}"
                ) from None
            time.sleep(0.05)
