"""The console's web page: aiohttp on loopback, in a thread with its own event loop.

Serves ``static/`` (the page) and one WebSocket per open page (``/ws``; the
message layout is in ``protocol.py``); ``/api/status`` returns the HUD, the
page counters and the page latency figures as JSON. Everything but the script
wants this launch's secret (``?token=``, as in the URL the console prints), a
Host naming this server on loopback and no foreign Origin (``access.py``); at
most ``MAX_PAGES`` pages are open at once. Frames reach the pages as they
reach the console:

- pages with WebCodecs get each H.264 access unit as received from Zenoh,
  before the console decodes its own copy, starting at an IDR (a joining page
  asks the patient for one);
- pages without it get JPEG pictures of the console's decoded frames (PyAV's
  ``mjpeg`` encoder, ~1.3 ms and ~13 kB a 640x480 frame at quality 5).

Paint times come back from the page on its own clock (``performance.now()``);
the console maps them onto its monotonic clock with NTP-style pings over the
same WebSocket (``link.clocksync.ClockSync``: the exchange with the smallest
round trip, within +- half of it; sub-millisecond on loopback).

Video never queues up behind a slow page: frames go out only while fewer than
``MAX_IN_FLIGHT`` sent frames await the page's paint report (a report also
accounts for every older frame, painted or skipped, and a frame unreported for
a second is written off); a page that falls behind loses the frames meanwhile
and restarts at the next IDR, asked of the patient again every
``KEY_RETRY_S`` while it waits. One sender task per page writes its socket.

A page that keeps falling behind on H.264 (``FALLBACK_RESTARTS`` restarts within
``FALLBACK_WINDOW_S``: a starved browser, where each restart costs an IDR that is
slower still to decode) is switched to JPEG pictures for the rest of its visit: each
picture stands alone, so a late one is simply skipped, at most
``MAX_IN_FLIGHT_JPEG`` are in flight, and nothing waits for a keyframe. Measured on
two loaded cores (BENCHMARKS.md): 53 frames shown of 464 with H.264, 378 of 563 with
JPEG, glass-to-glass p50 130 -> 66 ms.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import fractions
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import av
from aiohttp import WSMsgType, web
from av.video.reformatter import VideoReformatter

from telesurgery.camera.renderer import RGBImage
from telesurgery.clock import now_ns, set_bulk_thread
from telesurgery.clocksync import ClockSync, Exchange
from telesurgery.config import WebConfig
from telesurgery.console.web.access import (
    MAX_PAGES,
    TOKEN_PARAM,
    base_url,
    host_refusal,
    new_token,
    origin_refusal,
    page_url,
    token_refusal,
)
from telesurgery.console.web.protocol import (
    Action,
    FramePainted,
    HandInput,
    PageAction,
    PageChecklist,
    PageHello,
    Pong,
    VideoKind,
    parse,
    video_message,
)
from telesurgery.errors import CodecError, ConfigError, VideoError
from telesurgery.messages import VideoFrame
from telesurgery.transport.session import RejectCounter
from telesurgery.video.latency import LatencyBook

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
HUD_PERIOD_S: Final = 0.25
GHOST_ALONE_HZ: Final = 20.0
"""The predictive display's rate [Hz] while no picture carries it."""
GHOST_ALONE_AFTER_S: Final = 0.5
"""No picture for this long [s]: the ghost goes on its own (a frame-rate dip is not that)."""
PING_PERIOD_S: Final = 1.0
FIRST_PINGS: Final = 8
"""Pings sent 50 ms apart when a page connects, so its clock is known within a second."""
MAX_IN_FLIGHT: Final = 6
"""Frames sent to a page and not yet reported painted (200 ms at 30 fps)."""
MAX_IN_FLIGHT_JPEG: Final = 2
"""The same for JPEG pictures: any one may be skipped, so only the newest wait."""
FALLBACK_RESTARTS: Final = 5
FALLBACK_WINDOW_S: Final = 5.0
"""A page restarting its H.264 stream this often within this window [s] gets JPEG."""
IN_FLIGHT_EXPIRY_NS: Final = 1_000_000_000
KEY_RETRY_S: Final = 0.2
MAX_QUEUED_VIDEO: Final = 8
"""Frames queued for a page's socket and not yet written to it: beyond, the socket does
not take what it is given (a page on a slow link, a stalled viewer), so what waits is
stale; it is dropped and the page restarts at the next IDR."""
FRAMES_REMEMBERED: Final = 256
JPEG_QUALITY: Final = 5
"""FFmpeg's mjpeg quantiser (2 best .. 31 worst): 38.5 dB on the peg-transfer scene."""
START_TIMEOUT_S: Final = 30.0
LOGGED_REFUSALS: Final = 10
"""Requests without the secret logged as warnings; later ones are counted (and logged at
debug level)."""
_HEADERS: Final = {
    "Cache-Control": "no-store",
    # Cross-origin isolation gives the page 5 us timers instead of 100 us ones.
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    # The page's URL carries its secret: never pass it on to anything the page links to.
    "Referrer-Policy": "no-referrer",
}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageBackend(Protocol):
    """What the console behind the page provides."""

    def hello(self) -> dict[str, Any]:
        """Session, frame size, arms, whether the page drives them."""

    def hud(self) -> dict[str, Any]:
        """The HUD's numbers, JSON-ready."""

    def on_input(self, hand: HandInput, now_ns: int) -> None:
        """The surgeon's hand as the page read it; ``CodecError`` if not acceptable."""

    def on_action(self, action: Action) -> None:
        """A button: hold, resume; request, take or grant control."""

    def on_checklist(self, msg: PageChecklist) -> None:
        """The bedside lead confirms the pre-flight checklist or overrides an item."""

    def request_keyframe(self) -> None:
        """Ask the patient for an IDR."""


