"""H.264 Annex-B byte-stream helpers: which NAL units a frame carries."""

from __future__ import annotations

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8


def nal_unit_types(data: bytes) -> list[int]:
    """The ``nal_unit_type`` of every NAL unit in an Annex-B ``data``, in order."""
    types = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(data):
        types.append(data[pos + 3] & 0x1F)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return types


def is_idr(data: bytes) -> bool:
    """True when ``data`` holds an IDR picture with its parameter sets: a decoder can start here."""
    types = nal_unit_types(data)
    return NAL_IDR in types and NAL_SPS in types and NAL_PPS in types


__all__ = ["NAL_IDR", "NAL_PPS", "NAL_SEI", "NAL_SLICE", "NAL_SPS", "is_idr", "nal_unit_types"]
