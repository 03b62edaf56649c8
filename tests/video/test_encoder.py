"""libx264 via PyAV: one packet per frame at once, IDR on request, quality at the default rate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from telesurgery.camera import CameraRenderer
from telesurgery.errors import VideoError
from telesurgery.video import H264Decoder, H264Encoder, default_bitrate
from telesurgery.video.h264 import NAL_IDR, NAL_SLICE, is_idr, nal_unit_types
from telesurgery.video.quality import psnr

from .scene import frames

# 30 dB is where H.264 artefacts start to be easy to see; ultrafast at the
# default rate (scaled to this frame size) gives this scene 40 dB or more, so
# 30 dB leaves room for machines and FFmpeg builds without hiding a broken path
# (a wrong colour conversion or a frame off by one scores below 25 dB).
MIN_PSNR_DB = 30.0


def test_each_frame_is_one_packet_and_one_decoded_frame_at_once(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240)
    dec = H264Decoder()
    images = frames(scene, renderer, 45)
    for i, image in enumerate(images):
        out = enc.encode(image)  # raises if libx264 returned no packet: a frame held back
        assert out.index == i
        got = dec.decode(out.data, out.index)
        assert got is not None, f"frame {i} was held back by the decoder"
        assert got.index == i
        assert psnr(image, got.image) >= MIN_PSNR_DB
    assert dec.decoded == 45
    assert dec.errors == dec.lost == dec.skipped == 0


def test_intra_refresh_sends_one_idr_then_slices_in_parallel(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240, keyint=10, threads=2)
    encoded = [enc.encode(image) for image in frames(scene, renderer, 35)]
    assert [e.keyframe for e in encoded] == [True] + [False] * 34
    assert is_idr(encoded[0].data)
    assert not any(NAL_IDR in nal_unit_types(e.data) for e in encoded[1:])
    # Slice threads: every P frame is cut into one slice per thread.
    assert all(nal_unit_types(e.data).count(NAL_SLICE) == 2 for e in encoded[1:])
    assert enc.keyframes == 1


def test_keyframe_request_makes_the_next_frame_an_idr(
        scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240)
    images = frames(scene, renderer, 6)
    first = [enc.encode(image) for image in images[:3]]
    enc.request_keyframe()
    after = [enc.encode(image) for image in images[3:]]
    assert [e.keyframe for e in first + after] == [True, False, False, True, False, False]
    assert is_idr(after[0].data)
    # A decoder that has seen nothing before starts from the requested IDR.
    dec = H264Decoder()
    got = dec.decode(after[0].data, after[0].index)
    assert got is not None
    assert psnr(images[3], got.image) >= MIN_PSNR_DB


def test_default_bitrate_scales_with_pixel_rate() -> None:
    assert default_bitrate(640, 480, 30.0) == 2_000_000
    assert default_bitrate(1280, 720, 30.0) == 6_000_000
    assert H264Encoder(320, 240, fps=30.0).bitrate_bps == 500_000


def test_stays_near_the_bitrate(scene: tuple[Any, Any], renderer: CameraRenderer) -> None:
    enc = H264Encoder(320, 240, fps=30.0)
    sizes = [len(enc.encode(image).data) for image in frames(scene, renderer, 60)]
    # Two seconds of video; the first IDR is allowed its VBV. A generous bound:
    # the point is that the rate control is on, not its precision.
    bits_per_s = 8 * sum(sizes[1:]) / (59 / 30.0)
    assert bits_per_s <= 1.5 * enc.bitrate_bps


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"width": 321, "height": 240}, "even sizes"),
        ({"width": 320, "height": 240, "fps": 0.0}, "rate must be positive"),
        ({"width": 320, "height": 240, "bitrate_bps": 10}, "too low"),
        ({"width": 320, "height": 240, "threads": 0}, "threads must be 1 to 16"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(VideoError, match=expected):
        H264Encoder(**kwargs)


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    enc = H264Encoder(320, 240)
    with pytest.raises(VideoError, match=r"takes \(240, 320, 3\) uint8 RGB frames"):
        enc.encode(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(VideoError, match="uint8"):
        enc.encode(np.zeros((240, 320, 3), np.float32))
