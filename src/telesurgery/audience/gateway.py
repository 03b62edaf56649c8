"""The observer gateway: the operation streamed to an audience, off the surgeon's path.

One gateway process joins the session as a Zenoh *client* of a site router with an
``observer`` certificate (read-only by the access control: it may ask for a keyframe and
announce its broadcast, nothing else), subscribes once to the endoscope video, the arms'
state, the safety state, the owner and the link statistics, and serves two tiers from
that one subscription:

- the **viewer page** (``static/viewer.html``): the surgeon's view without controls, fed
  over one WebSocket per browser by the console's own page server (``WebConsole``: a slow
  page loses frames and restarts at the next keyframe, it never holds back the others),
  behind a token the gateway issues (one for the audience, one per mentor, by name);
- the **broadcast tier**: the same access units packaged as HLS (``hls.py``) under
  ``/hls/``, public by design.

Nothing goes out until the broadcast is enabled (``--broadcast --allowed-by NAME``, or
``POST /api/broadcast`` with the operator's token) and everything stops at once when it is
disabled: frames stop, the HLS files are deleted, the periodic keyframe requests end. Every
change and every viewer session (time, address, who) goes into the gateway's log
(``events``, JSON lines in ``log_path``), and each change is announced on
``audience/<gateway>/broadcast`` for the patient's audit trail and the recorder.

Clocks: capture times are the patient's; the gateway takes them as its own (exact on one
machine; across machines the audience's age figures are off by the clock offset, which
no path-sync of ours measures for a gateway).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from aiohttp import web

from telesurgery.audience.hls import KEY_PERIOD_S, PLAYLIST, HlsPackager
from telesurgery.audience.watermark import Watermark, watermarked
from telesurgery.clock import name_os_thread, now_ns, set_bulk_thread
from telesurgery.config import WebConfig, ZenohConfig
from telesurgery.console.web.access import TOKEN_PARAM, new_token, token_matches
from telesurgery.console.web.protocol import Action, HandInput, PageChecklist
from telesurgery.console.web.server import WebConsole
from telesurgery.errors import CodecError, CodecReason, ConfigError, TelesurgeryError
from telesurgery.messages import MeasuredCP, Message, SafetyEvent, Status, VideoFrame
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    Security,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.video.decoder import H264Decoder
from telesurgery.video.pipeline import KEYFRAME_REQUEST_SUFFIX, keyframe_request

log = logging.getLogger(__name__)

MAX_VIEWERS: Final = 1000
"""Viewer pages one gateway serves at once; more viewers: more gateways (docs/audience.md)."""
KEY_MIN_INTERVAL_S: Final = 0.5
"""Keyframe requests to the patient at most this often [s], whatever asks (a resync after
a lost frame, the HLS segment cadence, viewers joining): each IDR is a burst in the
surgeon's own stream. Also the retry period of a request lost on the way."""
QUEUE_FRAMES: Final = 30
"""Frames between Zenoh's thread and the gateway's (a second); beyond, the oldest go."""
AUDIENCE: Final = "audience"
"""The name the shared viewer token stands for in the log."""
OPERATOR: Final = "operator"
_HLS_FILE: Final = re.compile(r"(live\.m3u8|init\.mp4|seg\d{6}\.m4s)")
_HLS_TYPES: Final = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4",
                     ".m4s": "video/iso.segment"}


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """One gateway: the ``session`` it shows, the router(s) it joins (``connect``), where it
    serves (``web``: loopback, port 0 for any free one), whether the broadcast is on from the
    start and who ``allowed_by`` it, the HLS tier, the ``mentors`` it issues tokens to (by
    name), its ``name`` in the key space, and ``log_path`` for its event log (JSON lines)."""

    session: str
    connect: tuple[str, ...]
    web: WebConfig = field(default_factory=WebConfig)
    broadcast: bool = False
    allowed_by: str | None = None
    hls: bool = True
    mentors: tuple[str, ...] = ()
    name: str = "gateway"
    log_path: Path | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """A token the gateway issued: who holds it and whether that one is a mentor."""

    holder: str
    mentor: bool


