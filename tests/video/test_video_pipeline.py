"""Render -> encode -> real Zenoh on loopback -> decode: order, content, keyframe recovery."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import mujoco
import pytest
import zenoh

from telesurgery.camera import CapturedFrame, EndoscopeCamera, RGBImage
from telesurgery.clock import Rate
from telesurgery.config import ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.messages import Message, VideoFrame
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.video import (
    KEYFRAME_REQUEST_SUFFIX,
    H264Decoder,
    H264Encoder,
    ReceivedFrame,
    VideoReceiver,
    VideoSender,
    keyframe_request,
)
from telesurgery.video.quality import psnr

from ..waiting import wait_until
from .scene import move_tools

WAIT_S = 60.0  # generous: a shared 2-core machine rendering in software
MIN_PSNR_DB = 30.0  # as in test_encoder: visible artefacts start below it
KEYS = Keys("vtest")
KEYFRAME_KEY = f"{KEYS.video}/{KEYFRAME_REQUEST_SUFFIX}"


def _wait(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, what, WAIT_S)


@pytest.fixture
def link() -> Iterator[tuple[zenoh.Session, zenoh.Session]]:
    """(patient, console): two Zenoh peers on a free loopback port."""
    port = free_port()
    patient = open_session(ZenohConfig(listen=[f"tcp/127.0.0.1:{port}"]))
    console = open_session(ZenohConfig(connect=[f"tcp/127.0.0.1:{port}"]))
    yield patient, console
    for session in (console, patient):
        untyped: Any = session  # zenoh's stub leaves close() untyped
        untyped.close()


def _until_matched(session: zenoh.Session, key: str) -> None:
    probe: Any = session.declare_publisher(key)  # the stub types matching_status as bool
    try:
        _wait(lambda: bool(probe.matching_status.matching), f"a subscriber on {key}")
    finally:
        probe.undeclare()


class Console:
    """The receiving end: decodes every frame on Zenoh's thread and keeps them in order."""

    def __init__(self, session: zenoh.Session, decoder: H264Decoder) -> None:
        self.receiver = VideoReceiver(decoder, "ecm")
        self.shown: list[ReceivedFrame] = []
        self.arrived: list[int] = []
        self.rejects = RejectCounter()
        self._sub = subscribe(session, KEYS.video, self._on_message, self.rejects)

    def _on_message(self, msg: Message, received_ns: int) -> None:
        assert isinstance(msg.body, VideoFrame)
        self.arrived.append(msg.body.frame_index)
        frame = self.receiver.receive(msg, received_ns)
        if frame is not None:
            self.shown.append(frame)


def _render(scene: tuple[Any, Any], camera: EndoscopeCamera, step: int) -> CapturedFrame:
    model, data = scene
    move_tools(data, step)
    mujoco.mj_forward(model, data)
    return camera.capture()


def test_frames_arrive_in_order_and_look_like_the_scene(
        scene: tuple[Any, Any], link: tuple[zenoh.Session, zenoh.Session]) -> None:
    patient, console_session = link
    console = Console(console_session, H264Decoder())
    _until_matched(patient, KEYS.video)
    pub = Publisher(patient, KEYS.video, Stream.VIDEO, new_session_id())
    sender = VideoSender(H264Encoder(320, 240), "ecm", pub.put)
    camera = EndoscopeCamera(*scene, width=320, height=240,
                             applied=lambda: (41, 1_000_000))
    rendered: dict[int, RGBImage] = {}
    rate = Rate(30.0)
    try:
        for step in range(30):
            captured = _render(scene, camera, step)
            rendered[captured.index] = captured.image
            sender(captured)
            rate.sleep()
    finally:
        camera.close()
    _wait(lambda: len(console.shown) == 30, "30 decoded frames")
    assert [f.index for f in console.shown] == list(range(30))
    for f in console.shown:
        assert psnr(rendered[f.index], f.image) >= MIN_PSNR_DB, f.index
        assert f.capture_ns <= f.sent_ns <= f.received_ns <= f.decoded_ns
        assert (f.applied_seq, f.applied_sample_ns) == (41, 1_000_000)
    # Each frame is itself and not its neighbour: the instruments move between frames.
    assert psnr(rendered[10], console.shown[11].image) < psnr(rendered[11],
                                                               console.shown[11].image)
    assert console.rejects.total == 0


def test_a_dropped_frame_heals_through_a_keyframe_request_over_zenoh(
        scene: tuple[Any, Any], link: tuple[zenoh.Session, zenoh.Session]) -> None:
    patient, console_session = link
    requests = Publisher(console_session, KEYFRAME_KEY, Stream.EVENT, new_session_id())

    def ask() -> None:
        requests.put(keyframe_request("ecm"))

    decoder = H264Decoder(on_keyframe_needed=ask)
    console = Console(console_session, decoder)
    pub = Publisher(patient, KEYS.video, Stream.VIDEO, new_session_id())
    dropped = 5

    def publish_but_one(body: VideoFrame) -> None:
        if body.frame_index != dropped:
            pub.put(body)

    encoder = H264Encoder(320, 240)
    sender = VideoSender(encoder, "ecm", publish_but_one)
    asks = RejectCounter()
    ask_sub: Any = subscribe(patient, KEYFRAME_KEY, lambda m, _: sender.on_keyframe_request(m.body),
                        asks)
    _until_matched(patient, KEYS.video)
    _until_matched(console_session, KEYFRAME_KEY)
    camera = EndoscopeCamera(*scene, width=320, height=240)
    rendered: dict[int, RGBImage] = {}
    rate = Rate(30.0)
    deadline = time.monotonic() + WAIT_S
    try:
        while not any(f.keyframe and f.index > dropped for f in console.shown):
            assert time.monotonic() < deadline, "no IDR healed the stream"
            captured = _render(scene, camera, len(rendered))
            rendered[captured.index] = captured.image
            sender(captured)
            rate.sleep()
    finally:
        camera.close()
        ask_sub.undeclare()
    idr = next(f.index for f in console.shown if f.index > dropped)
    shown = [f.index for f in console.shown]
    # Before the loss every frame; after it nothing smeared until the IDR answering the request.
    assert shown[:dropped] == list(range(dropped))
    assert shown[dropped] == idr
    assert console.shown[dropped].keyframe
    assert decoder.lost == 1
    assert decoder.keyframe_requests >= 1
    assert encoder.keyframes >= 2
    assert decoder.skipped == idr - dropped - 1
    for f in console.shown:
        assert psnr(rendered[f.index], f.image) >= MIN_PSNR_DB, f.index
