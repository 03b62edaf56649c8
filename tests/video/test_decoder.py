"""The decoder: a lost frame freezes the picture and asks for an IDR, which heals it."""

from __future__ import annotations

from typing import Any

from telesurgery.camera import CameraRenderer
from telesurgery.video import H264Decoder, H264Encoder
from telesurgery.video.h264 import NAL_PPS, NAL_SPS, nal_unit_types
from telesurgery.video.quality import psnr

from .scene import frames

MIN_PSNR_DB = 30.0  # as in test_encoder: visible artefacts start below it


class Requests:
    """Counts keyframe requests and forwards them to ``encoder``, as a sender would."""

    def __init__(self, encoder: H264Encoder | None = None) -> None:
        self.count = 0
        self._encoder = encoder

    def __call__(self) -> None:
        self.count += 1
        if self._encoder is not None:
            self._encoder.request_keyframe()


def test_a_lost_frame_freezes_until_the_requested_idr_arrives(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    images = frames(scene, renderer, 12)
    enc = H264Encoder(320, 240)
    asked = Requests(enc)
    dec = H264Decoder(on_keyframe_needed=asked, retry_s=3600.0)
    shown = {}
    for i, image in enumerate(images):
        out = enc.encode(image)
        if i == 4:
            continue  # lost on the way
        got = dec.decode(out.data, out.index)
        if got is not None:
            shown[i] = psnr(image, got.image)
    assert dec.lost == 1
    assert asked.count == 1  # one request: retries are 1 h apart here
    # Frame 5 arrived after the gap: skipped, not shown smeared; frame 6 is the IDR.
    assert sorted(shown) == [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]
    assert dec.skipped == 1
    assert all(db >= MIN_PSNR_DB for db in shown.values()), shown
    assert not dec.waiting_for_keyframe


def test_joining_mid_stream_waits_for_an_idr_and_asks_again(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240)
    encoded = [enc.encode(image) for image in frames(scene, renderer, 5)]
    asked = Requests()
    dec = H264Decoder(on_keyframe_needed=asked, retry_s=0.0)
    for e in encoded[1:]:
        assert dec.decode(e.data, e.index) is None
    assert dec.skipped == 4
    assert asked.count == 4  # retry_s=0: every frame without an IDR asks again
    assert dec.waiting_for_keyframe


def test_garbage_is_counted_and_heals_with_an_idr(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    images = frames(scene, renderer, 3)
    enc = H264Encoder(320, 240)
    asked = Requests()
    dec = H264Decoder(on_keyframe_needed=asked)
    first = enc.encode(images[0])
    assert dec.decode(first.data, 0) is not None
    assert dec.decode(b"\x00\x00\x00\x01\x09garbage", 1) is None
    assert dec.errors == 1
    assert asked.count == 1
    enc.encode(images[1])
    enc.request_keyframe()
    idr = enc.encode(images[2])
    got = dec.decode(idr.data, 2)
    assert got is not None
    assert psnr(images[2], got.image) >= MIN_PSNR_DB


def test_stale_and_duplicate_frames_are_dropped(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240)
    a, b = (enc.encode(image) for image in frames(scene, renderer, 2))
    dec = H264Decoder()
    assert dec.decode(a.data, 0) is not None
    assert dec.decode(b.data, 1) is not None
    assert dec.decode(b.data, 1) is None
    assert dec.decode(a.data, 0) is None
    assert dec.stale == 2
    assert dec.decoded == 2


def test_an_intra_refresh_wave_is_no_place_to_start(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    # libx264 flags the start of each refresh wave as a keyframe and repeats the parameter
    # sets there, but its slices still predict from frames this decoder never saw.
    enc = H264Encoder(320, 240, keyint=5)
    encoded = [enc.encode(image) for image in frames(scene, renderer, 6)]
    assert nal_unit_types(encoded[5].data)[:2] == [NAL_SPS, NAL_PPS]
    dec = H264Decoder()
    assert dec.decode(encoded[5].data, 5) is None
    assert dec.skipped == 1