@runtime_checkable
class GhostSource(Protocol):
    """A backend that draws the predictive display: the instruments where the console has
    commanded them, in the picture's pixels."""

    def ghost(self) -> dict[str, Any] | None:
        """The ghost of each arm, JSON-ready; None while the camera is not known."""


class JpegEncoder:
    """RGB frames to JPEG pictures (the fallback for pages without WebCodecs)."""

    def __init__(self, width: int, height: int, quality: int = JPEG_QUALITY) -> None:
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuvj420p"
        ctx.time_base = fractions.Fraction(1, 30)
        ctx.qmin = ctx.qmax = quality
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise VideoError(f"cannot open FFmpeg's mjpeg encoder ({exc}); the JPEG fallback "
                             "needs an FFmpeg with it (the PyPI 'av' wheels have it)") from exc
        self._ctx = ctx
        self._reformatter = VideoReformatter()
        self.size = (width, height)

    def encode(self, image: RGBImage) -> bytes:
        """One JPEG picture of ``image`` (height, width, 3)."""
        rgb = av.VideoFrame.from_numpy_buffer(image, format="rgb24")
        packets = self._ctx.encode(self._reformatter.reformat(rgb, format="yuvj420p"))
        if len(packets) != 1:
            raise VideoError(f"the mjpeg encoder returned {len(packets)} packets for one frame")
        return bytes(packets[0])


@dataclass(frozen=True, slots=True)
class _Sent:
    """A frame the console sent to a page, on the console's clock [ns]."""

    capture_ns: int
    applied_sample_ns: int
    published_ns: int
    received_ns: int
    forwarded_ns: int


class Out(enum.Enum):
    """What a queued message is, for what may be done to it while the socket is slow."""

    STATE = "state"
    """Never dropped nor replaced: hello, codec switches, the console's alarms and owner."""
    VIDEO = "video"
    """A frame, and the ghost drawn over it: dropped together when the page falls behind."""
    HUD = "hud"
    PING = "ping"
    GHOST = "ghost"
    """Periodic snapshots: a newer one replaces one still queued, in its place."""


@dataclass(slots=True)
class _Queued:
    item: bytes | str
    what: Out


