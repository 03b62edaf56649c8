"""The HLS packager on real encoded frames: a playlist a real parser reads, segments PyAV
decodes, starting at an IDR, and nothing left once it is closed."""

from __future__ import annotations

import io
from pathlib import Path

import av
import m3u8
import numpy as np

from telesurgery.audience.hls import HlsPackager, parameter_sets
from telesurgery.audience.watermark import Watermark, read_watermarks, watermarked
from telesurgery.video.encoder import H264Encoder
from telesurgery.video.h264 import NAL_PPS, NAL_SPS, nal_unit_types

FRAME_NS = 33_333_333


def test_segments_cut_at_each_keyframe_parse_and_decode(tmp_path: Path) -> None:
    enc = H264Encoder(160, 120)
    hls = HlsPackager(tmp_path / "live")
    for i in range(100):
        if i % 24 == 0:
            enc.request_keyframe()  # as the gateway asks, every 0.8 s at 30 fps
        f = enc.encode(np.full((120, 160, 3), (i * 2) % 256, np.uint8))
        hls.add(watermarked(f.data, Watermark("or1", i, i)), f.keyframe, 160, 120,
                10**9 + i * FRAME_NS)
    playlist = m3u8.load(str(hls.playlist))
    assert playlist.target_duration == 1
    assert len(playlist.segments) >= 3
    assert [round(s.duration, 2) for s in playlist.segments] == [0.8] * len(playlist.segments)
    init = (hls.folder / playlist.segment_map[0].uri).read_bytes()
    for seg in playlist.segments:
        body = (hls.folder / seg.uri).read_bytes()
        with av.open(io.BytesIO(init + body), "r") as container:
            pictures = list(container.decode(video=0))
        marks = read_watermarks(body)
        assert len(pictures) == len(marks) > 0
        # Each segment stands alone from its first picture, an IDR.
        assert pictures[0].key_frame
    hls.close()
    assert not hls.folder.exists()


def test_nothing_is_written_before_the_first_keyframe(tmp_path: Path) -> None:
    enc = H264Encoder(160, 120)
    enc.encode(np.zeros((120, 160, 3), np.uint8))  # the IDR, not given to the packager
    hls = HlsPackager(tmp_path / "live")
    for i in range(5):
        f = enc.encode(np.zeros((120, 160, 3), np.uint8))
        assert not f.keyframe
        hls.add(f.data, f.keyframe, 160, 120, i * FRAME_NS)
    assert not hls.started
    assert not (tmp_path / "live").exists()


def test_parameter_sets_are_the_sps_and_pps_only() -> None:
    f = H264Encoder(160, 120).encode(np.zeros((120, 160, 3), np.uint8))
    assert f.keyframe
    assert nal_unit_types(parameter_sets(f.data)) == [NAL_SPS, NAL_PPS]
