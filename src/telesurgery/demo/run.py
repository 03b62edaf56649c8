"""Run the whole system on one machine and produce the summary JSON.

Process layout (each its own OS process, all on loopback)::

    router  (Zenoh router, tcp/127.0.0.1:R)   <- the demo's monitor connects here (client)
    patient (peer, listens tcp/127.0.0.1:P, connects to the router)
    console (peer, connects to the router; learns P by gossip and connects directly)
    backup  (with ``backup``: the bedside console, a peer like the console)

Commands therefore go console -> patient directly; the router serves everyone
else (monitor now; observers and recorders later) without sitting on the hot path.

With ``link`` (a profile), commands, measured poses and clock sync travel instead
over one emulated path per profile path (``demo.linkrig``), each its own Zenoh
session over UDP through its own ``telesurgery link`` process; ``cuts`` cut and
restore paths during the run. Without it the main session is the one path.

With ``backup`` a bedside backup console runs too, as ``backup:bedside-team`` of the
throwaway PKI: with its own page (the web device) when ``backup_web_port`` is given,
otherwise without a page, driven by a hand that holds still (a scripted trajectory the
demo writes), so that after a take-over the arms stay where the surgeon left them and
any jump or drift would show. ``takeover_at_s`` is the drill: the demo signals the
backup console (SIGUSR1, its one action) that many seconds into the run.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurgery.clock import now_ns
from telesurgery.demo.checklist import checklist_args
from telesurgery.demo.linkrig import Cut, CutSchedule, LinkRig, paths_toml
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import (
    PATIENT_SITE,
    SURGEON_SITE,
    NodeProcess,
    free_port,
    site_cpus,
)
from telesurgery.demo.recording import DemoRecording, wait_present
from telesurgery.demo.summary import backup_section, build_summary, security_section
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.security.node import DEMO_MEMBERS, DEMO_SURGEON, Site, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.tasks import DEFAULT_TASK
from telesurgery.transport.session import Security
from telesurgery.video.latency import video_summary

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
DEMO_BACKUP = "bedside-team"
"""The name of the demo's backup console certificate (``backup:bedside-team``)."""
DEMO_MEMBERS_WITH_BACKUP = {**DEMO_MEMBERS, Role.BACKUP: (DEMO_BACKUP,)}
"""The demo site's certificates with the bedside console's (``--backup``)."""
STILL_HAND_S = 10_000_000.0
"""How long [s] the headless backup console's hand holds still (for good, in practice)."""


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
    loss: float | None = None
    """Random loss probability (0 to 1) on every emulated path, both ways, in place of the
    profile's (None: the profile's); needs ``link``."""
    cuts: tuple[Cut, ...] = ()
    record: Path | None = None
    """Session directory to record into (MCAP and the patient's audit trail)."""
    foxglove: int | None = None
    """Port to serve the session live to Foxglove on (loopback; None: not served)."""
    video: bool = True
    """Endoscope video from the patient to the console (off: the control loop alone)."""
    web_port: int = 0
    """Port of the console page (0: any free port). Its URL, with the console's secret, is
    in ``Monitor.pages`` once the console printed it."""
    insecure: bool = False
    """Plain TCP without TLS, access control or command tags (default: a throwaway PKI in
    the work folder, mutual TLS on every link, role access control, tagged commands)."""
    backup: bool = False
    """Run the bedside backup console too."""
    backup_web_port: int | None = None
    """Port of the backup console's page (0: any free port; None: no page, a hand that
    holds still)."""
    takeover_at_s: float | None = None
    """The drill: the backup console takes control this many seconds [s] into the run."""
    pin_sites: bool = False
    """Each site on its own half of the CPUs, as two machines would be: the patient's
    (router, patient node, bedside console) and the surgeon's (console); the emulated
    network and the recorder float."""
    console_env: tuple[tuple[str, str], ...] = ()
    """Variables added to the surgeon console's environment (test and bench hooks)."""
    force_cap_n: float | None = None
    """Force cap at the tips [N] for the patient's supervisor and every console's page
    alike (None: the configs' default, ``config.FORCE_CAP_N``)."""
    task: str = DEFAULT_TASK
    """The training task on the board and in the autopilot's hands (``telesurgery.tasks``)."""

    def check(self) -> None:
        """``ConfigError`` for options that do not go together."""
        if self.takeover_at_s is not None and not self.backup:
            raise ConfigError("--takeover-at needs the backup console: add --backup")
        if self.takeover_at_s is not None and self.takeover_at_s < 0:
            raise ConfigError(f"--takeover-at must be 0 s or more, got {self.takeover_at_s}")
        if self.loss is not None and self.link is None:
            raise ConfigError("--loss needs --link PROFILE: only emulated paths lose packets")
        if self.loss is not None and not 0.0 <= self.loss <= 1.0:
            raise ConfigError(f"--loss is a probability from 0 to 1, got {self.loss}")
        if self.force_cap_n is not None and not 0.0 < self.force_cap_n < math.inf:
            raise ConfigError(f"--force-cap is a force in N above 0, got {self.force_cap_n}")
        if self.backup and self.link is not None:
            raise ConfigError("--backup cannot go with --link yet: the bedside console would "
                              "need a path of its own to the patient node; run them apart")


