"""The operation streamed to an audience: a real patient node (MuJoCo, H.264) behind a site
router, the observer gateway joining the router with an observer certificate, the viewer
page in headless Chromium, lightweight WebSocket viewers, and the HLS tier read by a real
HLS parser and decoded with PyAV."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import av
import m3u8
import pytest

from telesurgery.audience import Gateway, GatewayOptions, read_watermarks
from telesurgery.audience.client import LightViewer, ViewerFigures
from telesurgery.audience.gateway import OPERATOR
from telesurgery.audience.hls import SEGMENT_S
from telesurgery.clock import now_ns
from telesurgery.config import ZenohConfig
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.errors import TransportError
from telesurgery.messages import Message, ServoCP, Status
from telesurgery.record.audit import record_object
from telesurgery.record.layout import TRAIL_SUFFIX
from telesurgery.security.node import DEMO_SURGEON, Site, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.types import Pose

from ..conftest import CHROMIUM
from ..waiting import wait_until

pytestmark = pytest.mark.integration

WAIT_S = 90.0  # generous: software rendering and decoding on a shared 2-core machine
SESSION = "audtest"
T = TypeVar("T")


@dataclass
class Rig:
    site: Site
    router_ep: str
    gateway: Gateway
    trail_dir: Path
    """Where the patient node writes its audit trail."""

    def trail(self) -> list[dict[str, Any]]:
        """The patient's audit records so far."""
        return [r for path in self.trail_dir.rglob(f"*{TRAIL_SUFFIX}")
                for line in path.read_text().splitlines()
                if (r := record_object(line)) is not None]


