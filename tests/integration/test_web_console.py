"""The surgeon console page in headless Chromium against a real patient node and console.

Patient and console run as processes on loopback (console ``--device web``); the
system's Chromium (never a downloaded one) loads the page through Playwright.
Checks: frames are painted and look like the rendered scene (WebCodecs and the
JPEG fallback), the HUD's numbers update, paint reports reach the console, and
a key held in the page moves the instrument in the robot's measured state. The page is
opened at the URL the console printed (with its secret); a local process without the
secret, or a foreign site, reaches nothing.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import math
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import pytest

from telesurgery.camera import CameraRenderer, RGBImage
from telesurgery.config import ZenohConfig
from telesurgery.console.web.access import new_token
from telesurgery.console.web.protocol import VideoKind
from telesurgery.console.web.server import FALLBACK_RESTARTS
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.errors import TransportError
from telesurgery.messages import MeasuredCP, Message
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.security.node import DEMO_SURGEON, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.keys import Keys
from telesurgery.transport.session import RejectCounter, open_session, subscribe
from telesurgery.types import Pose
from telesurgery.video.quality import psnr

from ..waiting import wait_until

pytestmark = pytest.mark.integration
T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
WAIT_S = 90.0  # generous: software rendering and decoding on a shared 2-core machine
SESSION = "webtest"
SIMILAR_DB = 25.0
"""The page's picture against a render of the scene: H.264 or JPEG, a canvas, and the arms
a hair off their start poses; unrelated pictures of the scene (shifted) score far lower."""

sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("the system Chromium (/usr/bin/chromium) is not installed",
                allow_module_level=True)


def _wait(condition: Callable[[], bool], what: str | Callable[[], str],
          timeout_s: float = WAIT_S) -> None:
    wait_until(condition, what, timeout_s)


@dataclass
class Tips:
    """The latest measured tool tip of each arm, from the patient's measured_cp."""

    poses: dict[str, Pose] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_measured(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, MeasuredCP):
            with self.lock:
                self.poses[msg.body.arm] = msg.body.measured

    def get(self, arm: str) -> Pose | None:
        with self.lock:
            return self.poses.get(arm)


@dataclass
class System:
    url: str
    """The page URL the console printed, with its secret (``?token=``)."""
    tips: Tips
    console: NodeProcess

    @property
    def base(self) -> str:
        """The page's address without the secret: what a local attacker knows."""
        return self.url.split("?", 1)[0]

    @property
    def token(self) -> str:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["token"][0]

    @property
    def ws(self) -> str:
        """The page's WebSocket with the secret, as the page's script opens it."""
        return f"{self.base}ws?token={self.token}"

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}api/status?token={self.token}",
                                    timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
        return data


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Patient node and a web-driven console as processes, and a watcher of the tool tips."""
    workdir = tmp_path_factory.mktemp("web")
    site = throwaway_site(workdir / "security", SESSION)
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    patient = NodeProcess("patient", ["patient", "--session", SESSION, "--listen", patient_ep,
                                      *site.args(Role.ROBOT, "patient")], workdir)
    console = NodeProcess("console", ["console", "--session", SESSION, "--connect", patient_ep,
                                      "--device", "web",
                                      *site.args(Role.SURGEON, DEMO_SURGEON)], workdir)
    watcher = site.security(Role.OBSERVER, "observer").zenoh_settings()
    tips = Tips()
    subs = []
    z: Any = None
    try:
        patient.start()

        def patient_listens() -> bool:
            nonlocal z
            assert patient.alive(), patient.last_log_line()
            try:
                z = open_session(ZenohConfig(mode="client", connect=[patient_ep],
                                             gossip=False), watcher)
            except TransportError:
                return False
            return True

        _wait(patient_listens, "the patient node to listen")
        keys = Keys(SESSION)
        subs = [subscribe(z, keys.measured_cp(arm), tips.on_measured, RejectCounter())
                for arm in ("psm1", "psm2")]
        console.start()

        def page_printed() -> bool:
            assert console.alive(), console.last_log_line()
            return console.page_url() is not None

        # The console prints its page's URL, with the secret, once it serves the page.
        _wait(page_printed, "the console to print its page URL")
        url = console.page_url()
        assert url is not None
        assert url.startswith("http://127.0.0.1:")
        assert "?token=" in url
        sys_ = System(url, tips, console)
        sys_.status()
        _wait(lambda: tips.get("psm1") is not None, "the patient's measured poses")
        yield sys_
    finally:
        for s in subs:
            s.undeclare()
        for node in (console, patient):
            node.interrupt()
        for node in (console, patient):
            node.wait(15.0)
        if z is not None:
            z.close()




@pytest.fixture(scope="module")
def home_render() -> RGBImage:
    """The endoscope's view of the scene with the arms at their start poses."""
    robot = SimRobot()
    try:
        with CameraRenderer(robot.model, "ecm", 640, 480) as r:
            r.update_scene(robot.data)
            return r.render()
    finally:
        robot.close()