class KeyframeLimiter:
    """Lets a keyframe request through at most once per ``interval_s``."""

    def __init__(self, interval_s: float = KEY_MIN_INTERVAL_S) -> None:
        self.interval_ns = round(interval_s * 1e9)
        self._last_ns: int | None = None
        self.allowed = 0
        self.refused = 0

    def allow(self, now: int) -> bool:
        """True (and counted as sent) if a request may go at ``now`` [ns]."""
        if self._last_ns is not None and now - self._last_ns < self.interval_ns:
            self.refused += 1
            return False
        self._last_ns = now
        self.allowed += 1
        return True

    def reset(self) -> None:
        """The next request goes at once (the broadcast just started)."""
        self._last_ns = None


@dataclass
class _View:
    """The session as the audience sees it: latest figures, nothing of the patient's."""

    owner: str | None = None
    safety: str | None = None
    rtt_ms: float | None = None
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: tuple[int, int] = (640, 480)


class _Backend:
    """What the viewer page's server asks of the gateway (``PageBackend``): no input, no
    action, no checklist; keyframes come on the gateway's own cadence."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def hello(self) -> dict[str, Any]:
        w, h = self._gw.view.size
        return {"session": self._gw.options.session, "width": w, "height": h,
                "arms": sorted(self._gw.view.arms), "drives": False, "role": "viewer"}

    def hud(self) -> dict[str, Any]:
        return self._gw.hud()

    def on_input(self, hand: HandInput, now_ns: int) -> None:
        raise CodecError("a viewer page drives nothing", CodecReason.BAD_FIELD)

    def on_action(self, action: Action) -> None:
        raise CodecError(f"a viewer page has no {action.value} action", CodecReason.BAD_FIELD)

    def on_checklist(self, msg: PageChecklist) -> None:
        raise CodecError("a viewer page has no checklist", CodecReason.BAD_FIELD)

    def request_keyframe(self) -> None:
        # A page that fell behind waits for the next periodic IDR (under a second): asking
        # the patient for one per page would put an IDR in the surgeon's stream per viewer.
        self._gw.page_key_requests += 1


class ViewerServer(WebConsole):
    """The console's page server serving the viewer page, the HLS tier and the gateway's
    own API: tokens are the gateway's tickets; ``/hls/`` is open to everyone."""

    PAGE: ClassVar[str] = "viewer.html"
    SCRIPTS: ClassVar[tuple[str, ...]] = ("video.js", "viewer.js")
    MAX_PAGES: ClassVar[int] = MAX_VIEWERS
    WHAT: ClassVar[str] = "gateway"

    def __init__(self, config: WebConfig, gateway: Gateway) -> None:
        super().__init__(config, _Backend(gateway), command_period_ns=1_000_000)
        self.gateway = gateway

    def streaming(self) -> bool:
        # Asked on the server's loop, where the operator's "off" is handled too: once it
        # is answered, not one more frame goes out.
        return self.gateway.broadcasting

    def open_to_all(self, path: str) -> bool:
        return path.startswith("/hls/")

    def token_refusal(self, request: web.Request) -> str | None:
        wanted_operator = request.path == "/api/broadcast"
        ticket = self.gateway.ticket(request.query.get(TOKEN_PARAM))
        if ticket is not None and (ticket.holder == OPERATOR) is wanted_operator:
            return None
        return ("no or a wrong token: open the viewer URL the gateway printed (mentors: "
                "their own); the HLS tier at /hls/live.m3u8 needs none")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/hls/{name}", self._hls)
        app.router.add_get("/api/whoami", self._whoami)
        app.router.add_post("/api/mark", self._mark)
        app.router.add_post("/api/broadcast", self._broadcast)

    def page_opened(self, request: web.Request) -> None:
        self.gateway.viewer_event("viewer_open", request)

    def page_closed(self, request: web.Request) -> None:
        self.gateway.viewer_event("viewer_close", request)

    async def _hls(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        folder = self.gateway.hls_folder
        if not _HLS_FILE.fullmatch(name) or folder is None:
            raise web.HTTPNotFound(text="no such file in the HLS tier")
        try:
            body = (folder / name).read_bytes()
        except OSError:
            raise web.HTTPNotFound(text="not (or no longer) in the live playlist; reload "
                                   f"/hls/{PLAYLIST}") from None
        if name == PLAYLIST:
            self.gateway.hls_playlists_served += 1
        else:
            self.gateway.hls_files_served += 1
        # Segments never change once listed; the playlist does, every segment.
        cache = "no-cache" if name == PLAYLIST else "public, max-age=60"
        return web.Response(body=body, content_type=_HLS_TYPES[Path(name).suffix],
                            headers={"Cache-Control": cache,
                                     "Access-Control-Allow-Origin": "*"})

    async def _whoami(self, request: web.Request) -> web.Response:
        ticket = self.gateway.ticket(request.query.get(TOKEN_PARAM))
        assert ticket is not None  # the guard let only a ticket through
        return web.json_response({"viewer": ticket.holder, "mentor": ticket.mentor})

    async def _mark(self, request: web.Request) -> web.Response:
        ticket = self.gateway.ticket(request.query.get(TOKEN_PARAM))
        if ticket is None or not ticket.mentor:
            raise web.HTTPForbidden(text="only a mentor's token may draw on the picture")
        try:
            data = json.loads(await request.text())
            x, y, down = float(data["x"]), float(data["y"]), bool(data["down"])
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"a mark is {{x, y, down}} ({exc})") from exc
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise web.HTTPBadRequest(text="x and y are fractions of the picture, 0 to 1")
        self.gateway.mark(ticket.holder, x, y, down)
        return web.json_response({"ok": True})

    async def _broadcast(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.text())
            on, by = bool(data["on"]), str(data["by"])
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"send {{on, by}}: on or off, and who allows it "
                                     f"({exc})") from exc
        self.gateway.set_broadcast(on, by, request.remote)
        return web.json_response(self.gateway.status())


