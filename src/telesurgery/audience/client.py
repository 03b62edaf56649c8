"""A lightweight viewer of the viewer page's WebSocket: what the audience bench runs by the
hundred and the tests run as a fast and a slow viewer.

It speaks the page's protocol (``console/web/protocol.py``) as the page does, with its own
monotonic clock as the page's: answers the pings (so the gateway maps capture times onto
it), parses every video message's header, reports every third frame as painted the moment it
arrives (a viewer that never reports is a stalled one: the gateway stops sending to it),
and records each frame's age on arrival. ``stall`` makes it stop reading and reporting for
a while, as a viewer on a slow link or a busy machine does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from telesurgery.clock import now_ns
from telesurgery.console.web.protocol import VideoKind, parse_video

REPORT_EVERY: Final = 3
"""Frames a viewer reports painted: every third (and each keyframe). A report accounts for
the frames before it, so the gateway's in-flight count stays under its limit, and the
crowd's and the gateway's message load is a third of one report a frame."""


@dataclass
class ViewerFigures:
    """What one viewer saw: frames by index, their ages on arrival [ms], keyframes, and
    each restart after a gap (whether it restarted on a keyframe)."""

    frames: int = 0
    keyframes: int = 0
    ages_ms: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    gaps: int = 0
    """Times the frame index jumped (the gateway skipped this viewer ahead)."""
    restarts_on_keyframe: int = 0
    """Of those, restarts whose first frame was a keyframe."""
    huds: int = 0
    stalled_s: float = 0.0


def _ms() -> float:
    return now_ns() * 1e-6


class LightViewer:
    """One viewer on ``ws_url`` (the viewer page's ``/ws`` with a token)."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.figures = ViewerFigures()
        self._stall_until = 0.0
        self.connected = asyncio.Event()

    def stall(self, seconds: float) -> None:
        """Stop reading and reporting for ``seconds`` [s] from now."""
        self._stall_until = _ms() + seconds * 1e3
        self.figures.stalled_s += seconds

    async def run(self, stop: asyncio.Event, session: aiohttp.ClientSession) -> ViewerFigures:
        """Watch until ``stop`` is set; returns the figures."""
        async with session.ws_connect(self.ws_url, max_msg_size=1 << 22) as ws:
            await ws.send_str(json.dumps({"t": "hello", "webcodecs": True,
                                          "fallback": False}))
            self.connected.set()
            # One reading task for the whole visit: a task (or two) per message cost the
            # bench's crowd most of its time at 200 viewers x 30 frames a second.
            reading = asyncio.create_task(self._read(ws))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (reading, stopping):
                    t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
        return self.figures

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            wait = self._stall_until - _ms()
            if wait > 0:
                await asyncio.sleep(wait * 1e-3)
                continue
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                await self._video(ws, bytes(msg.data))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await self._text(ws, json.loads(msg.data))
            else:
                return

    async def _text(self, ws: aiohttp.ClientWebSocketResponse, msg: dict[str, object]) -> None:
        if msg.get("t") == "ping":
            await ws.send_str(json.dumps({"t": "pong", "id": msg["id"], "at": _ms()}))
        elif msg.get("t") == "hud":
            self.figures.huds += 1

    async def _video(self, ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
        rx = _ms()
        header, _payload = parse_video(data)
        if header.kind is not VideoKind.H264:
            return
        f = self.figures
        if f.indices and header.index != f.indices[-1] + 1:
            f.gaps += 1
            f.restarts_on_keyframe += header.keyframe
        f.frames += 1
        f.keyframes += header.keyframe
        f.indices.append(header.index)
        if math.isfinite(header.capture_page_ms):
            f.ages_ms.append(rx - header.capture_page_ms)
        if header.index % REPORT_EVERY and not header.keyframe:
            return
        # Formatted by hand: json.dumps per frame per viewer was the crowd's next cost.
        await ws.send_str(f'{{"t":"frame","i":{header.index},"rx":{rx!r},"out":{rx!r},'
                          f'"paint":{rx!r},"shown":null}}')


__all__ = ["LightViewer", "ViewerFigures"]