@dataclass
class DemoNodes:
    """The processes of a running demo, handed to ``run_demo``'s ``on_start``: the fault
    bench stops and restarts them and cuts the paths. A node named in ``down`` was stopped
    on purpose, and its absence does not end the run."""

    router: NodeProcess
    patient: NodeProcess
    consoles: list[NodeProcess]
    rig: LinkRig | None
    down: set[str] = field(default_factory=set)


def _security_args(site: Site | None, role: Role, name: str) -> list[str]:
    return ["--insecure"] if site is None else site.args(role, name)


def still_trajectory(path: Path, arms: tuple[str, ...] = ("psm1", "psm2")) -> Path:
    """Write a trajectory file whose hands hold still, clutch released, jaw closed (a
    grasped peg stays grasped), for ``STILL_HAND_S``; returns ``path``."""
    lines = ["# The demo's bedside hand: still, so that a take-over moves nothing.",
             "t_s,arm,x,y,z,qw,qx,qy,qz,grip,clutch"]
    for arm in arms:
        lines += [f"{t},{arm},0,0,0.3,1,0,0,0,0,0" for t in (0.0, STILL_HAND_S)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _backup_args(opts: DemoOptions, workdir: Path) -> list[str]:
    if opts.backup_web_port is not None:
        return ["--device", "web", "--web-port", str(opts.backup_web_port)]
    return ["--device", "scripted", "--trajectory",
            str(still_trajectory(workdir / "backup-still.csv")), "--no-web"]


def writable_dir(path: Path | None, flag: str) -> Path:
    """``path`` created if need be (None: a new temporary folder); ``ConfigError`` naming
    ``flag`` when it cannot be created or written to."""
    try:
        if path is None:
            return Path(tempfile.mkdtemp(prefix="telesurgery-demo-"))
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot create it ({exc.strerror}); choose a "
                          "writable folder") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: cannot write there; choose a writable folder")
    return path


