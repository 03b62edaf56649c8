"""Control handover end to end: a patient node, the remote surgeon's console and the bedside
backup console, each its own process on loopback with the site's certificates.

The surgeon console (autopilot) claims the robot and moves it; the bedside takes control
mid-motion from its page and the instruments stop where they are, without a jump; the
surgeon asks for control back, the bedside grants it and the surgeon's autopilot moves the
instruments again; the bedside takes over once more and is killed: control passes to the
bedside with nobody driving. The owner is read as every console reads it, on
``control/owner``; the tool tips from the patient's measured state. The bedside page in
headless Chromium (the system's, never a downloaded one) shows its role's buttons, and its
Take control button, its Grant control button and the key T change the announced owner.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import signal
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zenoh

from telesurgery.bench.page import CHROMIUM_ARGS
from telesurgery.clock import now_ns
from telesurgery.config import SafetyConfig, ZenohConfig
from telesurgery.console.control import OwnerView
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.demo.run import (
    DEMO_BACKUP,
    DEMO_MEMBERS_WITH_BACKUP,
    DemoOptions,
    run_demo,
    still_trajectory,
)
from telesurgery.errors import TransportError
from telesurgery.messages import MeasuredCP, Message, Status
from telesurgery.patient.control import ANNOUNCE_PERIOD_S
from telesurgery.security.node import DEMO_SURGEON, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.keys import Keys
from telesurgery.transport.session import RejectCounter, open_session, subscribe
from telesurgery.types import Pose

from ..waiting import wait_until

pytestmark = pytest.mark.integration

SESSION = "handover"
WAIT_S = 120.0  # generous: three real-time processes and a browser on a shared two-core machine
ARMS = ("psm1", "psm2")
SURGEON = f"surgeon:{DEMO_SURGEON}"
BEDSIDE = f"backup:{DEMO_BACKUP}"
SAFETY = SafetyConfig()
CHROMIUM = Path("/usr/bin/chromium")
MAX_STEP_M = SAFETY.max_linear_speed_m_s * (1.0 / 500.0) * 3 + 1e-4
"""The most a tool tip moves between two state samples (500 Hz) under the speed limit, with
a lost sample or two."""
STILL_M = 0.002
"""A held instrument, or one under a hand that holds still, drifts less than this [m]."""


@dataclass
class Watch:
    """What an observer sees: owner announcements and measured tool tips, each with the
    time the patient node sent it [ns] (one machine, one monotonic clock). Not the
    receive time: on a loaded machine samples queue on the way, and a pose sent before a
    hold would count as motion after it."""

    owners: list[tuple[int, OwnerView]] = field(default_factory=list)
    tips: dict[str, list[tuple[int, Pose]]] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_owner(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            with self.changed:
                self.owners.append((msg.sent_ns, OwnerView.parse(msg.body.data)))
                self.changed.notify_all()

    def on_measured(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, MeasuredCP):
            with self.changed:
                self.tips.setdefault(msg.body.arm, []).append((msg.sent_ns, msg.body.measured))
                self.changed.notify_all()

    def wait_owner(self, check: Callable[[OwnerView], bool], after: int, what: str,
                   timeout_s: float = WAIT_S) -> tuple[int, OwnerView]:
        """The first announcement sent after ``after`` [ns] that passes ``check``."""

        def find() -> tuple[int, OwnerView] | None:
            return next(((t, v) for t, v in self.owners if t >= after and check(v)), None)

        with self.changed:
            assert self.changed.wait_for(lambda: find() is not None, timeout_s), (
                f"timed out waiting for {what}; last owner: "
                f"{self.owners[-1][1] if self.owners else None}")
            found = find()
        assert found is not None
        return found

    def tip_at(self, arm: str, t: int) -> Pose:
        """The last tip pose of ``arm`` sent at or before ``t`` [ns]."""
        with self.changed:
            return [p for r, p in self.tips[arm] if r <= t][-1]

    def window(self, arm: str, start: int, end: int) -> list[Pose]:
        with self.changed:
            return [p for r, p in self.tips.get(arm, []) if start <= r <= end]

    def wait_moved(self, arm: str, since: int, metres: float, what: str) -> None:
        origin = self.tip_at(arm, since)

        def moved() -> bool:
            return any(origin.distance(p) > metres for p in self.window(arm, since, 2**63))

        with self.changed:
            assert self.changed.wait_for(moved, WAIT_S), f"timed out waiting for {what}"

    def wait_sent(self, t: int, what: str) -> None:
        """Wait until the patient has sent a tip pose of every arm at or after ``t`` [ns]:
        its state stream proves that its time reached ``t``."""

        def reached() -> bool:
            return all(arm in self.tips and self.tips[arm][-1][0] >= t for arm in ARMS)

        with self.changed:
            assert self.changed.wait_for(reached, WAIT_S), f"timed out waiting for {what}"

    def wait_announced(self, after: int, count: int, what: str) -> list[OwnerView]:
        """The first ``count`` owner announcements sent after ``after`` [ns], once they came
        (the patient announces at least every ``ANNOUNCE_PERIOD_S``, 0.5 s)."""

        def since() -> list[OwnerView]:
            return [v for t, v in self.owners if t > after]

        with self.changed:
            assert self.changed.wait_for(lambda: len(since()) >= count, WAIT_S), (
                f"timed out waiting for {what}")
            return since()[:count]


@dataclass
class Rig:
    watch: Watch
    surgeon: NodeProcess
    backup: NodeProcess

    def page_url(self, console: str) -> str:
        """The page URL ``console`` printed, with its secret, once it serves the page."""
        node = self.surgeon if console == "surgeon" else self.backup

        def printed() -> bool:
            assert node.alive(), node.last_log_line()
            return node.page_url() is not None

        wait_until(printed, f"the {console} console to print its page URL", WAIT_S)
        url = node.page_url()
        assert url is not None
        return url

    def press(self, console: str, action: str) -> None:
        """A button on ``console``'s page, over its WebSocket as the page sends it (with
        the secret from the URL the console printed, as the page passes it on)."""
        page = urllib.parse.urlsplit(self.page_url(console))
        url = f"ws://{page.netloc}/ws?{page.query}"

        async def send() -> None:
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"t": "action", "a": action}))

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, send()).result(timeout=WAIT_S)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    site = throwaway_site(tmp_path / "security", SESSION, DEMO_MEMBERS_WITH_BACKUP)
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    common = ["--session", SESSION, "--no-video", "--connect", patient_ep]
    patient = NodeProcess("patient", ["patient", "--session", SESSION, "--no-video",
                                      "--listen", patient_ep,
                                      *site.args(Role.ROBOT, "patient")], tmp_path)
    surgeon = NodeProcess("console", ["console", *common, "--device", "autopilot",
                                      *site.args(Role.SURGEON, DEMO_SURGEON)], tmp_path)
    backup = NodeProcess("backup", ["backup", *common, "--device", "scripted", "--trajectory",
                                    str(still_trajectory(tmp_path / "still.csv")),
                                    *site.args(Role.BACKUP, DEMO_BACKUP)], tmp_path)
    watch = Watch()
    z: zenoh.Session | None = None
    subs: list[zenoh.Subscriber[None]] = []
    try:
        patient.start()
        observer = site.security(Role.OBSERVER, "observer").zenoh_settings()
        opened: list[zenoh.Session] = []

        def connected() -> bool:
            assert patient.alive(), patient.last_log_line()
            try:
                opened.append(open_session(ZenohConfig(mode="client", connect=[patient_ep],
                                                       gossip=False), observer))
            except TransportError:
                return False
            return True

        wait_until(connected, "the patient node to listen", WAIT_S)
        z = opened[0]
        keys, rejects = Keys(SESSION), RejectCounter()
        subs = [subscribe(z, keys.control_owner, watch.on_owner, rejects),
                *(subscribe(z, keys.measured_cp(arm), watch.on_measured, rejects)
                  for arm in ARMS)]
        surgeon.start()
        backup.start()
        yield Rig(watch, surgeon, backup)
    finally:
        for s in subs:
            s.undeclare()
        for node in (backup, surgeon, patient):
            node.interrupt()
        for node in (backup, surgeon, patient):
            node.wait(15.0)
        if z is not None:
            z.close()


def _no_jump(watch: Watch, start: int, end: int) -> None:
    for arm in ARMS:
        poses = watch.window(arm, start, end)
        assert len(poses) > 100, f"{arm}: {len(poses)} samples around the handover"
        steps = [a.distance(b) for a, b in itertools.pairwise(poses)]
        assert max(steps) <= MAX_STEP_M, f"{arm} jumped {max(steps) * 1e3:.2f} mm"


def test_take_over_request_grant_and_a_lost_bedside(rig: Rig) -> None:
    watch = rig.watch
    # The surgeon console claims the open robot with its first command; the bedside console
    # stands by (it never claims an open robot by driving).
    t_claim, claimed = watch.wait_owner(lambda v: v.owner == SURGEON, 0, "the surgeon's claim")
    assert claimed.handovers == 1
    watch.wait_moved("psm1", t_claim, 0.005, "the surgeon's autopilot to move psm1 5 mm")

    # Take-over mid-motion, from the bedside page: at once, and the instruments stay put.
    pressed = now_ns()
    rig.press("backup", "take_control")
    t_take, taken = watch.wait_owner(lambda v: v.owner == BEDSIDE, pressed, "the take-over")
    assert taken.previous == SURGEON
    assert taken.reason == "bedside take-over"
    # Two seconds of the patient's state under the bedside, read from its own stream.
    held_until = t_take + 2_000_000_000
    watch.wait_sent(held_until, "two seconds of state after the take-over")
    _no_jump(watch, pressed - 500_000_000, held_until)
    # The hold happens as the take-over is judged; the announcement follows within a
    # housekeeping tick, so everything sent from then on is under the hold.
    settled = t_take + 200_000_000
    for arm in ARMS:
        origin = watch.tip_at(arm, settled)
        drift = max(origin.distance(p) for p in watch.window(arm, settled, held_until))
        assert drift < STILL_M, f"{arm} moved {drift * 1e3:.2f} mm under the bedside"

    # The surgeon asks; the bedside sees the request and grants it.
    asked = now_ns()
    rig.press("surgeon", "request_control")
    _, waiting = watch.wait_owner(lambda v: any(r.name == SURGEON for r in v.requests), asked,
                                  "the surgeon's request")
    assert waiting.owner == BEDSIDE
    rig.press("backup", "grant_control")
    t_grant, granted = watch.wait_owner(lambda v: v.owner == SURGEON, asked, "the grant")
    assert granted.previous == BEDSIDE
    assert granted.requests == ()
    # The surgeon's autopilot re-clutches on the held arms and drives again, without a jump.
    watch.wait_moved("psm1", t_grant, 0.003, "the surgeon to move psm1 again")
    _no_jump(watch, t_grant - 500_000_000, now_ns())

    # The bedside takes over again, then its console dies: control lies with the bedside,
    # nobody drives, and the surgeon console cannot claim it.
    again = now_ns()
    rig.press("backup", "take_control")
    watch.wait_owner(lambda v: v.owner == BEDSIDE, again, "the second take-over")
    assert rig.backup.proc is not None
    killed = now_ns()
    os.kill(rig.backup.proc.pid, signal.SIGKILL)
    t_lost, lost = watch.wait_owner(lambda v: v.owner == "bedside", killed,
                                    "control to pass to the bedside")
    assert lost.session is None
    assert lost.previous == BEDSIDE
    assert (t_lost - killed) * 1e-6 >= 0.9 * SAFETY.owner_lost_ms
    # A second and a half of announcements while the surgeon console runs: none hands
    # control to it.
    n = round(1.5 / ANNOUNCE_PERIOD_S)
    later = watch.wait_announced(t_lost, n, f"{n} announcements after the loss")
    assert [v.owner for v in later] == ["bedside"] * n, later
    assert rig.surgeon.alive(), rig.surgeon.last_log_line()
    assert later[-1].handovers == 5  # claim, take-over, grant, take-over, loss


def test_the_demo_drill_hands_over_and_the_summary_says_so(tmp_path: Path) -> None:
    summary: dict[str, Any] = run_demo(
        DemoOptions(duration_s=8.0, workdir=tmp_path, video=False, backup=True,
                    takeover_at_s=3.0), threading.Event())
    sec = summary["security"]
    assert sec["owner"] == BEDSIDE
    assert sec["handovers"] == 2  # the surgeon's claim, the bedside's take-over
    backup = summary["backup"]
    assert backup["holds_control"] is True
    assert backup["actions"] == {"take_over": 1}
    assert backup["signalled_at_s"] >= 3.0
    assert backup["driving_s"] > 1.0
    # Only the few commands in flight while the owner changed were refused.
    refused = summary["control"]["rejected_by_reason"].get("wrong_session", 0)
    assert refused < 500, summary["control"]["rejected_by_reason"]


def test_the_bedside_page_takes_control_and_grants_it(rig: Rig) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("the system Chromium (/usr/bin/chromium) is not installed")
    watch = rig.watch
    watch.wait_owner(lambda v: v.owner == SURGEON, 0, "the surgeon's claim")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.goto(rig.page_url("backup"))  # printed once the page is served
            timeout_ms = WAIT_S * 1000
            page.wait_for_selector("#take:visible", timeout=timeout_ms)
            assert not page.is_visible("#request")
            assert page.is_disabled("#grant")  # nobody asks for control yet
            page.wait_for_function(
                "document.getElementById('hud-owner').textContent.startsWith("
                f"'{SURGEON}')", timeout=timeout_ms)

            clicked = now_ns()
            page.click("#take")
            watch.wait_owner(lambda v: v.owner == BEDSIDE, clicked, "the take-over")
            page.wait_for_function(
                "document.getElementById('hud-owner').textContent.startsWith("
                f"'you ({BEDSIDE})')", timeout=timeout_ms)
            assert "you have control" in str(page.text_content("#in-control"))

            asked = now_ns()
            rig.press("surgeon", "request_control")
            page.wait_for_selector("#grant:enabled", timeout=timeout_ms)
            assert SURGEON in str(page.text_content("#hud-requests"))
            page.click("#grant")
            watch.wait_owner(lambda v: v.owner == SURGEON, asked, "the grant")
            page.wait_for_function(
                "document.getElementById('hud-owner').textContent.startsWith("
                f"'{SURGEON}')", timeout=timeout_ms)

            # The key T is the same one action as the button.
            pressed = now_ns()
            page.keyboard.press("KeyT")
            watch.wait_owner(lambda v: v.owner == BEDSIDE, pressed, "the take-over by key")
        finally:
            browser.close()