def _run(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine`` on a loop of its own (Playwright's may hold this thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine()).result(timeout=WAIT_S * 2)


def _client(rig: Rig, role: Role, name: str) -> Any:
    return open_session(ZenohConfig(mode="client", connect=[rig.router_ep], gossip=False),
                        rig.site.security(role, name).zenoh_settings())


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _ws(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"ws://{parts.netloc}/ws?{parts.query}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A site router, the patient node (video on) as its peer, and a gateway, not yet
    broadcasting, as a client of the router with the site's observer certificate."""
    workdir = tmp_path_factory.mktemp("audience")
    site = throwaway_site(workdir / "security", SESSION)
    router_ep = f"tcp/127.0.0.1:{free_port()}"
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    router = NodeProcess("router", ["router", "--listen", router_ep,
                                    *site.args(Role.ROUTER, "site")], workdir)
    patient = NodeProcess("patient", ["patient", "--session", SESSION, "--mode", "peer",
                                      "--listen", patient_ep, "--connect", router_ep,
                                      "--record", str(workdir / "trail"),
                                      *site.args(Role.ROBOT, "patient")], workdir)
    gateway: Gateway | None = None
    try:
        router.start(with_report=False)
        patient.start()

        def joined() -> bool:
            nonlocal gateway
            assert router.alive(), router.last_log_line()
            assert patient.alive(), patient.last_log_line()
            try:
                gateway = Gateway(GatewayOptions(SESSION, (router_ep,), mentors=("dr-chen",),
                                                 log_path=workdir / "viewers.jsonl"),
                                  site.security(Role.OBSERVER, "observer").zenoh_settings(),
                                  hls_root=workdir / "hls")
            except TransportError:
                return False
            return True

        wait_until(joined, "the gateway to join the router", WAIT_S)
        assert gateway is not None
        gateway.start()
        wait_until(lambda: gateway is not None and gateway.view.arms != {},
                   "the patient's state at the gateway", WAIT_S)
        yield Rig(site, router_ep, gateway, workdir / "trail")
    finally:
        if gateway is not None:
            gateway.close()
        for node in (patient, router):
            node.interrupt()
        for node in (patient, router):
            node.wait(15.0)


@pytest.fixture
def broadcasting(rig: Rig) -> Iterator[Gateway]:
    """The rig's gateway with the broadcast on (allowed by the bedside), off afterwards."""
    gw = rig.gateway
    operator = gw.url_of(OPERATOR).replace("/?", "/api/broadcast?")
    assert _post(operator, {"on": True, "by": "nurse-lead"}) == 200
    try:
        yield gw
    finally:
        assert _post(operator, {"on": False, "by": "nurse-lead"}) == 200


def test_nothing_is_streamed_until_the_team_enables_it_and_it_stops_at_once(
        rig: Rig) -> None:
    gw = rig.gateway
    assert not gw.broadcasting
    # A viewer may connect, and gets no picture; the HLS tier has nothing.
    figures = _run(lambda: _watch(gw.url_of("audience"), 2.0))
    assert figures.frames == 0
    assert figures.huds > 0
    assert _get(gw.hls_url)[0] == 404
    # Only the operator's token switches it; a viewer's cannot.
    viewer_switch = gw.url_of("audience").replace("/?", "/api/broadcast?")
    assert _post(viewer_switch, {"on": True, "by": "someone"}) == 401
    assert not gw.broadcasting
    operator = gw.url_of(OPERATOR).replace("/?", "/api/broadcast?")
    z = _client(rig, Role.RECORDER, "recorder")
    announced: list[dict[str, Any]] = []

    def on_announce(msg: Message, _rx: int) -> None:
        if isinstance(msg.body, Status):
            announced.append(msg.body.data)

    sub = subscribe(z, Keys(SESSION).audience_broadcast("*"), on_announce, RejectCounter())
    try:
        wait_until(lambda: gw.announcement_heard, "the recorder's subscription at the gateway",
                   WAIT_S)
        assert _post(operator, {"on": True, "by": "nurse-lead"}) == 200
        wait_until(lambda: _get(gw.hls_url)[0] == 200, "the HLS playlist", WAIT_S)
        assert _post(operator, {"on": False, "by": "nurse-lead"}) == 200
        # At once: the playlist and its segments are gone, the viewers get nothing more.
        assert _get(gw.hls_url)[0] == 404
        sent = gw.web.status()["frames_sent"]["h264"]
        figures = _run(lambda: _watch(gw.url_of("audience"), 1.0))
        assert figures.frames == 0
        assert gw.web.status()["frames_sent"]["h264"] == sent
        wait_until(lambda: len(announced) >= 2, "both announcements on the session", WAIT_S)
    finally:
        sub.undeclare()
        z.close()
    assert [(a["broadcast"], a["by"]) for a in announced[:2]] == [
        (True, "nurse-lead"), (False, "nurse-lead")]
    # The patient's signed audit trail records both, and who allowed the broadcast.

    def audited() -> list[tuple[bool, str]]:
        return [(r["data"]["broadcast"], r["data"]["by"]) for r in rig.trail()
                if r.get("kind") == "broadcast"]

    wait_until(lambda: len(audited()) >= 2, "the broadcast in the patient's audit trail",
               WAIT_S)
    assert audited()[:2] == [(True, "nurse-lead"), (False, "nurse-lead")]
    events = [json.loads(line) for line in
              Path(str(gw.options.log_path)).read_text().splitlines()]
    changes = [(e["event"], e["by"]) for e in events if e["event"].startswith("broadcast")]
    assert changes[-2:] == [("broadcast_start", "nurse-lead"), ("broadcast_stop", "nurse-lead")]
    # Every viewer session is logged: when, from where, whose token (never the token).
    opens = [e for e in events if e["event"] == "viewer_open"]
    assert opens
    assert all(e["address"] == "127.0.0.1" and e["viewer"] == "audience"
                         for e in opens)
    assert not any(t in json.dumps(events) for t in gw.tickets)


async def _watch_all(urls: list[str], seconds: float,
                     stall: dict[int, float] | None = None) -> list[ViewerFigures]:
    viewers = [LightViewer(_ws(u)) for u in urls]
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(v.run(stop, http)) for v in viewers]
        await asyncio.gather(*(v.connected.wait() for v in viewers))
        for i, s in (stall or {}).items():
            # Once it has seen pictures, as a viewer that falls behind in mid-stream.
            while viewers[i].figures.frames < 10:
                await asyncio.sleep(0.05)
            viewers[i].stall(s)
        await asyncio.sleep(seconds)
        stop.set()
        return list(await asyncio.gather(*tasks))


async def _watch(url: str, seconds: float) -> ViewerFigures:
    return (await _watch_all([url], seconds))[0]


def test_a_slow_viewer_skips_to_a_keyframe_and_never_holds_back_a_fast_one(
        rig: Rig, broadcasting: Gateway) -> None:
    url = broadcasting.url_of("audience")
    fast, slow = _run(lambda: _watch_all([url, url], 6.0, stall={1: 2.0}))
    # The fast viewer kept getting pictures through the slow one's stall, in order.
    assert fast.frames >= 60, fast
    assert fast.gaps <= 1, fast
    # The slow one lost frames meanwhile and came back at a keyframe, never mid-GOP.
    assert slow.gaps >= 1, slow
    assert slow.restarts_on_keyframe == slow.gaps, slow
    assert broadcasting.web.status()["dropped"] > 0


def test_the_hls_tier_parses_and_its_segments_decode(rig: Rig, broadcasting: Gateway) -> None:
    gw = broadcasting

    def listed() -> bool:
        status, _ = _get(gw.hls_url)
        return status == 200 and len(m3u8.load(gw.hls_url).segments) >= 3

    wait_until(listed, "three segments in the live playlist", WAIT_S)
    playlist = m3u8.load(gw.hls_url)
    assert playlist.target_duration == 1
    assert playlist.is_independent_segments
    # HLS's rule for the target duration (RFC 8216 4.3.3.1): each segment rounds to at most
    # it. Each is cut at an IDR the gateway asked for (a loaded machine may deliver it late;
    # the bench reports the longest).
    assert all(0.0 < round(s.duration) <= SEGMENT_S for s in playlist.segments), [
        s.duration for s in playlist.segments]
    base = gw.hls_url.rsplit("/", 1)[0]
    init = _get(f"{base}/{playlist.segment_map[0].uri}")[1]
    segment = _get(f"{base}/{playlist.segments[-1].uri}")[1]
    with av.open(io.BytesIO(init + segment), "r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 10
    assert (frames[0].width, frames[0].height) == (640, 480)
    # Every picture carries the watermark: the session and its capture time, no more.
    marks = read_watermarks(segment)
    assert len(marks) == len(frames)
    assert {m.session for m in marks} == {SESSION}
    assert all(b.capture_unix_ms > a.capture_unix_ms for a, b in itertools.pairwise(marks))


def test_the_viewer_page_paints_with_a_watermark_and_has_no_controls(
        rig: Rig, broadcasting: Gateway, browser: Any) -> None:
    if not CHROMIUM.exists():
        pytest.skip("the system Chromium is not installed")
    page = browser.new_page()
    try:
        page.goto(broadcasting.url_of("audience"))
        wait_until(lambda: page.evaluate(_PAINTED), "the viewer page's first picture", WAIT_S)
        assert page.evaluate("typeof VideoDecoder") == "function"
        # Nothing to press, type or choose: the page shows, it never drives.
        assert page.locator("button, input, select, textarea").count() == 0
        wait_until(lambda: "nurse-lead" in (page.text_content("#broadcast") or ""),
                   "the HUD naming who allowed the broadcast", WAIT_S)
        assert page.text_content("#session") == SESSION
        # The watermark is in the painted pixels: light text on the dark band, bottom right.
        assert page.evaluate(_WATERMARK_LIT)
        wait_until(lambda: (broadcasting.web.page_report() or {}).get("frames", 0) >= 10,
                   "ten paint reports at the gateway", WAIT_S)
    finally:
        page.close()


_PAINTED = """() => {
  const c = document.getElementById('video');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height / 2).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
  return s / (d.length / 4) > 30;
}"""
_WATERMARK_LIT = """() => {
  const c = document.getElementById('video');
  const size = Math.max(12, Math.round(c.height / 30));
  const d = c.getContext('2d').getImageData(c.width / 2, c.height - 2 * size, c.width / 2,
                                            1.6 * size).data;
  let bright = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 200) bright++;
  return bright > 50;
}"""


def test_an_observer_certificate_cannot_command_and_a_mentor_only_points(
        rig: Rig, broadcasting: Gateway) -> None:
    keys = Keys(SESSION)
    seen: list[str] = []
    recorder = _client(rig, Role.RECORDER, "recorder")
    observer = _client(rig, Role.OBSERVER, "monitor")
    sub = recorder.declare_subscriber(keys.everything,
                                      lambda s: seen.append(str(s.key_expr)))
    sid = new_session_id()
    command = Publisher(observer, keys.servo_cp("psm1"), Stream.COMMAND, sid)
    request = Publisher(observer, keys.control_request, Stream.EVENT, sid)
    try:
        # The observer's client knows of a subscriber (the recorder's) and sends: what
        # keeps the commands out is the router's access control, not a silent client.
        wait_until(lambda: command.matched and request.matched,
                   "the observer's publishers to see a subscriber", WAIT_S)
        for _ in range(20):
            command.put(ServoCP("psm1", Pose(), now_ns()))
            request.put(Status({"request": "control"}))
        # A mentor's mark goes out (the gateway relays it); the observer's commands never.
        mentor = broadcasting.url_of("dr-chen").replace("/?", "/api/mark?")

        def relayed() -> bool:
            # A mark made before the gateway learns of the new subscriber reaches nobody:
            # keep pointing, as a mentor does.
            assert _post(mentor, {"x": 0.5, "y": 0.25, "down": True}) == 200
            return keys.audience_mark("gateway") in seen

        wait_until(relayed, "the mentor's mark", WAIT_S)
        assert keys.servo_cp("psm1") not in seen
        assert keys.control_request not in seen
    finally:
        command.close()
        request.close()
        sub.undeclare()
        observer.close()
        recorder.close()
    # An audience token may not point; the viewer page's socket takes no input or action.
    audience = broadcasting.url_of("audience").replace("/?", "/api/mark?")
    assert _post(audience, {"x": 0.5, "y": 0.5, "down": False}) == 403
    rejected = broadcasting.web.rejects.total
    _run(lambda: _send_page_messages(broadcasting.url_of("dr-chen")))
    wait_until(lambda: broadcasting.web.rejects.total >= rejected + 2,
               "the gateway refusing a page's input and action", WAIT_S)
    assert broadcasting.view.owner is None


async def _send_page_messages(url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(_ws(url)) as ws:
        await ws.send_str(json.dumps({"t": "input", "arm": "psm1", "v": [0.01, 0, 0]}))
        await ws.send_str(json.dumps({"t": "action", "a": "take_control"}))
        await ws.close()


def test_a_second_gateway_behind_a_second_router_serves_its_own_viewers(
        rig: Rig, broadcasting: Gateway) -> None:
    # A second site's router, joined to the first (Zenoh routers fan out the session), and
    # a gateway of its own as its client: the audience scales out by adding both.
    second_ep = f"tcp/127.0.0.1:{free_port()}"
    router = open_session(ZenohConfig(mode="router", listen=[second_ep],
                                      connect=[rig.router_ep], gossip=False),
                          rig.site.security(Role.ROUTER, "site").zenoh_settings())
    second: Gateway | None = None
    try:
        second = Gateway(GatewayOptions(SESSION, (second_ep,), name="gateway-2",
                                        broadcast=True, allowed_by="nurse-lead", hls=False),
                         rig.site.security(Role.OBSERVER, "observer").zenoh_settings())
        second.start()
        wait_until(lambda: second is not None and second.frames_in > 0,
                   "video at the second gateway", WAIT_S)
        first_fig, second_fig = _run(lambda: _watch_all(
            [broadcasting.url_of("audience"), second.url_of("audience")], 4.0))
        assert first_fig.frames >= 30, first_fig
        assert second_fig.frames >= 30, second_fig
        # The same session's pictures: the two gateways' viewers saw the same frames.
        assert set(first_fig.indices) & set(second_fig.indices)
    finally:
        if second is not None:
            second.close()
        router.close()


def test_a_mentors_pointer_shows_on_the_surgeons_page_with_the_mentors_name(
        rig: Rig, broadcasting: Gateway, browser: Any,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    if not CHROMIUM.exists():
        pytest.skip("the system Chromium is not installed")
    console = NodeProcess("console", ["console", "--session", SESSION, "--mode", "peer",
                                      "--connect", rig.router_ep, "--device", "web",
                                      *rig.site.args(Role.SURGEON, DEMO_SURGEON)],
                          tmp_path_factory.mktemp("surgeon"))
    console.start()
    page = browser.new_page()
    try:
        def page_printed() -> bool:
            assert console.alive(), console.last_log_line()
            return console.page_url() is not None

        wait_until(page_printed, "the surgeon console's page URL", WAIT_S)
        page.goto(str(console.page_url()))
        wait_until(lambda: page.evaluate(_PAINTED), "the surgeon's first picture", WAIT_S)
        mentor = broadcasting.url_of("dr-chen").replace("/?", "/api/mark?")

        def shown() -> bool:
            # Marks fade when the mentor is still: keep pointing, as a mentor does.
            assert _post(mentor, {"x": 0.3, "y": 0.6, "down": True}) == 200
            return "dr-chen" in str(page.evaluate(
                "document.getElementById('stage').dataset.marks || ''"))

        wait_until(shown, "the mentor's mark drawn on the surgeon's picture", WAIT_S)
    finally:
        page.close()
        console.interrupt()
        console.wait(15.0)
