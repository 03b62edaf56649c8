"""The faults, each injected by the bench into a running demo and undone when it ends.

An injection blocks for the fault's duration (``Fault.duration_s``), waiting on ``abort``
so that a stopped bench ends it at once, and always leaves the system as it found it
(paths restored, impairments reset, nodes running again).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import zenoh

from telesurgery.bench.faults.observe import Observation
from telesurgery.bench.system import Hogs
from telesurgery.clock import CLOCK_STEP_ENV, now_ns
from telesurgery.config import ZenohConfig
from telesurgery.console.web.protocol import Action
from telesurgery.demo.linkrig import LinkRig
from telesurgery.demo.processes import NodeProcess
from telesurgery.demo.run import DemoNodes
from telesurgery.errors import ConfigError, TransportError
from telesurgery.messages import VideoFrame
from telesurgery.security.node import DEMO_SURGEON, Site
from telesurgery.security.pki import Pki, Role
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, new_session_id, open_session

FLAP_S: Final = 0.5
"""A flapping path is up and down for this long [s] each."""
JITTER_BURST_S: Final = 1.0
"""A burst of jitter lasts this long [s], then as long without."""
HOGS: Final = 4
"""Busy processes beside the nodes under CPU starvation (two per core of the 2-core CI)."""
GRANT_WAIT_S: Final = 60.0
"""How long [s] the bedside team tries to hand control back to a restarted console."""
GRANT_HELD_S: Final = 3.0
"""How long [s] the surgeon must keep control before the team stops granting: a console
granted control before it can stream (its command key not yet agreed, on a loaded
machine) is silent, and after ``owner_lost_ms`` control is the bedside's again."""
SURGEON: Final = f"surgeon:{DEMO_SURGEON}"
BURST_BYTES: Final = (200_000, 500_000)
"""A burst message's payload [bytes], cycled from the smaller to the larger in 100 kB
steps (our choice: keyframe-sized for a high-resolution stream, far above the demo's
640x480 frames)."""
BURST_CAMERA: Final = "burst"
"""The camera the burst's frames name: the console's decoder takes only its own camera's
frames and skips these, so the burst loads the links and the queues, not the picture."""


@dataclass(frozen=True, slots=True)
class Injection:
    """What the fault is given: the demo's ``nodes``, an ``abort`` event, what the
    observer has ``seen`` and the ``record`` folder (recording and audit trail)."""

    nodes: DemoNodes
    abort: threading.Event
    seen: Observation
    record: Path

    @property
    def rig(self) -> LinkRig:
        """The emulated paths (every fault runs over a link profile)."""
        if self.nodes.rig is None:
            raise ConfigError("bench faults needs a link profile with emulated paths; pass "
                              "--link PROFILE")
        return self.nodes.rig

    def hold(self, seconds: float) -> None:
        """Let the fault last ``seconds`` [s] (less if aborted)."""
        self.abort.wait(seconds)


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the matrix: its ``name``, what it does in words, how long it lasts
    [s], and whether it kills the patient node (whose audit trail then stays open)."""

    name: str
    what: str
    duration_s: float
    inject: Callable[[Injection, float], None]
    kills_patient: bool = False
    expect_no_hold: bool = False
    """The second path must keep the arms following: a hold is a failure."""
    bedside: bool = False
    """Run with the bedside console (with its page) and without emulated paths: the demo
    cannot run both yet."""
    recover: Callable[[Injection], None] | None = None
    """What the team does once the fault ended, to get the arms moving again."""
    disk_mb: int | None = None
    """Record onto a tmpfs this large [MiB] of its own (mounting it needs root)."""
    console_env: tuple[tuple[str, str], ...] = ()
    """Variables added to the surgeon console's environment (the clock-step hook)."""
    video: bool = False
    """Run with the endoscope video on (the matrix otherwise runs without, to fit a 2-core
    machine): the fault is about the video's traffic or the console's picture."""
    expect_commands: bool = False
    """No command number may be lost on every path from the fault's start to 1 s after its
    end (the patient's own count)."""


def press(page_url: str, action: Action) -> None:
    """Press ``action``'s button on the console page at ``page_url`` (over its WebSocket,
    with the secret the URL carries); ``TransportError`` when the page is not there."""
    page = urllib.parse.urlsplit(page_url)

    async def send() -> None:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"ws://{page.netloc}/ws?{page.query}") as ws:
            await ws.send_str(json.dumps({"t": "action", "a": action.value}))

    try:
        asyncio.run(send())
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"console page {page.netloc}: {exc}; is the console "
                             "running?") from exc


