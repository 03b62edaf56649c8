"""The VIDEO_FRAME message: exact layout, round trips, and clear errors on bad bytes."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.errors import CodecError
from telesurgery.messages import Message, MessageType, VideoFrame
from telesurgery.transport.codec import HEADER_SIZE, decode, encode

FRAME = VideoFrame("endoscope", 640, 480, True, 7, 123_456_789, 42, 120_000_000,
                   b"\x00\x00\x00\x01\x67\x42")


def test_layout_is_frozen() -> None:
    raw = encode(Message(1, 2, 3, FRAME))
    assert raw[3] == int(MessageType.VIDEO_FRAME) == 8
    body = raw[HEADER_SIZE:]
    assert body == (b"\x09endoscope" + struct.pack("<HHBQqQqI", 640, 480, 1, 7, 123_456_789,
                                                   42, 120_000_000, 6) + FRAME.data)
    # The header around a frame is small next to the ~8 kB of a 640x480 frame.
    assert len(raw) - len(FRAME.data) == HEADER_SIZE + 10 + 41


FRAMES = st.builds(
    VideoFrame,
    camera=st.text(min_size=1, max_size=40).filter(lambda c: len(c.encode()) <= 255),
    width=st.integers(1, 65535),
    height=st.integers(1, 65535),
    keyframe=st.booleans(),
    frame_index=st.integers(0, 2**64 - 1),
    capture_ns=st.integers(-(2**63), 2**63 - 1),
    applied_seq=st.integers(0, 2**64 - 1),
    applied_sample_ns=st.integers(-(2**63), 2**63 - 1),
    data=st.binary(max_size=4096),
)


@given(FRAMES)
def test_round_trip(frame: VideoFrame) -> None:
    msg = Message(5, 6, 7, frame)
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b[:-1], "VIDEO_FRAME body truncated"),
        (lambda b: b + b"\x00", "1 unexpected bytes after the VIDEO_FRAME body"),
        (lambda b: b[:40] + b"\x00\x00" + b[42:], "VIDEO_FRAME size 0x480 is empty"),
        (lambda b: b[:44] + b"\x02" + b[45:], "VIDEO_FRAME.keyframe: boolean byte is 2"),
        (lambda b: b[:-10] + struct.pack("<I", 2**31) + b[-6:],
         "VIDEO_FRAME announces 2147483648 bytes of data"),
    ],
)
def test_bad_bytes_are_one_clear_error(mutate: Callable[[bytes], bytes], expected: str) -> None:
    with pytest.raises(CodecError, match=expected):
        decode(mutate(encode(Message(1, 1, 1, FRAME))))


def test_oversized_frame_is_refused_at_send() -> None:
    big = VideoFrame("endoscope", 16, 16, False, 0, 0, 0, 0, bytes(16 * 2**20 + 1))
    with pytest.raises(CodecError, match="lower the bitrate or the frame size"):
        encode(Message(1, 1, 1, big))