class Gateway:
    """Joins the session, serves the viewer page and the HLS tier; ``start`` then ``close``.

    ``security``: the Zenoh entries of an observer identity; None on an insecure site.
    """

    def __init__(self, options: GatewayOptions, security: Security | None,
                 hls_root: Path | None = None) -> None:
        self.options = options
        self.keys = Keys(options.session)
        self.view = _View()
        self.events: list[dict[str, Any]] = []
        """Broadcast changes and viewer sessions, in order (also in ``log_path``)."""
        self.tickets: dict[str, Ticket] = {new_token(): Ticket(AUDIENCE, False)}
        self.tickets.update({new_token(): Ticket(m, True) for m in options.mentors})
        self.operator_token = new_token()
        self.tickets[self.operator_token] = Ticket(OPERATOR, False)
        self.broadcasting = False
        self.allowed_by: str | None = None
        self.frames_in = 0
        self.frames_dropped = 0
        self.page_key_requests = 0
        self.keyframe_requests = 0
        self.hls_playlists_served = 0
        self.hls_files_served = 0
        self.marks = 0
        self._hls_root = hls_root
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._hls: HlsPackager | None = None
        self._lock = threading.Lock()
        self._frames: queue.Queue[tuple[VideoFrame, int, int] | None] = queue.Queue(
            QUEUE_FRAMES)
        self._last_key_ns = 0
        self._keys = KeyframeLimiter()
        self._last_index: int | None = None
        self._resync = True
        self.frames_lost = 0
        """Frames the patient sent that never reached the gateway (gaps in the index)."""
        self._wall_minus_mono_ns = time.time_ns() - now_ns()
        self._decoder: H264Decoder | None = None
        self.rejects = RejectCounter()
        self._z = open_session(ZenohConfig(mode="client", connect=list(options.connect),
                                           gossip=False), security)
        # After the session: a router not listening yet leaves no file open behind it.
        self._log_file = None if options.log_path is None else options.log_path.open(
            "a", encoding="utf-8")
        sid = new_session_id()
        self._key_pub = Publisher(self._z, f"{self.keys.video}/{KEYFRAME_REQUEST_SUFFIX}",
                                  Stream.EVENT, sid)
        self._announce = Publisher(self._z, self.keys.audience_broadcast(options.name),
                                   Stream.EVENT, sid)
        self._marks = Publisher(self._z, self.keys.audience_mark(options.name), Stream.EVENT, sid)
        self.web = ViewerServer(options.web, self)
        self._subs: list[Any] = []
        self._worker: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> str:
        """Subscribe, start serving; returns the audience's viewer URL (with its token)."""
        self.web.start()
        self._worker = threading.Thread(target=self._work, name="audience-video", daemon=True)
        self._worker.start()
        k = self.keys
        self._subs = [
            subscribe(self._z, k.video, self._on_video, self.rejects),
            subscribe(self._z, k.measured_cp("*"), self._on_state, self.rejects),
            subscribe(self._z, k.safety_state, self._on_safety, self.rejects),
            subscribe(self._z, k.control_owner, self._on_owner, self.rejects),
            subscribe(self._z, k.link_stats("*"), self._on_link, self.rejects),
        ]
        if self.options.broadcast:
            if not self.options.allowed_by:
                raise ConfigError("--broadcast needs --allowed-by NAME: who on the operating "
                                  "team allowed the broadcast (the log and the audit trail "
                                  "record it)")
            self.set_broadcast(True, self.options.allowed_by, None)
        return self.url_of(AUDIENCE)

    def close(self) -> None:
        """Stop the broadcast, leave the session, stop serving (idempotent)."""
        if self.broadcasting:
            self.set_broadcast(False, "gateway shut down", None)
        for s in self._subs:
            s.undeclare()
        self._subs = []
        if self._worker is not None:
            self._frames.put(None)
            self._worker.join(5.0)
            self._worker = None
        self.web.stop()
        for p in (self._key_pub, self._announce, self._marks):
            p.close()
        with contextlib.suppress(Exception):  # Zenoh may already be closing at exit
            self._z.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ---- who may watch ------------------------------------------------------------

    def ticket(self, token: str | None) -> Ticket | None:
        """Whose ``token`` it is (None: nobody's), compared in constant time."""
        for issued, ticket in self.tickets.items():
            if token_matches(token, issued):
                return ticket
        return None

    def url_of(self, holder: str) -> str:
        """The viewer URL of ``holder`` (``audience``, a mentor's name)."""
        for token, ticket in self.tickets.items():
            if ticket.holder == holder:
                return f"{self.web.url}?{TOKEN_PARAM}={token}"
        raise KeyError(holder)

    @property
    def hls_url(self) -> str:
        """The public playlist's URL."""
        return f"{self.web.url}hls/{PLAYLIST}"

    def viewer_event(self, what: str, request: web.Request) -> None:
        """Log a viewer page opening or closing: when, from where, whose token."""
        ticket = self.ticket(request.query.get(TOKEN_PARAM))
        self._event(what, address=request.remote,
                    viewer=None if ticket is None else ticket.holder,
                    mentor=bool(ticket and ticket.mentor))

    def _event(self, what: str, **data: Any) -> None:
        event = {"t": round(time.time(), 3), "event": what, "gateway": self.options.name,
                 **data}
        with self._lock:
            self.events.append(event)
            if self._log_file is not None:
                self._log_file.write(json.dumps(event) + "\n")
                self._log_file.flush()
        log.info("audience: %s", json.dumps(event))

    # ---- the gate -----------------------------------------------------------------

    def set_broadcast(self, on: bool, by: str, address: str | None) -> None:
        """Start or stop the broadcast, as ``by`` asked (from ``address``; None: the
        command line): logged and announced; stopping drops the HLS files at once."""
        with self._lock:
            if on == self.broadcasting:
                return
            self.broadcasting = on
            self.allowed_by = by if on else None
            hls, self._hls = self._hls, None
        if on:
            # Viewers and the first segment start at an IDR, asked for at once.
            self._keys.reset()
            self._resync = True
        elif hls is not None:
            hls.close()
        self._event("broadcast_start" if on else "broadcast_stop", by=by, address=address)
        self._announce.offer(Status({"gateway": self.options.name, "broadcast": on,
                                     "by": by, "at_unix_s": round(time.time(), 3)}))

    @property
    def announcement_heard(self) -> bool:
        """True while someone (the patient's audit trail, a recorder) subscribes to this
        gateway's broadcast announcements: one made before is heard by nobody."""
        return self._announce.matched

    @property
    def hls_folder(self) -> Path | None:
        """Where the HLS files are while the broadcast is on (None otherwise)."""
        hls = self._hls
        return None if hls is None or not hls.started else hls.folder

    def mark(self, mentor: str, x: float, y: float, down: bool) -> None:
        """Relay a mentor's pointer (``x``, ``y``: fractions of the picture) to the
        surgeon's page; ``down``: part of a stroke."""
        self.marks += 1
        self._marks.offer(Status({"mentor": mentor, "x": x, "y": y, "down": down}))

    # ---- the session, as seen (Zenoh's threads: quick) ------------------------------

    def _on_video(self, msg: Message, received_ns: int) -> None:
        body = msg.body
        if not isinstance(body, VideoFrame) or not self.broadcasting:
            return
        self.frames_in += 1
        try:
            self._frames.put_nowait((body, msg.sent_ns, received_ns))
        except queue.Full:
            self.frames_dropped += 1

    def _on_state(self, msg: Message, _received_ns: int) -> None:
        body = msg.body
        if isinstance(body, MeasuredCP):
            p = body.measured.position
            self.view.arms[body.arm] = {"position_mm": [round(v * 1e3, 1) for v in p],
                                        "jaw_deg": round(body.jaw * 57.29577951308232, 1)}

    def _on_safety(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, SafetyEvent):
            self.view.safety = msg.body.state.name

    def _on_owner(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            owner = msg.body.data.get("owner")
            self.view.owner = owner if isinstance(owner, str) else None

    def _on_link(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            rtt = msg.body.data.get("rtt_ms")
            if isinstance(rtt, int | float) and not isinstance(rtt, bool):
                self.view.rtt_ms = float(rtt)

    def hud(self) -> dict[str, Any]:
        """What every viewer page shows beside the picture."""
        v = self.view
        return {"broadcast": self.broadcasting, "allowed_by": self.allowed_by,
                "owner": v.owner, "safety": v.safety, "rtt_ms": v.rtt_ms,
                "arms": dict(v.arms)}

    # ---- frames (the gateway's own thread) -----------------------------------------

    def _work(self) -> None:
        set_bulk_thread()
        name_os_thread("audience-video")
        while True:
            item = self._frames.get()
            if item is None:
                return
            try:
                self._frame(*item)
            except TelesurgeryError as exc:
                log.error("audience: frame %d not served: %s", item[0].frame_index, exc)

    def _frame(self, body: VideoFrame, published_ns: int, received_ns: int) -> None:
        if not self.broadcasting:
            return
        now = now_ns()
        last, self._last_index = self._last_index, body.frame_index
        if last is not None and body.frame_index != last + 1:
            # A frame lost on the way here: what follows does not decode until the next
            # IDR, so no viewer and no segment gets it; ask for the IDR now.
            self.frames_lost += max(0, body.frame_index - last - 1)
            self._resync = True
        if body.keyframe:
            self._last_key_ns = now
            self._resync = False
        if ((self._resync or now - self._last_key_ns >= KEY_PERIOD_S * 1e9)
                and self._keys.allow(now)):
            self.keyframe_requests += 1
            self._key_pub.offer(keyframe_request(body.camera))
        if self._resync:
            return
        self.view.size = (body.width, body.height)
        mark = Watermark(self.options.session,
                         (body.capture_ns + self._wall_minus_mono_ns) // 1_000_000,
                         body.frame_index)
        shown = dataclasses.replace(body, data=watermarked(body.data, mark))
        self.web.encoded(shown, body.capture_ns, published_ns, received_ns)
        if self.web.wants_pictures:
            self._pictures(shown, published_ns, received_ns)
        if self.options.hls:
            self._package(shown)

    def _pictures(self, body: VideoFrame, published_ns: int, received_ns: int) -> None:
        if self._decoder is None:
            self._decoder = H264Decoder(threads=1)
        decoded = self._decoder.decode(body.data, body.frame_index)
        if decoded is not None:
            self.web.decoded(body, decoded.image, body.capture_ns, published_ns, received_ns)

    def _package(self, body: VideoFrame) -> None:
        with self._lock:
            if not self.broadcasting:
                return
            if self._hls is None:
                self._hls = HlsPackager(self._new_hls_folder())
            hls = self._hls
        hls.add(body.data, body.keyframe, body.width, body.height, body.capture_ns)

    def _new_hls_folder(self) -> Path:
        if self._hls_root is None:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="telesurgery-hls-")
            self._hls_root = Path(self._tmp.name)
        return self._hls_root / f"{self.options.name}-{now_ns()}"

    # ---- figures --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The gateway's figures, JSON-ready."""
        hls = self._hls
        return {
            "name": self.options.name, "broadcast": self.broadcasting,
            "allowed_by": self.allowed_by, "frames_in": self.frames_in,
            "frames_dropped_in": self.frames_dropped, "frames_lost": self.frames_lost,
            "keyframe_requests": self.keyframe_requests,
            "page_key_requests": self.page_key_requests,
            "hls": {"segments_frames": 0 if hls is None else hls.frames,
                    "playlists_served": self.hls_playlists_served,
                    "files_served": self.hls_files_served},
            "marks": self.marks, "web": self.web.status(),
            "rejected": self.rejects.total,
        }


__all__ = ["KEY_MIN_INTERVAL_S", "MAX_VIEWERS", "Gateway", "GatewayOptions", "KeyframeLimiter",
           "Ticket", "ViewerServer"]