_READ_CANVAS = """() => {
  const c = document.getElementById('video');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
  }
  return [c.width, c.height, btoa(s)];
}"""


def _canvas(page: Any) -> RGBImage:
    w, h, data = page.evaluate(_READ_CANVAS)
    rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(h, w, 4)
    return np.ascontiguousarray(rgba[:, :, :3])


def _painted(page: Any) -> bool:
    return float(_canvas(page).mean()) > 10.0  # the canvas starts black


def _hud(page: Any, element: str) -> str:
    return str(page.text_content(f"#hud-{element}") or "")


def _number(text: str) -> float:
    try:
        return float(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return math.nan


def _run(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine`` on a loop of its own: Playwright's loop holds this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine()).result(timeout=WAIT_S)


def _open(browser: Any, system: System, init_script: str | None = None,
          query: str = "") -> Any:
    page = browser.new_page()
    if init_script is not None:
        page.add_init_script(init_script)
    page.goto(system.url + query)
    _wait(lambda: _painted(page), "the first painted frame")
    return page


def test_the_page_paints_the_endoscope_with_webcodecs(browser: Any, system: System,
                                                      home_render: RGBImage) -> None:
    # WebCodecs whatever happens: on a starved machine the page would otherwise be switched
    # to JPEG (tested below).
    page = _open(browser, system, query="&codec=h264")
    try:
        assert page.evaluate("typeof VideoDecoder") == "function"
        # Cross-origin isolated: the page's paint times have fine-grained timers.
        assert page.evaluate("crossOriginIsolated") is True
        _wait(lambda: _hud(page, "codec") == "h264", "the HUD to say h264")
        shown = _canvas(page)
        assert shown.shape == home_render.shape
        score = psnr(home_render, shown)
        shifted = psnr(np.roll(home_render, 40, axis=1), shown)
        assert score >= SIMILAR_DB, f"page vs render {score:.1f} dB"
        assert shifted < score - 6.0, (score, shifted)
        # The page reports each painted frame back; the console measures from them.
        _wait(lambda: (system.status()["page"] or {}).get("frames", 0) >= 30,
              "30 paint reports at the console")
        page_figures = system.status()["page"]
        assert page_figures["glass_to_glass_ms"]["p50"] > 0.0
        assert {"transport", "decode", "paint"} <= set(page_figures["stages_ms"])
    finally:
        page.close()


def test_without_webcodecs_the_page_paints_jpeg(browser: Any, system: System,
                                                home_render: RGBImage) -> None:
    page = _open(browser, system, "delete window.VideoDecoder;")
    try:
        assert page.evaluate("typeof VideoDecoder") == "undefined"
        _wait(lambda: _hud(page, "codec") == "jpeg", "the HUD to say jpeg")
        score = psnr(home_render, _canvas(page))
        assert score >= SIMILAR_DB, f"page vs render {score:.1f} dB"
        assert system.status()["web"]["frames_sent"]["jpeg"] > 0
    finally:
        page.close()


def test_the_hud_numbers_update(browser: Any, system: System) -> None:
    page = _open(browser, system)
    try:
        _wait(lambda: _hud(page, "safety") in {"ENGAGED", "HOLD"}, "the safety state")
        _wait(lambda: _number(_hud(page, "control-rate")) > 500.0, "the control rate")
        _wait(lambda: _number(_hud(page, "fps")) > 5.0, "painted frames per second")
        _wait(lambda: not math.isnan(_number(_hud(page, "g2g"))), "glass-to-glass")
        _wait(lambda: not math.isnan(_number(_hud(page, "video-age"))), "the video age")
        ages: set[str] = set()

        def age_changes() -> bool:
            ages.add(_hud(page, "video-age"))
            return len(ages) >= 3

        _wait(age_changes, "the video age to change", timeout_s=30.0)
        _wait(lambda: "rtt" in str(page.text_content("#hud-links")), "link figures per path")
        assert "psm1" in _hud(page, "clutch")
        # The only console claimed control with its first command.
        _wait(lambda: _hud(page, "owner").startswith(f"you (surgeon:{DEMO_SURGEON})"),
              lambda: f"the HUD to show this console in control ({_hud(page, 'owner')})")
        assert page.is_visible("#request")
        assert not page.is_visible("#take")
        assert _hud(page, "task").startswith("peg_transfer")
    finally:
        page.close()


def _clutch_if_held(page: Any) -> str:
    """The clutch HUD; a safety hold (the watchdog, on a loaded machine) is cleared the way
    a surgeon does it: a tap on the clutch."""
    clutch = _hud(page, "clutch")
    if "psm1 held" in clutch:
        page.keyboard.press("Space")
    return clutch


def test_a_held_key_moves_the_instrument(browser: Any, system: System) -> None:
    page = _open(browser, system)
    try:
        _wait(lambda: "psm1 engaged" in _clutch_if_held(page), "psm1 to engage")
        before, other = system.tips.get("psm1"), system.tips.get("psm2")
        assert before is not None
        assert other is not None
        picture_before = _canvas(page)
        page.keyboard.down("KeyD")
        try:
            def moved() -> bool:
                _clutch_if_held(page)
                now = system.tips.get("psm1")
                return now is not None and now.distance(before) > 0.005

            _wait(moved, lambda: f"the instrument to move 5 mm (HUD: {_hud(page, 'clutch')}; "
                                 f"{_hud(page, 'alarms')})", timeout_s=30.0)
        finally:
            page.keyboard.up("KeyD")
        other_now = system.tips.get("psm2")
        assert other_now is not None
        moved_mm = other_now.distance(other) * 1e3
        assert moved_mm < 1.0, f"psm2, not under the hand, moved {moved_mm:.2f} mm"
        _wait(lambda: psnr(picture_before, _canvas(page)) < 40.0, "the picture to change",
              timeout_s=30.0)
        figures = system.status()["page"]
        assert figures["motion_to_photon_ms"]["count"] > 0
    finally:
        page.close()


def test_other_sites_cannot_reach_the_page_or_its_socket(system: System) -> None:
    port = system.base.rsplit(":", 1)[1].strip("/")
    rebound = urllib.request.Request(system.url, headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(rebound, timeout=10)
    err.value.close()
    assert err.value.code == 403

    async def foreign_socket() -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(system.ws,
                                           headers={"Origin": "http://evil.example"}):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert _run(foreign_socket) == 403


def test_a_local_process_without_the_secret_drives_nothing(system: System) -> None:
    """What the probe did (psm1 moved 44 mm): a process on this machine opens the page's
    WebSocket with no Origin and no secret, an empty or a wrong one, or forges the page's
    own Origin, and tries to drive psm1 and take control. Each handshake is refused with
    401 before the upgrade; an HTTP/1.0 request without a Host gets 400."""
    still = {arm: system.tips.get(arm) for arm in ("psm1", "psm2")}
    before = system.status()["web"]
    ws = f"{system.base}ws"
    attempts: list[tuple[str, dict[str, str]]] = [
        (ws, {}), (f"{ws}?token=", {}), (f"{ws}?token={new_token()}", {}),
        (f"{ws}?token={system.token[:-1]}", {}),
        (ws, {"Origin": system.base.rstrip("/")})]

    async def attack() -> list[int]:
        answers = []
        async with aiohttp.ClientSession() as http:
            for url, headers in attempts:
                try:
                    async with http.ws_connect(url, headers=headers) as sock:
                        await sock.send_str('{"t": "hello", "webcodecs": true}')
                        await sock.send_str('{"t": "input", "arm": "psm1", "move": [1, 0, 0], '
                                            '"grip": 1}')
                        await sock.send_str('{"t": "action", "a": "take_control"}')
                        answers.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    answers.append(exc.status)
        return answers

    assert _run(attack) == [401] * len(attempts)
    port = int(system.base.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(f"GET /ws?token={system.token} HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = raw.recv(4096)
            assert chunk, f"closed without an answer: {answer!r}"
            answer += chunk
        assert answer.split(b" ", 2)[1] == b"400", answer
    after = system.status()["web"]
    assert after["requests_refused"]["token"] == before["requests_refused"]["token"] + 5
    assert after["requests_refused"]["host"] == before["requests_refused"]["host"] + 1
    assert after["pages_opened"] == before["pages_opened"]
    assert after["rejected"] == before["rejected"]
    for arm, pose in still.items():
        now = system.tips.get(arm)
        assert pose is not None
        assert now is not None
        assert now.distance(pose) < 0.001, arm


def test_bad_page_messages_are_counted_and_move_nothing(system: System) -> None:
    still = {arm: system.tips.get(arm) for arm in ("psm1", "psm2")}
    refused = system.status()["web"]["rejected"]
    bad = ["{", '{"t": "input", "arm": "psm1", "move": [1e9, 0, 0], "grip": 1}',
           '{"t": "input", "arm": "psm1", "move": [1, 0, 0], "grip": NaN}',
           '{"t": "input", "arm": "ecm", "move": [1, 0, 0], "grip": 1}',
           '{"t": "action", "a": "self_destruct"}']

    async def send_bad() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(system.ws) as ws:
            await ws.send_str('{"t": "hello", "webcodecs": true}')
            for text in bad:
                await ws.send_str(text)
            await ws.send_bytes(b"\x00")

    _run(send_bad)
    _wait(lambda: system.status()["web"]["rejected"] >= refused + len(bad) + 1,
          "the refusals to be counted", timeout_s=10.0)
    for arm, before in still.items():
        now = system.tips.get(arm)
        assert before is not None
        assert now is not None
        assert now.distance(before) < 0.001, arm


def test_a_page_that_keeps_falling_behind_is_switched_to_jpeg(system: System) -> None:
    """A page that restarts its H.264 stream again and again (a starved browser: each
    restart costs an IDR) gets JPEG pictures, which it may skip one by one."""
    fallbacks = system.status()["web"]["fallbacks_to_jpeg"]

    async def fall_behind() -> tuple[dict[str, Any], int]:
        async with aiohttp.ClientSession() as http, http.ws_connect(system.ws) as ws:
            await ws.send_str('{"t": "hello", "webcodecs": true}')
            for _ in range(FALLBACK_RESTARTS):
                await ws.send_str('{"t": "action", "a": "keyframe"}')
            switched: dict[str, Any] | None = None
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if data.get("t") == "codec":
                        switched = data
                elif msg.type is aiohttp.WSMsgType.BINARY and switched is not None:
                    return switched, int(msg.data[0])
            raise AssertionError("the socket closed before a picture came")

    switched, kind = _run(fall_behind)
    assert switched["codec"] == "jpeg"
    assert "restarted its H.264 stream" in switched["why"]
    assert kind == VideoKind.JPEG
    assert system.status()["web"]["fallbacks_to_jpeg"] == fallbacks + 1


def _ghosts(page: Any) -> dict[str, tuple[list[float], list[float]]]:
    """The ghost and measured tip pixels the page drew last, per arm."""
    out = {}
    for item in str(page.get_attribute("#stage", "data-ghost") or "").split():
        arm, ghost, seen = [*item.split(":"), ""][:3]
        if seen:
            out[arm] = ([float(v) for v in ghost.split(",")], [float(v) for v in seen.split(",")])
    return out


def test_the_ghost_is_drawn_on_the_instruments_and_can_be_hidden(browser: Any,
                                                                 system: System) -> None:
    page = _open(browser, system)
    try:
        # The patient publishes its camera's intrinsics with the video; the console sends
        # each picture with the instruments' commanded tips; the page draws them.
        _wait(lambda: {"psm1", "psm2"} <= set(_ghosts(page)),
              lambda: f"both ghosts drawn: {page.get_attribute('#stage', 'data-ghost')!r}")
        for arm, (ghost, seen) in _ghosts(page).items():
            # No link in between and the tools at rest: the ghost is on the tool.
            assert ghost == pytest.approx(seen, abs=3.0), arm
            assert 0.0 < ghost[0] < 640.0, arm
            assert 0.0 < ghost[1] < 480.0, arm
        page.keyboard.press("KeyP")
        _wait(lambda: page.get_attribute("#stage", "data-ghost") == "off", "the ghost hidden")
        assert page.text_content("#ghost") == "ghost off"
    finally:
        page.close()