def run_demo(opts: DemoOptions, stop: threading.Event,
             on_tick: Callable[[Monitor, float], None] | None = None,
             on_start: Callable[[DemoNodes, Monitor], None] | None = None,
             on_phase: Callable[[str], None] = lambda _phase: None) -> dict[str, Any]:
    """Start router, patient and console; run; stop them all; return the summary.

    ``on_tick(monitor, elapsed_s)`` is called about four times a second (the live view);
    ``monitor.pages`` has the consoles' page URLs once they printed them. ``on_start``
    is called once, when every node is up, with the nodes and the monitor. ``on_phase``
    is told each step of the start-up that may take seconds (a progress line).
    """
    opts.check()
    workdir = writable_dir(opts.workdir, "--workdir")
    router_ep = f"tcp/127.0.0.1:{free_port()}"
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    common = ["--session", opts.session, "--log-level", opts.log_level,
              *([] if opts.video else ["--no-video"]),
              # One cap on both sides: the patient's supervisor and the consoles' pages.
              *([] if opts.force_cap_n is None else ["--force-cap", repr(opts.force_cap_n)]),
              *([] if opts.task == DEFAULT_TASK else ["--task", opts.task])]
    members = DEMO_MEMBERS_WITH_BACKUP if opts.backup else DEMO_MEMBERS
    if not opts.insecure:
        on_phase("creating the site's throwaway PKI")
    site = None if opts.insecure else throwaway_site(workdir / "security", opts.session,
                                                     members)
    rig = LinkRig(opts.link, workdir, loss=opts.loss) if opts.link else None
    schedule = CutSchedule(rig, opts.cuts)
    path_args = {n: ["--config", str(workdir / f"{n}-paths.toml")] if rig else []
                 for n in ("patient", "console")}
    cpus = ({n: site_cpus(n) for n in (PATIENT_SITE, SURGEON_SITE)} if opts.pin_sites
            else dict.fromkeys((PATIENT_SITE, SURGEON_SITE)))
    # The recorder floats with the network: pinned beside the patient site's real-time
    # loops (patient node, bedside console) it fell behind and dropped a quarter of what
    # it received, and a recording is kept whole or it is no record.
    recording = (DemoRecording(opts.record, opts.session, router_ep, workdir, opts.log_level,
                               _security_args(site, Role.RECORDER, "recorder"), opts.foxglove)
                 if opts.record or opts.foxglove is not None else None)
    if recording is not None:
        path_args["patient"] += recording.patient_args
    router = NodeProcess("router", ["router", "--listen", router_ep,
                                    "--log-level", opts.log_level,
                                    *_security_args(site, Role.ROUTER, "site")], workdir,
                         cpus[PATIENT_SITE])
    patient = NodeProcess("patient", ["patient", *common, "--mode", "peer", "--listen",
                                      patient_ep, "--connect", router_ep,
                                      *path_args["patient"], *checklist_args(opts, workdir),
                                      *_security_args(site, Role.ROBOT, "patient")], workdir,
                          cpus[PATIENT_SITE])
    console = NodeProcess("console", ["console", *common, "--mode", "peer",
                                      "--connect", router_ep, "--device", opts.device,
                                      "--web-port", str(opts.web_port),
                                      *path_args["console"],
                                      *_security_args(site, Role.SURGEON, DEMO_SURGEON)],
                          workdir, cpus[SURGEON_SITE], env=dict(opts.console_env))
    consoles = [console]
    if opts.backup:
        consoles.append(NodeProcess("backup", ["backup", *common, "--mode", "peer",
                                               "--connect", router_ep,
                                               *_backup_args(opts, workdir),
                                               *_security_args(site, Role.BACKUP,
                                                               DEMO_BACKUP)], workdir,
                                            cpus[PATIENT_SITE]))
    nodes = [router, patient, *consoles]
    drill = None if opts.takeover_at_s is None else consoles[-1]
    took_over_s: float | None = None
    on_phase("starting the Zenoh router")
    router.start(with_report=False)
    monitor: Monitor | None = None
    emulators: dict[str, Any] = {}
    try:
        monitor = connect_monitor(opts.session, router_ep, router, None if site is None else
                                  site.security(Role.OBSERVER, "monitor").zenoh_settings())
        if rig is not None:
            rig.start()
            (workdir / "patient-paths.toml").write_text(
                paths_toml(rig.patient_paths())
                + f"[safety]\npath_delay_ms = {rig.slowest_delay_ms()!r}\n")
            (workdir / "console-paths.toml").write_text(paths_toml(rig.console_paths()))
            monitor.link_controls = rig.controls()
        if recording is not None:
            on_phase("waiting for the recorder")
            recording.start(monitor)
        # A first run on a machine also builds the renderer's context (seconds).
        on_phase("starting the patient node (simulator, renderer, encoder)")
        patient.start()
        if recording is not None:
            # The recorder subscribes to every key: a console started before the patient
            # subscribes would take the recorder for it and stream commands into the void.
            wait_present(monitor, [patient], {"patient"})
            recording.announce()
        # The checklist is judged when the surgeon's key is agreed: the bedside console
        # and the endoscope's first frame come first, as they would in theatre.
        for c in reversed(consoles):
            if c is console:
                on_phase("waiting for the checklist: bedside and first video frame")
                _wait_for_checklist(monitor, opts, [n.name for n in consoles[1:]])
            c.start()
        on_phase("waiting for the nodes to come up")
        if not monitor.wait_present({n.name for n in (patient, *consoles)},
                                    STARTUP_TIMEOUT_S):
            dead = [n for n in (patient, *consoles) if not n.alive()]
            why = "; ".join(f"{n.name}: {n.last_log_line()}" for n in dead) or "timed out"
            raise TelesurgeryError(f"the nodes did not come up ({why}); logs in {workdir}")
        running = DemoNodes(router, patient, consoles, rig)
        if on_start is not None:
            on_start(running, monitor)
        started = now_ns()
        end = None if opts.duration_s is None else started + int(opts.duration_s * 1e9)
        while not stop.is_set() and (end is None or now_ns() < end):
            gone = next((n for n in (patient, *consoles)
                         if not n.alive() and n.name not in running.down), None)
            if gone is not None:
                raise TelesurgeryError(f"{gone.name} stopped unexpectedly: "
                                       f"{gone.last_log_line()}; log in {gone.log_path}")
            t = (now_ns() - started) * 1e-9
            if drill is not None and took_over_s is None and opts.takeover_at_s is not None \
                    and t >= opts.takeover_at_s:
                # The backup console's one action; it installed the handler before its
                # presence token, which the demo waited for.
                drill.signal(signal.SIGUSR1)
                took_over_s = round(t, 3)
            schedule.due(t)
            for c in consoles:
                if c.name not in monitor.pages and (url := c.page_url()) is not None:
                    monitor.pages[c.name] = url
            if on_tick is not None:
                on_tick(monitor, (now_ns() - started) * 1e-9)
            stop.wait(0.25)
        elapsed = (now_ns() - started) * 1e-9
    finally:
        for n in (*consoles, patient):
            n.interrupt()
        for n in (*consoles, patient):
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
    if opts.backup:
        summary["backup"] = backup_section(consoles[-1].report(), opts.takeover_at_s,
                                           took_over_s)
    if record is not None:
        summary["record"] = record
    video = video_summary(patient.report().get("video"), console.report().get("video"))
    if video is not None:
        summary["video"] = video
    return summary


def _wait_for_checklist(monitor: Monitor, opts: DemoOptions, bedside: list[str]) -> None:
    def ready(m: Monitor) -> bool:
        video = m.status.get("patient", {}).get("video", {})
        return set(bedside) <= m.present and (not opts.video or video.get("frames", 0) > 0)

    # Not an error when it times out: the surgeon then waits for the checklist instead.
    monitor.wait_until(ready, STARTUP_TIMEOUT_S)


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
