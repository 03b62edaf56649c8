"""The broadcast tier: the surgeon's H.264 access units, not re-encoded, packaged as HLS.

FFmpeg's ``hls`` muxer (through PyAV) writes fragmented-MP4 (CMAF) segments and a live
playlist into a folder of the gateway's; the gateway serves the folder over HTTP, and any
CDN may sit in front of it. Segments start at an IDR: the patient's encoder sends one only
on request (intra refresh otherwise), so the gateway asks for one every ``KEY_PERIOD_S``
while the broadcast is on, and the muxer cuts at each. Files are written under a
temporary name and renamed, so a client never reads half a segment.

Latency: a segment becomes visible when it is complete (≤ ``SEGMENT_S``), a client polls
the playlist every target duration, and a player holds back a few segments from the live
edge; FFmpeg's muxer has no partial segments (LL-HLS's ``EXT-X-PART``), so short segments
are what keeps it low here.
"""

from __future__ import annotations

import fractions
import logging
import shutil
import threading
from pathlib import Path
from typing import Final

import av

from telesurgery.errors import VideoError
from telesurgery.video.h264 import NAL_PPS, NAL_SPS

log = logging.getLogger(__name__)

SEGMENT_S: Final = 1.0
"""The longest a segment may be [s]; the playlist's target duration."""
KEY_PERIOD_S: Final = 0.8
"""How often [s] the gateway asks the patient for an IDR while broadcasting: under
``SEGMENT_S`` by the time a request takes to come back as a frame (a frame or two; more
on a loaded machine, when a segment may run a little over a second)."""
CUT_AFTER_S: Final = 0.5
"""The muxer cuts at the first IDR this long [s] into a segment: each requested IDR, and
none of the surgeon's own (after a loss) that comes sooner."""
LIST_SIZE: Final = 6
"""Segments in the live playlist (older ones are deleted)."""
PLAYLIST: Final = "live.m3u8"
_CLOCK: Final = fractions.Fraction(1, 90_000)


def parameter_sets(access_unit: bytes) -> bytes:
    """The SPS and PPS NAL units of an IDR access unit (Annex B), for the MP4 header."""
    out = []
    starts = []
    pos = access_unit.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos)
        pos = access_unit.find(b"\x00\x00\x01", pos + 3)
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(access_unit)
        unit = access_unit[start + 3:end].rstrip(b"\x00")
        if unit and unit[0] & 0x1F in (NAL_SPS, NAL_PPS):
            out.append(b"\x00\x00\x00\x01" + unit)
    if not out:
        raise VideoError("the keyframe carries no SPS or PPS; the HLS tier cannot start on it")
    return b"".join(out)


class HlsPackager:
    """Muxes access units into ``folder`` as a live HLS stream, from the first IDR on.

    ``add`` and ``close`` may come from different threads (the gateway's video thread, the
    web thread stopping the broadcast): FFmpeg's muxer must never be closed while it muxes,
    so they take turns, and an ``add`` after ``close`` does nothing.
    """

    def __init__(self, folder: Path, *, list_size: int = LIST_SIZE) -> None:
        self.folder = folder
        self.list_size = list_size
        self.segments_started = 0
        self.frames = 0
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._first_ns = 0
        self._last_pts = -1
        self._lock = threading.Lock()
        self._closed = False

    @property
    def playlist(self) -> Path:
        """The live playlist's path."""
        return self.folder / PLAYLIST

    @property
    def started(self) -> bool:
        """True once the first IDR opened the stream."""
        return self._out is not None

    def add(self, access_unit: bytes, keyframe: bool, width: int, height: int,
            capture_ns: int) -> None:
        """Mux one access unit captured at ``capture_ns`` [ns]; before the first IDR,
        frames are skipped (a player cannot start on them)."""
        with self._lock:
            if not self._closed:
                self._add(access_unit, keyframe, width, height, capture_ns)

    def _add(self, access_unit: bytes, keyframe: bool, width: int, height: int,
             capture_ns: int) -> None:
        if self._out is None:
            if not keyframe:
                return
            self._open(access_unit, width, height, capture_ns)
        assert self._stream is not None
        assert self._out is not None
        pts = round((capture_ns - self._first_ns) * 1e-9 / _CLOCK)
        if pts <= self._last_pts:
            return  # a frame out of order or repeated: the muxer wants rising times
        self._last_pts = pts
        packet = av.Packet(access_unit)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = _CLOCK
        packet.is_keyframe = keyframe
        try:
            self._out.mux(packet)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot write the HLS segment in {self.folder} ({exc}); check "
                             "the disk has room") from exc
        self.frames += 1

    def _open(self, access_unit: bytes, width: int, height: int, capture_ns: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        options = {
            "hls_time": str(CUT_AFTER_S), "hls_segment_type": "fmp4",
            "hls_list_size": str(self.list_size),
            "hls_flags": "independent_segments+delete_segments+omit_endlist+temp_file",
            "hls_fmp4_init_filename": "init.mp4",
            "hls_segment_filename": str(self.folder / "seg%06d.m4s"),
        }
        try:
            out = av.open(str(self.playlist), "w", format="hls", options=options)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot start the HLS stream in {self.folder} ({exc}); the "
                             "folder must be writable") from exc
        stream = out.add_stream("h264", rate=30)
        stream.width, stream.height = width, height
        stream.time_base = _CLOCK
        stream.codec_context.extradata = parameter_sets(access_unit)
        self._out, self._stream = out, stream
        self._first_ns = capture_ns
        self._last_pts = -1

    def close(self) -> None:
        """End the stream and delete its files: a stopped broadcast leaves nothing to fetch."""
        with self._lock:
            self._closed = True
            out, self._out, self._stream = self._out, None, None
            if out is not None:
                try:
                    out.close()
                except av.FFmpegError as exc:
                    log.warning("HLS stream did not close cleanly: %s", exc)
            shutil.rmtree(self.folder, ignore_errors=True)


__all__ = ["CUT_AFTER_S", "KEY_PERIOD_S", "LIST_SIZE", "PLAYLIST", "SEGMENT_S",
           "HlsPackager", "parameter_sets"]
