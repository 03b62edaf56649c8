"""A frozen picture stops the instruments: the console clutches every arm while its newest
frame is older than ``VIDEO_FROZEN_MS``, and the hands re-anchor once video comes back.

Router, patient node and console (autopilot surgeon, video on) as real processes. Commands
and state travel on a control path straight from the console to the patient; the console's
main session, which carries the endoscope video, reaches the router through a
``telesurgery link`` emulator. Cutting that emulator freezes the surgeon's picture while
every command still arrives: without the console's check the autopilot would go on driving
blind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from telesurgery.clock import now_ns
from telesurgery.config import PathConfig, ZenohConfig
from telesurgery.console.video import VIDEO_FROZEN_MS
from telesurgery.demo.linkrig import paths_toml
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.demo.run import connect_monitor
from telesurgery.link.control import EmulatorProcess
from telesurgery.security.node import DEMO_SURGEON, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.session import RejectCounter, subscribe
from telesurgery.types import ArmMode, SafetyState

from .conftest import Trace

pytestmark = pytest.mark.integration

STARTUP_S = 90.0
"""Generous: the camera renders and encodes beside three real-time processes on two cores."""
ARMS = ("psm1", "psm2")
STILL_M = 0.0005
"""A clutched instrument moves less than this [m] once it has braked."""
STOPPED = {ArmMode.CLUTCHED, ArmMode.ARMED, ArmMode.HELD}
"""The modes in which a console's commands move nothing."""
BRAKE_S = 0.2
"""Time [s] the supervisor takes to brake a clutched tool from full speed (v / a = 50 ms,
with room)."""


class Rig:
    def __init__(self, workdir: Path) -> None:
        site = throwaway_site(workdir / "security", "it")
        self.workdir = workdir
        self.site = site
        self.router_ep = f"tcp/127.0.0.1:{free_port()}"
        self.path_ep = f"tcp/127.0.0.1:{free_port()}"
        self.router = NodeProcess("router", ["router", "--listen", self.router_ep,
                                             *site.args(Role.ROUTER, "site")], workdir)
        self.emulator = EmulatorProcess("tcp/127.0.0.1:0", self.router_ep,
                                        ["--delay-ms", "0"],
                                        log_path=workdir / "link-video.log")
        self.trace = Trace()
        self.monitor: Monitor | None = None
        self.console: NodeProcess | None = None
        self.patient = NodeProcess("patient", [
            "patient", "--session", "it", "--mode", "peer", "--connect", self.router_ep,
            "--config", str(workdir / "patient.toml"), *site.args(Role.ROBOT, "patient")],
            workdir)

    def start(self) -> None:
        workdir, site = self.workdir, self.site
        self.router.start(with_report=False)
        self.emulator.start(timeout_s=STARTUP_S)
        (workdir / "patient.toml").write_text(paths_toml(
            [PathConfig(name="direct", zenoh=ZenohConfig(listen=[self.path_ep]), tls=True)]))
        (workdir / "console.toml").write_text(paths_toml(
            [PathConfig(name="direct", zenoh=ZenohConfig(connect=[self.path_ep]), tls=True)]))
        # A client of the router alone: its video can only come through the emulator.
        self.console = NodeProcess("console", [
            "console", "--session", "it", "--mode", "client",
            "--connect", str(self.emulator.listen_address),
            "--config", str(workdir / "console.toml"),
            *site.args(Role.SURGEON, DEMO_SURGEON)], workdir)
        self.monitor = connect_monitor("it", self.router_ep, self.router,
                                       site.security(Role.OBSERVER, "monitor").zenoh_settings())
        z, keys, rejects = self.monitor.session, self.monitor.keys, RejectCounter()
        subscribe(z, keys.safety_state, self.trace.on_event, rejects)
        for arm in ARMS:
            subscribe(z, keys.measured_cp(arm), self.trace.on_measured, rejects)
        self.patient.start()
        self.console.start()

    def console_log(self) -> str:
        return self.console.last_log_line() if self.console is not None else "not started"

    def wait_mode(self, modes: set[ArmMode], after: int, what: str) -> int:
        """Wait until the patient reports every arm in one of ``modes`` in state it sent
        after ``after`` [ns]; the send time [ns] of the first such sample of the last arm."""
        def first() -> dict[str, int]:
            out = {}
            for arm in ARMS:
                t = next((t for t, s in self.trace.measured.get(arm, [])
                          if t >= after and s.mode in modes), None)
                if t is not None:
                    out[arm] = t
            return out

        with self.trace.sampled:
            assert self.trace.sampled.wait_for(lambda: len(first()) == len(ARMS),
                                               timeout=STARTUP_S), (
                f"timed out waiting for {what}; console: {self.console_log()}")
            return max(first().values())

    def stop(self) -> None:
        """Stop whatever was started (again: nothing more)."""
        nodes = [n for n in (self.patient, self.console) if n is not None]
        for node in nodes:
            node.interrupt()
        for node in nodes:
            node.wait(15.0)
        self.emulator.stop()
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        self.router.interrupt()
        self.router.wait(15.0)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        r.start()
        yield r
    finally:
        r.stop()


def test_a_frozen_picture_clutches_the_arms_until_video_comes_back(rig: Rig) -> None:
    rig.trace.wait_state(SafetyState.ENGAGED, after=0, timeout_s=STARTUP_S)
    # The console has had frames for a while: the patient's camera frames are on the
    # router, and the autopilot has been following for a second.
    engaged = now_ns()
    rig.trace.wait_measured(
        lambda t: all(t.measured.get(a) and t.measured[a][-1][0] > engaged + 1_000_000_000
                      for a in ARMS), "a second of following", STARTUP_S)

    cut = now_ns()
    rig.emulator.cut()
    clutched = rig.wait_mode(STOPPED, cut + round(VIDEO_FROZEN_MS * 1e6),
                             "every arm clutched once the picture froze")
    # Clutched (or held and armed, where a starved console let the watchdog fire first),
    # braked and still for as long as the picture stays frozen: three seconds of the
    # patient's own state stream.
    settled = clutched + round(BRAKE_S * 1e9)
    until = settled + 3_000_000_000
    rig.trace.wait_measured(lambda t: all(t.measured[a][-1][0] > until for a in ARMS),
                            "three seconds of state with the picture frozen", STARTUP_S)
    with rig.trace.lock:
        for arm in ARMS:
            window = [s for t, s in rig.trace.measured[arm] if settled <= t <= until]
            assert len(window) > 100, f"{arm}: {len(window)} samples"
            modes = {s.mode for s in window}
            assert modes <= STOPPED, f"{arm} with the picture frozen: {modes}"
            moved = max(window[0].measured.distance(s.measured) for s in window)
            assert moved < STILL_M, f"{arm} moved {moved * 1e3:.2f} mm with the video frozen"

    # Video back: the hands re-anchor on the tools and drive again.
    rig.emulator.restore()
    rig.wait_mode({ArmMode.FOLLOWING}, now_ns(), "every arm following once video came back")
    rig.stop()
    assert rig.console is not None
    report = rig.console.report()
    assert report["video_freezes"] >= 1, report