@dataclass(eq=False)
class _Page:
    """One open page: its socket, what it can decode, its clock, the frames sent to it."""

    ws: web.WebSocketResponse
    book: LatencyBook
    webcodecs: bool | None = None
    needs_key: bool = True
    sync: ClockSync = field(default_factory=ClockSync)
    pings: dict[int, int] = field(default_factory=dict)
    sent: collections.OrderedDict[int, _Sent] = field(default_factory=collections.OrderedDict)
    outbox: collections.deque[_Queued] = field(default_factory=collections.deque)
    """Bounded: at most ``MAX_QUEUED_VIDEO`` frames (with their ghosts), one snapshot of
    each periodic kind, and the state messages, which are few and never dropped."""
    queued_video: int = 0
    snapshots: dict[Out, _Queued] = field(default_factory=dict)
    key_asked_ns: int = 0
    restarts: collections.deque[int] = field(
        default_factory=lambda: collections.deque(maxlen=FALLBACK_RESTARTS))
    """When [ns] the page last fell behind and restarted at an IDR."""
    may_fall_back: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    unmatched: int = 0
    offset: int | None = None
    offset_stale: bool = True
    """``offset`` is recomputed after a pong only: it was a scan of the clock's window
    per page per frame (the gateway's fan-out to 200 viewers: 6,000 scans a second)."""
    hud_shown: int = -1
    hud_glass_to_glass: dict[str, float] = field(default_factory=dict)
    """The HUD's glass-to-glass figures, recomputed when a frame was shown since."""

    def offset_ns(self) -> int | None:
        if self.offset_stale:
            est = self.sync.estimate()
            self.offset = None if est is None else est.offset_ns
            self.offset_stale = False
        return self.offset

    def recent_ms(self) -> dict[str, float]:
        """The HUD's glass-to-glass figures (a sort of the last frames' when any is new)."""
        shown = len(self.book)
        if shown != self.hud_shown:
            self.hud_shown = shown
            self.hud_glass_to_glass = self.book.recent_ms()
        return self.hud_glass_to_glass

    def send(self, item: bytes | str, what: Out = Out.STATE) -> None:
        if what in (Out.HUD, Out.PING, Out.GHOST):
            queued = self.snapshots.get(what)
            if queued is not None:
                queued.item = item
                return
        entry = _Queued(item, what)
        if what is Out.VIDEO and isinstance(item, bytes):
            self.queued_video += 1
        elif what is not Out.STATE and what is not Out.VIDEO:
            self.snapshots[what] = entry
        self.outbox.append(entry)
        self.wake.set()

    def next_out(self) -> bytes | str:
        """The next message for the socket (the outbox is not empty)."""
        entry = self.outbox.popleft()
        if entry.what is Out.VIDEO and isinstance(entry.item, bytes):
            self.queued_video -= 1
        elif self.snapshots.get(entry.what) is entry:
            del self.snapshots[entry.what]
        return entry.item

    def drop_queued_video(self) -> int:
        """Drop the frames (and their ghosts) still queued; how many frames that was."""
        dropped = self.queued_video
        self.outbox = collections.deque(e for e in self.outbox if e.what is not Out.VIDEO)
        self.queued_video = 0
        return dropped

    def in_flight(self, now: int) -> int:
        """Frames sent and not yet reported, after writing off those older than a second."""
        while self.sent:
            oldest = next(iter(self.sent.values()))
            if now - oldest.forwarded_ns <= IN_FLIGHT_EXPIRY_NS:
                break
            self.sent.popitem(last=False)
        return len(self.sent)

    def reported(self, index: int) -> _Sent | None:
        """Frame ``index`` was painted: its record; older frames the page skipped are
        forgotten."""
        rec = self.sent.pop(index, None)
        while self.sent and next(iter(self.sent)) < index:
            self.sent.popitem(last=False)
        return rec