def _bedside_grants(ctx: Injection) -> None:
    """The restarted surgeon console asks for control from its page and the bedside grants
    it from its own, again as long as control comes back to the bedside, until the surgeon
    has held it for ``GRANT_HELD_S`` (or ``GRANT_WAIT_S``)."""
    surgeon, bedside = ctx.nodes.consoles
    held = 0
    for _ in range(round(GRANT_WAIT_S / 0.5)):
        if ctx.abort.is_set():
            return
        if ctx.seen.owner() == SURGEON:
            held += 1
            if held * 0.5 >= GRANT_HELD_S:
                return
        else:
            held = 0
            asked, granter = surgeon.page_url(), bedside.page_url()
            if asked is not None and granter is not None:
                press(asked, Action.REQUEST_CONTROL)
                press(granter, Action.GRANT_CONTROL)
        ctx.hold(0.5)


def _cut(paths: Callable[[LinkRig], list[str]]) -> Callable[[Injection, float], None]:
    def inject(ctx: Injection, duration_s: float) -> None:
        names = paths(ctx.rig)
        for name in names:
            ctx.rig.cut(name)
        try:
            ctx.hold(duration_s)
        finally:
            for name in names:
                ctx.rig.restore(name)
    return inject


def _flap(ctx: Injection, duration_s: float) -> None:
    path = ctx.rig.names[0]
    for _ in range(round(duration_s / (2 * FLAP_S))):
        if ctx.abort.is_set():
            return
        ctx.rig.cut(path)
        try:
            ctx.hold(FLAP_S)
        finally:
            ctx.rig.restore(path)
        ctx.hold(FLAP_S)


def _retune(changes: Mapping[str, float | bool]) -> Callable[[Injection, float], None]:
    def inject(ctx: Injection, duration_s: float) -> None:
        emulators = list(ctx.rig.emulators.values())
        for emu in emulators:
            emu.retune(changes)
        try:
            ctx.hold(duration_s)
        finally:
            for emu in emulators:
                emu.reset()
    return inject


def _jitter_bursts(ctx: Injection, duration_s: float) -> None:
    burst = _retune({"jitter_ms": 50.0})
    for _ in range(round(duration_s / (2 * JITTER_BURST_S))):
        if ctx.abort.is_set():
            return
        burst(ctx, JITTER_BURST_S)
        ctx.hold(JITTER_BURST_S)


def _restart(which: Callable[[DemoNodes], NodeProcess], with_report: bool = True
             ) -> Callable[[Injection, float], None]:
    """SIGKILL the node, leave it dead ``duration_s`` [s], start it again as it was."""
    def inject(ctx: Injection, duration_s: float) -> None:
        node = which(ctx.nodes)
        ctx.nodes.down.add(node.name)
        node.signal(signal.SIGKILL)
        node.wait(5.0)
        try:
            ctx.hold(duration_s)
        finally:
            # The first life's log is kept beside the second's.
            if node.log_path.exists():
                node.log_path.replace(node.log_path.with_suffix(".killed.log"))
            node.start(with_report=with_report)
            ctx.nodes.down.discard(node.name)
    return inject


def _fill_disk(ctx: Injection, duration_s: float) -> None:
    """Fill the recording's file system to the last byte, then free it."""
    filler = ctx.record / "disk-full.filler"
    chunk = bytes(1 << 20)
    try:
        with filler.open("wb") as f:
            while True:
                f.write(chunk)
                f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    try:
        ctx.hold(duration_s)
    finally:
        filler.unlink(missing_ok=True)


def _step_console_clock(ctx: Injection, duration_s: float) -> None:
    """Step the surgeon console's clock once (``clock.install_test_clock_step``), then watch
    for ``duration_s`` [s]: the step is never undone, as a real one would not be."""
    ctx.nodes.consoles[0].signal(signal.SIGUSR2)
    ctx.hold(duration_s)


def _bench_session(nodes: DemoNodes) -> tuple[zenoh.Session, Keys]:
    """A client session of the demo's router in the robot's role, and the demo's keys.

    Only the robot may publish on the video key (``security.acl``): the monitor's observer
    identity would be refused at the router. The bench therefore joins with the patient
    node's certificate from the demo's throwaway site, standing in for its encoder.
    """
    args = nodes.router.args
    router_ep = args[args.index("--listen") + 1]
    root = nodes.router.workdir / "security"
    security = (Site(Pki(root / "pki"), root / "acl.json").security(Role.ROBOT, "patient")
                .zenoh_settings() if (root / "acl.json").is_file() else None)
    session = nodes.patient.args[nodes.patient.args.index("--session") + 1]
    z = open_session(ZenohConfig(mode="client", connect=[router_ep], gossip=False), security)
    return z, Keys(session)


