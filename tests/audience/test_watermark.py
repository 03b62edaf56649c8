"""The watermark SEI: written into real H.264 access units, read back, decoded unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.audience.watermark import Watermark, read_watermarks, sei, watermarked
from telesurgery.errors import CodecError
from telesurgery.video.decoder import H264Decoder
from telesurgery.video.encoder import H264Encoder
from telesurgery.video.h264 import NAL_SEI, nal_unit_types


def _frames(n: int) -> list[tuple[bytes, bool]]:
    enc = H264Encoder(160, 120)
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        f = enc.encode(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        out.append((f.data, f.keyframe))
    return out


def test_every_watermarked_frame_decodes_to_the_same_picture_and_says_its_mark() -> None:
    plain, marked = H264Decoder(), H264Decoder()
    for i, (data, key) in enumerate(_frames(8)):
        mark = Watermark("or1", 1_796_000_000_000 + 33 * i, i)
        out = watermarked(data, mark)
        assert read_watermarks(out) == [mark]
        types = nal_unit_types(out)
        # The SEI sits after the parameter sets and before the picture's first slice.
        assert types.index(NAL_SEI) < min(types.index(t) for t in (1, 5) if t in types)
        a, b = plain.decode(data, i), marked.decode(out, i)
        assert a is not None
        assert b is not None
        assert key == (i == 0)
        assert np.array_equal(a.image, b.image)


@given(session=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                       max_size=40),
       t=st.integers(0, 2**53), frame=st.integers(0, 2**32))
def test_marks_round_trip_and_no_start_code_hides_in_them(session: str, t: int,
                                                          frame: int) -> None:
    unit = sei(Watermark(session, t, frame))
    # Exactly one start code: the payload can never be mistaken for the next NAL unit.
    assert unit.count(b"\x00\x00\x01") == 1
    assert read_watermarks(unit) == [Watermark(session, t, frame)]


def test_bytes_without_a_slice_are_refused() -> None:
    with pytest.raises(CodecError, match="no slice"):
        watermarked(b"\x00\x00\x00\x01\x67\x42", Watermark("or1", 0, 0))