class WebConsole:
    """Serves the page on ``config.host``:``config.port`` and streams frames to every page.

    ``encoded`` and ``decoded`` are called from the console's video thread;
    everything else about pages happens on the server's own event loop.

    The audience's viewer page (``telesurgery.audience``) is served by a subclass: it names
    its own page, scripts and page cap, admits its own tokens and adds its own routes.
    """

    PAGE: ClassVar[str] = "index.html"
    SCRIPTS: ClassVar[tuple[str, ...]] = ("video.js", "app.js")
    """Served without the secret: the scripts hold nothing of the console's."""
    MAX_PAGES: ClassVar[int] = MAX_PAGES
    WHAT: ClassVar[str] = "console"
    """What the server is called in its refusals."""

    def __init__(self, config: WebConfig, backend: PageBackend, command_period_ns: int) -> None:
        self.config = config
        self.backend = backend
        self.command_period_ns = command_period_ns
        self.rejects = RejectCounter()
        self.port = 0
        self.token = new_token()
        """This launch's secret: the page's URL carries it, ``/ws`` wants it."""
        self.pages_opened = 0
        self.refused = {"host": 0, "origin": 0, "token": 0, "full": 0}
        """Requests refused before reaching the console: wrong or missing Host, a foreign
        origin, no or a wrong secret, ``MAX_PAGES`` pages already open."""
        self.frames_sent = {kind.name.lower(): 0 for kind in VideoKind}
        self.control_requests = 0
        self.frames_dropped = 0
        self._last_fan_out_ns = 0
        """When the latest picture went out to the pages [ns]."""
        self.fallbacks = 0
        """Pages switched from H.264 to JPEG because they kept falling behind."""
        self._pages: set[_Page] = set()
        self._closed_book: LatencyBook | None = None
        """The closed page's book with the most frames: the only closed one
        ``page_report`` may pick (closed books no longer grow), so pages that come and go
        keep no memory."""
        self._jpeg_pages = 0
        self._jpeg: JpegEncoder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the page is (after ``start``), without its secret: safe to log."""
        return base_url(self.config.host, self.port)

    @property
    def page_url(self) -> str:
        """The page's URL with its secret (after ``start``): what the surgeon opens."""
        return page_url(self.config.host, self.port, self.token)

    @property
    def wants_pictures(self) -> bool:
        """True while a page takes JPEG pictures: ``decoded`` has work to do."""
        return self._jpeg_pages > 0

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve in a thread of its own; returns the page's URL with its secret.

        Raises ``ConfigError`` when the port cannot be had.
        """
        self._thread = threading.Thread(target=self._run, name="console-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ConfigError(f"the console page did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            raise ConfigError(f"cannot serve the console page on {self.config.host}:"
                              f"{self.config.port} ({self._error}); choose another port with "
                              "--web-port (0 takes any free one)") from self._error
        log.info("console page at %s (its secret in the URL the console prints)", self.url)
        return self.page_url

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every page and stop serving (idempotent)."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        set_bulk_thread()
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except Exception as exc:
            self._error = exc
            log.error("console page server stopped: %s", exc)
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._file(self.PAGE, "text/html"))
        for script in self.SCRIPTS:
            app.router.add_get(f"/{script}", self._file(script, "text/javascript"))
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/status", self._status)
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            try:
                await site.start()
            except OSError as exc:
                self._error = exc
                self._ready.set()
                return
            self.port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stopping.wait()
            for page in list(self._pages):
                with contextlib.suppress(RuntimeError):  # still in its handshake
                    await page.ws.close()
        finally:
            await runner.cleanup()

    # ---- HTTP -----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse what is not the surgeon's page, before any handler runs.

        The Host must name this server on the loopback interface (a site that rebinds its
        DNS name to 127.0.0.1 still sends its own name; an HTTP/1.0 client may send none),
        a request from a page must come from this server's own origin (browsers let any
        site open a WebSocket anywhere), and, but for the script, the request must carry
        this launch's secret (any local process can reach a loopback port).
        """
        host = request.headers.get("Host")
        why = host_refusal(host, self.config.host, self.port)
        if why is not None:
            self.refused["host"] += 1
            raise (web.HTTPBadRequest if host is None else web.HTTPForbidden)(text=why)
        assert host is not None
        if self.open_to_all(request.path):
            return await handler(request)
        why = origin_refusal(request.headers.get("Origin"), host)
        if why is not None:
            self.refused["origin"] += 1
            raise web.HTTPForbidden(text=why)
        if request.path.lstrip("/") not in self.SCRIPTS:
            why = self.token_refusal(request)
            if why is not None:
                self.refused["token"] += 1
                # Said a few times, then only counted: a script knocking must not fill the log.
                (log.warning if self.refused["token"] <= LOGGED_REFUSALS else log.debug)(
                    "console page: refused %s %s from %s: %s", request.method, request.path,
                    request.remote, why)
                raise web.HTTPUnauthorized(text=why, headers=_HEADERS)
        return await handler(request)

    def token_refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused for its token (None: it is not): this launch's secret."""
        return token_refusal(request.query.get(TOKEN_PARAM), self.token, self.url)

    def streaming(self) -> bool:
        """False while no frame may go to any page (the audience's broadcast is off); asked
        on the server's loop as each frame goes out."""
        return True

    def open_to_all(self, path: str) -> bool:
        """True for a path any origin may fetch without a token (none here)."""
        return False

    def add_routes(self, app: web.Application) -> None:
        """Routes beyond the page, its scripts, ``/ws`` and ``/api/status`` (none here)."""

    def page_opened(self, request: web.Request) -> None:
        """A page's WebSocket is open (the audience logs who watches)."""

    def page_closed(self, request: web.Request) -> None:
        """A page's WebSocket closed."""

    def _file(self, name: str, content_type: str
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        path = STATIC_DIR / name

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=path.read_bytes(), content_type=content_type,
                                headers=_HEADERS)

        return handler

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response({"hud": self.backend.hud(), "web": self.status(),
                                  "page": self.page_report()}, headers=_HEADERS)

    # ---- pages ----------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if len(self._pages) >= self.MAX_PAGES:
            self.refused["full"] += 1
            why = (f"this {self.WHAT} already serves {self.MAX_PAGES} pages, the most it "
                   "does; close one and reload")
            log.warning("console page refused: %s", why)
            raise web.HTTPServiceUnavailable(text=why, headers=_HEADERS)
        ws = web.WebSocketResponse(max_msg_size=1 << 16, heartbeat=None)
        page = _Page(ws, LatencyBook(self.command_period_ns))
        # Counted before the handshake, which may let other handshakes run meanwhile.
        self._pages.add(page)
        tasks: list[asyncio.Task[None]] = []
        opened = False
        try:
            await ws.prepare(request)
            self.pages_opened += 1
            self.page_opened(request)
            opened = True
            log.info("a console page connected (%d open)", len(self._pages))
            tasks = [asyncio.create_task(self._sender(page)),
                     asyncio.create_task(self._pinger(page)),
                     asyncio.create_task(self._hud(page))]
            if isinstance(self.backend, GhostSource):
                tasks.append(asyncio.create_task(self._ghost_without_video(page,
                                                                           self.backend)))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(page, str(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    self.rejects.add("page", CodecError("binary message from the page; it "
                                                        "sends JSON text only"))
        finally:
            for t in tasks:
                t.cancel()
            if opened:
                self.page_closed(request)
            self._pages.discard(page)
            best = self._closed_book
            if opened and len(page.book) and (best is None or len(page.book) > len(best)):
                self._closed_book = page.book
            if page.webcodecs is False:
                self._jpeg_pages -= 1
            log.info("a console page left (%d open)", len(self._pages))
        return ws

    async def _sender(self, page: _Page) -> None:
        while not page.ws.closed:
            await page.wake.wait()
            page.wake.clear()
            while page.outbox:
                item = page.next_out()
                try:
                    if isinstance(item, bytes):
                        await page.ws.send_bytes(item)
                    else:
                        await page.ws.send_str(item)
                except ConnectionError:
                    return

    async def _pinger(self, page: _Page) -> None:
        ping_id = 0
        while not page.ws.closed:
            ping_id += 1
            page.pings = {k: v for k, v in page.pings.items() if k > ping_id - 16}
            page.pings[ping_id] = now_ns()
            page.send(json.dumps({"t": "ping", "id": ping_id}), Out.PING)
            await asyncio.sleep(0.05 if ping_id < FIRST_PINGS else PING_PERIOD_S)

    async def _hud(self, page: _Page) -> None:
        while not page.ws.closed:
            hud = self.backend.hud()
            est = page.sync.estimate()
            hud["page"] = {
                "glass_to_glass_ms": page.recent_ms(),
                "clock_rtt_ms": None if est is None else round(est.rtt_ns * 1e-6, 3),
                "dropped": page.dropped,
                "codec": {True: "h264", False: "jpeg", None: "-"}[page.webcodecs],
            }
            page.send(json.dumps({"t": "hud", **hud}, allow_nan=False), Out.HUD)
            await asyncio.sleep(HUD_PERIOD_S)

    async def _ghost_without_video(self, page: _Page, source: GhostSource) -> None:
        """The ghost rides with the pictures; while none come (a frozen or cut video, the
        twin of an outage) it comes on its own at ``GHOST_ALONE_HZ``."""
        while not page.ws.closed:
            await asyncio.sleep(1.0 / GHOST_ALONE_HZ)
            if now_ns() - self._last_fan_out_ns > GHOST_ALONE_AFTER_S * 1e9:
                drawn = source.ghost()
                if drawn is not None:
                    page.send(json.dumps({"t": "ghost", **drawn}, allow_nan=False),
                              Out.GHOST)

    def _on_text(self, page: _Page, text: str) -> None:
        received = now_ns()
        try:
            msg = parse(text)
            if isinstance(msg, Pong):
                self._pong(page, msg, received)
            elif isinstance(msg, FramePainted):
                self._painted(page, msg)
            elif isinstance(msg, HandInput):
                self.backend.on_input(msg, received)
            elif isinstance(msg, PageHello):
                self._hello(page, msg)
            elif isinstance(msg, PageAction):
                self._action(page, msg.action)
            elif isinstance(msg, PageChecklist):
                self.backend.on_checklist(msg)
        except CodecError as exc:
            self.rejects.add("page", exc)

    def _hello(self, page: _Page, msg: PageHello) -> None:
        if page.webcodecs is False:
            self._jpeg_pages -= 1
        page.webcodecs = msg.webcodecs
        page.may_fall_back = msg.fallback
        if msg.webcodecs:
            self._want_key(page, now_ns())
        else:
            self._jpeg_pages += 1
        codec = "h264" if msg.webcodecs else "jpeg"
        page.send(json.dumps({"t": "hello", "codec": codec, **self.backend.hello()}))

    def _action(self, page: _Page, action: Action) -> None:
        if action is Action.KEYFRAME:
            # The page dropped its decoder's state: nothing sent before counts any more.
            page.sent.clear()
            now = now_ns()
            if not self._fell_behind(page, now):
                self._want_key(page, now)
            return
        if action is Action.REQUEST_CONTROL:
            self.control_requests += 1
        self.backend.on_action(action)

    def _pong(self, page: _Page, msg: Pong, received_ns: int) -> None:
        sent = page.pings.pop(msg.id, None)
        if sent is None:
            raise CodecError(f"pong {msg.id} answers no ping in flight")
        page_ns = round(msg.at_ms * 1e6)
        try:
            page.sync.add(Exchange(sent, page_ns, page_ns, received_ns))
        except ValueError as exc:
            raise CodecError(f"pong {msg.id}: {exc}") from exc
        page.offset_stale = True

    def _painted(self, page: _Page, msg: FramePainted) -> None:
        offset = page.offset_ns()
        rec = page.reported(msg.index)
        if rec is None or offset is None:
            page.unmatched += 1
            return

        def console_ns(page_ms: float) -> int:
            return round(page_ms * 1e6) - offset

        painted = console_ns(msg.painted_ms)
        rx, out = console_ns(msg.received_ms), console_ns(msg.decoded_ms)
        stages = {
            "transport": rec.received_ns - rec.published_ns,
            "forward": rec.forwarded_ns - rec.received_ns,
            "to_page": rx - rec.forwarded_ns,
            "decode": out - rx,
            "paint": painted - out,
        }
        if msg.shown_ms is not None:
            stages["display_wait"] = console_ns(msg.shown_ms) - painted
        page.book.shown(rec.capture_ns, rec.applied_sample_ns, painted, stages)

    def send_to_pages(self, text: str) -> None:
        """Send ``text`` (a JSON message) to every open page; from any thread."""
        loop = self._loop
        if loop is not None and self._pages:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._to_pages, text)

    def _to_pages(self, text: str) -> None:
        for page in self._pages:
            page.send(text)

    # ---- frames (called from the console's video thread) ------------------------------

    def encoded(self, body: VideoFrame, capture_ns: int, published_ns: int,
                received_ns: int) -> None:
        """An H.264 frame as received (stamps [ns], console clock): to WebCodecs pages."""
        loop = self._loop
        if loop is not None and self._pages:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._fan_out, VideoKind.H264, body.keyframe,
                                          body, body.data, capture_ns, published_ns,
                                          received_ns)

    def decoded(self, body: VideoFrame, image: RGBImage, capture_ns: int, published_ns: int,
                received_ns: int) -> None:
        """A frame the console decoded: JPEG pictures of it to pages without WebCodecs."""
        loop = self._loop
        if loop is None or self._jpeg_pages <= 0:
            return
        if self._jpeg is None or self._jpeg.size != (body.width, body.height):
            self._jpeg = JpegEncoder(body.width, body.height)
        picture = self._jpeg.encode(image)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._fan_out, VideoKind.JPEG, True, body, picture,
                                      capture_ns, published_ns, received_ns)

    def _fan_out(self, kind: VideoKind, keyframe: bool, body: VideoFrame, payload: bytes,
                 capture_ns: int, published_ns: int, received_ns: int) -> None:
        if not self.streaming():
            return
        want_h264 = kind is VideoKind.H264
        now = now_ns()
        self._last_fan_out_ns = now
        # With the picture, where the console has since commanded the instruments: the
        # page draws it over this frame; no message and no wake-up of its own.
        ghost: str | None = None
        if isinstance(self.backend, GhostSource):
            drawn = self.backend.ghost()
            ghost = None if drawn is None else json.dumps({"t": "ghost", **drawn},
                                                          allow_nan=False)
        for page in self._pages:
            if page.webcodecs is None or page.webcodecs is not want_h264:
                continue
            if page.in_flight(now) >= (MAX_IN_FLIGHT if want_h264 else MAX_IN_FLIGHT_JPEG):
                page.dropped += 1
                self.frames_dropped += 1
                if want_h264 and (page.needs_key or not self._fell_behind(page, now)):
                    self._want_key(page, now)
                continue
            if page.queued_video >= MAX_QUEUED_VIDEO:
                # Its socket takes nothing (in-flight frames expire after a second, so
                # the in-flight limit alone lets a dead socket's queue grow without end).
                dropped = page.drop_queued_video()
                page.dropped += dropped
                self.frames_dropped += dropped
                if want_h264:
                    page.sent.clear()
                    self._want_key(page, now)
            if page.needs_key and not keyframe:
                self._want_key(page, now)
                continue
            page.needs_key = False
            offset = page.offset_ns()
            capture_page_ms = math.nan if offset is None else (capture_ns + offset) * 1e-6
            index = body.frame_index & 0xFFFFFFFF
            page.sent[index] = _Sent(capture_ns, body.applied_sample_ns, published_ns,
                                     received_ns, now_ns())
            while len(page.sent) > FRAMES_REMEMBERED:
                page.sent.popitem(last=False)
            if ghost is not None:
                page.send(ghost, Out.VIDEO)
            page.send(video_message(kind, keyframe, body.width, body.height, index,
                                    capture_page_ms, payload), Out.VIDEO)
            self.frames_sent[kind.name.lower()] += 1

    def _fell_behind(self, page: _Page, now: int) -> bool:
        """Count a restart of ``page``'s H.264 stream; True when that switched the page
        to JPEG (it fell behind too often to catch up with IDRs)."""
        page.restarts.append(now)
        # Only a page on H.264 can fall back: one on JPEG already counts among _jpeg_pages.
        if (page.webcodecs is not True or not page.may_fall_back
                or len(page.restarts) < FALLBACK_RESTARTS
                or now - page.restarts[0] > FALLBACK_WINDOW_S * 1e9):
            return False
        page.webcodecs = False
        page.needs_key = False
        page.sent.clear()
        self._jpeg_pages += 1
        self.fallbacks += 1
        why = (f"the page restarted its H.264 stream {FALLBACK_RESTARTS} times in "
               f"{FALLBACK_WINDOW_S:g} s; JPEG pictures from now on")
        log.warning("console page falls back to JPEG: %s", why)
        page.send(json.dumps({"t": "codec", "codec": "jpeg", "why": why}))
        return True

    def _want_key(self, page: _Page, now: int) -> None:
        """Start ``page`` over at the next IDR, asking the patient for one (again after
        ``KEY_RETRY_S``: a request or its IDR may be lost, or sent while still behind)."""
        page.needs_key = True
        if now - page.key_asked_ns >= KEY_RETRY_S * 1e9:
            page.key_asked_ns = now
            self.backend.request_keyframe()

    # ---- figures --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Pages open and opened, requests refused before reaching the console (by why),
        frames sent by kind, page messages refused. ``url`` has no secret."""
        return {
            "url": self.url,
            "pages_open": len(self._pages),
            "pages_opened": self.pages_opened,
            "max_pages": self.MAX_PAGES,
            "requests_refused": dict(self.refused),
            "frames_sent": dict(self.frames_sent),
            "dropped": self.frames_dropped,
            "fallbacks_to_jpeg": self.fallbacks,
            "control_requests": self.control_requests,
            "rejected": self.rejects.total,
        }

    def page_report(self) -> dict[str, Any] | None:
        """The latency figures of the page that showed the most frames (None if none did)."""
        books = [b for b in (*(p.book for p in self._pages), self._closed_book)
                 if b is not None and len(b)]
        if not books:
            return None
        return max(books, key=len).summary()


__all__ = ["STATIC_DIR", "JpegEncoder", "PageBackend", "WebConsole"]