def _video_burst(ctx: Injection, duration_s: float) -> None:
    """Publish video-sized frames on the video key as fast as the bench can for
    ``duration_s`` [s], with the video stream's QoS, through the site router."""
    z, keys = _bench_session(ctx.nodes)
    pub = Publisher(z, keys.video, Stream.VIDEO, new_session_id())
    # Random bytes, as compressed video is: nothing along the way shrinks them.
    data = os.urandom(BURST_BYTES[1])
    sizes = range(BURST_BYTES[0], BURST_BYTES[1] + 1, 100_000)
    sent = sent_bytes = 0
    began = now_ns()
    end = began + round(duration_s * 1e9)
    try:
        while not ctx.abort.is_set() and (now := now_ns()) < end:
            size = sizes[sent % len(sizes)]
            pub.put(VideoFrame(BURST_CAMERA, 3840, 2160, True, sent, now, 0, 0, data[:size]))
            sent += 1
            sent_bytes += size
    finally:
        took_s = max(now_ns() - began, 1) * 1e-9

        def close() -> None:
            pub.close()
            z.close()

        # Closing the session took almost 4 s after a burst on a loaded machine, and that
        # stretched the fault's window: the fault ends when the burst does.
        threading.Thread(target=close, name="video-burst-close", daemon=True).start()
        with ctx.seen.lock:
            ctx.seen.injected.update({
                "messages": sent, "bytes": sent_bytes, "lasted_s": round(took_s, 3),
                "messages_per_s": round(sent / took_s, 1),
                "mbit_s": round(sent_bytes * 8e-6 / took_s, 1)})


def _starve(ctx: Injection, duration_s: float) -> None:
    with Hogs(HOGS):
        ctx.hold(duration_s)


FAULTS: Final = (
    Fault("path_cut", "the first path cut both ways for 5 s, then restored",
          5.0, _cut(lambda rig: rig.names[:1]), expect_no_hold=True),
    Fault("both_paths_cut", "every path cut both ways for 5 s, then restored",
          5.0, _cut(lambda rig: rig.names)),
    Fault("path_flap", f"the first path {FLAP_S:g} s down, {FLAP_S:g} s up, for 10 s",
          10.0, _flap, expect_no_hold=True),
    Fault("console_sigkill", "the surgeon console SIGKILLed mid-motion, restarted 3 s later; "
          "its page asks for control back and the bedside's grants it (no emulated paths: "
          "the demo runs the bedside console only without them)",
          3.0, _restart(lambda n: n.consoles[0]), bedside=True, recover=_bedside_grants),
    Fault("loss_10pct", "10 % random loss on every path both ways for 10 s",
          10.0, _retune({"loss": 0.1}), expect_no_hold=True),
    Fault("duplicates", "every path duplicates 20 % of datagrams both ways for 10 s",
          10.0, _retune({"duplicate": 0.2}), expect_no_hold=True),
    Fault("reordering", "every path reorders (5 ms jitter, overtaking allowed) for 10 s",
          10.0, _retune({"reorder": True, "jitter_ms": 5.0}), expect_no_hold=True),
    Fault("jitter_bursts", f"50 ms jitter on every path in {JITTER_BURST_S:g} s bursts, "
          f"{JITTER_BURST_S:g} s apart, for 10 s", 10.0, _jitter_bursts),
    Fault("patient_restart", "the patient node SIGKILLed mid-motion, restarted 3 s later",
          3.0, _restart(lambda n: n.patient), kills_patient=True),
    Fault("router_restart", "the site's Zenoh router SIGKILLed, restarted 3 s later",
          3.0, _restart(lambda n: n.router, with_report=False)),
    Fault("cpu_starvation", f"{HOGS} busy processes beside the nodes for 10 s",
          10.0, _starve),
    *(Fault(f"clock_step_{sign}", f"the surgeon console's clock steps by {step:+g} s "
            "mid-motion, for good (judged over the next 5 s and after)", 5.0,
            _step_console_clock, console_env=((CLOCK_STEP_ENV, str(step)),))
      for sign, step in (("plus", 1.0), ("minus", -1.0))),
    Fault("disk_full", "the recording's disk (a 64 MiB tmpfs) full for 5 s, then freed",
          5.0, _fill_disk, disk_mb=64),
    Fault("video_burst", "video on; for 5 s the bench publishes 200-500 kB frames of another "
          "camera on the video key as fast as it can, with the video's QoS (interactive-low, "
          "drop), from a client of the site router: the burst crosses the bench's link to "
          "the router and the router's links to the console and the recorder, and loads the "
          "router (pinned beside the patient node) and the console's receiver. It cannot "
          "reach the control paths (their own sessions over UDP carry commands and poses) "
          "nor the patient's direct link to the console (which carries the real video, "
          "status and events): judged are the commands lost and holds, the console's video "
          "freezes (a frozen picture clutches every arm: safe, reported) and the recording",
          5.0, _video_burst, expect_no_hold=True, video=True, expect_commands=True),
)
"""The matrix, in the order it runs."""


def fault_named(name: str) -> Fault:
    """The fault called ``name``; ``ConfigError`` listing the names otherwise."""
    for f in FAULTS:
        if f.name == name:
            return f
    raise ConfigError(f"no fault {name!r}; choose among {', '.join(f.name for f in FAULTS)}")
