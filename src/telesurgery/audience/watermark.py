"""The watermark every audience picture carries: session and capture time, nothing of the
patient's.

Two forms, because the audience's stream is the surgeon's H.264, never re-encoded:

- in the bitstream, an SEI message (``user_data_unregistered``, NAL type 6) put in front
  of each access unit's first slice: ``{"s": session, "t": capture [ms since the Unix
  epoch], "f": frame index}``. It travels with every picture of both tiers (the viewer
  page's WebSocket and the HLS segments), a CDN or a recording keeps it, and decoders
  ignore it, so nothing of the picture changes;
- on the viewer page, the same session and time drawn into every painted picture
  (``static/viewer.js``), so a screen capture of the page shows it.

Burning a visible mark into the pixels at the patient would take pixels from the surgeon's
picture; burning it in at the gateway would mean decoding and re-encoding every frame (a
core, and a generation of quality) once per gateway. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from telesurgery.errors import CodecError, CodecReason
from telesurgery.video.h264 import NAL_IDR, NAL_SEI, NAL_SLICE

WATERMARK_UUID: Final = bytes.fromhex("7465_6c65_7375_7267_6572_792d_7761_746d".replace("_", ""))
"""The SEI's 16-byte identifier ("telesurgery-watm"): readers find our payload by it."""
_START: Final = b"\x00\x00\x00\x01"
_USER_DATA_UNREGISTERED: Final = 5
_MAX_PAYLOAD: Final = 512
"""The longest watermark payload a reader looks at [bytes] (a session name is one key chunk)."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """What each picture says about itself: the ``session`` (operating room), the
    ``capture_unix_ms`` [ms since the Unix epoch] and the ``frame`` index."""

    session: str
    capture_unix_ms: int
    frame: int


def _escape(rbsp: bytes) -> bytes:
    """Emulation prevention: no 00 00 0x (x <= 3) may appear inside a NAL unit."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sei(mark: Watermark) -> bytes:
    """The Annex-B SEI NAL unit (start code included) that carries ``mark``."""
    payload = WATERMARK_UUID + json.dumps(
        {"s": mark.session, "t": mark.capture_unix_ms, "f": mark.frame},
        separators=(",", ":")).encode()
    size = len(payload)
    header = bytes([_USER_DATA_UNREGISTERED]) + b"\xff" * (size // 255) + bytes([size % 255])
    return _START + bytes([NAL_SEI]) + _escape(header + payload + b"\x80")


def watermarked(access_unit: bytes, mark: Watermark) -> bytes:
    """``access_unit`` (Annex B) with ``mark``'s SEI in front of its first slice, where the
    standard wants SEI (after the parameter sets, before any picture data)."""
    pos = access_unit.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(access_unit):
        if access_unit[pos + 3] & 0x1F in (NAL_SLICE, NAL_IDR):
            # A four-byte start code's leading zero stays with the unit before it.
            at = pos - 1 if pos > 0 and access_unit[pos - 1] == 0 else pos
            return access_unit[:at] + sei(mark) + access_unit[at:]
        pos = access_unit.find(b"\x00\x00\x01", pos + 3)
    raise CodecError("the access unit holds no slice to watermark", CodecReason.MALFORMED)


def read_watermarks(data: bytes) -> list[Watermark]:
    """Every watermark in ``data`` (an access unit, or the bytes of a segment: the SEI's
    identifier is found wherever it is), in order."""
    marks = []
    decoder = json.JSONDecoder()
    pos = data.find(WATERMARK_UUID)
    while pos >= 0:
        start = pos + len(WATERMARK_UUID)
        # The payload is ASCII JSON with no zero byte: nothing in it was escaped.
        window = data[start:start + _MAX_PAYLOAD].decode("latin-1")
        try:
            fields, _end = decoder.raw_decode(window)
            marks.append(Watermark(str(fields["s"]), int(fields["t"]), int(fields["f"])))
        except (ValueError, KeyError, TypeError):
            pass  # our identifier by chance inside other data: not a watermark
        pos = data.find(WATERMARK_UUID, start)
    return marks


__all__ = ["WATERMARK_UUID", "Watermark", "read_watermarks", "sei", "watermarked"]
