"""A page's outbox is bounded: a socket that takes nothing loses its queued frames (and
restarts at the next IDR), periodic snapshots replace each other, and state messages are
never dropped. No socket: the server's fan-out and a page, as the server's loop runs them."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from telesurgery.config import WebConfig
from telesurgery.console.web.protocol import (
    Action,
    HandInput,
    PageChecklist,
    VideoKind,
    parse_video,
)
from telesurgery.console.web.server import MAX_QUEUED_VIDEO, Out, WebConsole, _Page
from telesurgery.messages import VideoFrame
from telesurgery.video.latency import LatencyBook


class Backend:
    def __init__(self) -> None:
        self.keyframes_asked = 0

    def hello(self) -> dict[str, Any]:
        return {}

    def hud(self) -> dict[str, Any]:
        return {}

    def on_input(self, hand: HandInput, now_ns: int) -> None:
        pass

    def on_action(self, action: Action) -> None:
        pass

    def on_checklist(self, msg: PageChecklist) -> None:
        pass

    def request_keyframe(self) -> None:
        self.keyframes_asked += 1


def _page() -> _Page:
    page = _Page(cast(web.WebSocketResponse, None), LatencyBook(1_000_000))
    page.webcodecs = True
    return page


def _frame(index: int, keyframe: bool) -> VideoFrame:
    return VideoFrame("endoscope", 64, 48, keyframe, index, 0, 0, 0, b"\x00" * 1000)


def _fan_out(server: WebConsole, frame: VideoFrame) -> None:
    server._fan_out(VideoKind.H264, frame.keyframe, frame, frame.data, 0, 0, 0)


def _video_indices(page: _Page) -> list[int]:
    return [parse_video(e.item)[0].index for e in page.outbox if isinstance(e.item, bytes)]


def test_a_socket_that_takes_nothing_keeps_a_bounded_queue_and_restarts_on_an_idr() -> None:
    server = WebConsole(WebConfig(), Backend(), 1_000_000)
    page = _page()
    server._pages.add(page)
    page.send('{"t":"owner","owner":"dr-rossi"}')  # state: must survive everything
    # Ten GOPs of 30 frames, ending six frames after the last IDR.
    for i in range(276):
        _fan_out(server, _frame(i, keyframe=i % 30 == 0))
        # The page "reports" each frame, so the in-flight limit never stops the fan-out:
        # only the outbox bound can (in a real stall, in-flight frames expire after 1 s).
        page.reported(i)
        assert page.queued_video <= MAX_QUEUED_VIDEO
    indices = _video_indices(page)
    assert indices, "the page gets frames again after each IDR"
    # What is queued starts at an IDR and runs without a gap: the page decodes it.
    assert indices == list(range(270, 276))
    assert page.dropped > 0
    assert any(e.item == '{"t":"owner","owner":"dr-rossi"}' for e in page.outbox)


def test_snapshots_replace_each_other_in_place_and_state_stays() -> None:
    page = _page()
    page.send("hud 1", Out.HUD)
    page.send("alarm", Out.STATE)
    for i in range(2, 100):
        page.send(f"hud {i}", Out.HUD)
        page.send(f"ping {i}", Out.PING)
    assert [e.item for e in page.outbox] == ["hud 99", "alarm", "ping 99"]
    assert page.next_out() == "hud 99"
    page.send("hud 100", Out.HUD)  # the queued one left: this one queues anew
    assert [e.item for e in page.outbox] == ["alarm", "ping 99", "hud 100"]


def test_a_socket_that_keeps_up_gets_every_frame() -> None:
    server = WebConsole(WebConfig(), Backend(), 1_000_000)
    page = _page()
    server._pages.add(page)
    got: list[int] = []
    for i in range(100):
        _fan_out(server, _frame(i, keyframe=i == 0))
        while page.outbox:
            item = page.next_out()
            if isinstance(item, bytes):
                got.append(parse_video(item)[0].index)
        page.reported(i)
    assert got == list(range(100))
    assert page.dropped == 0
