"""H.264 decoding of endoscope frames to RGB, one frame out for every packet in.

Slice threads only: FFmpeg's frame-threaded decoder holds one to two frames
back, which is a frame period or more of added latency.

Loss handling: a gap in the frame index means a lost frame. FFmpeg would go
on decoding the next frames against a missing reference and show smeared
images without any error, so after a gap, a decode error or a start
mid-stream the decoder shows nothing new (the last good frame stays on the
screen, and its age tells the surgeon) until an IDR arrives, and asks the
sender for one through ``on_keyframe_needed``, again every ``retry_s`` while
it waits, since the request itself may be lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from telesurgery.camera.renderer import RGBImage
from telesurgery.clock import now_ns
from telesurgery.errors import VideoError
from telesurgery.video.h264 import is_idr

DEFAULT_RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame: read-only RGB ``image``; ``decode_ns``: decode and convert time [ns]."""

    index: int
    image: RGBImage
    keyframe: bool
    decode_ns: int


def _never() -> None:
    return None


class H264Decoder:
    """Decodes H.264 Annex-B frames in order and recovers from loss by asking for an IDR.

    Counters: ``decoded``, ``errors`` (packets FFmpeg refused), ``lost`` (frames
    missing from the index sequence), ``skipped`` (frames received while waiting
    for an IDR), ``stale`` (index not after the last one), ``keyframe_requests``.
    """

    def __init__(self, *, on_keyframe_needed: Callable[[], None] = _never, threads: int = 2,
                 retry_s: float = DEFAULT_RETRY_S) -> None:
        if not 1 <= threads <= 16:
            raise VideoError(f"threads must be 1 to 16, got {threads}")
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_type = "SLICE"
        ctx.thread_count = threads
        self._ctx = ctx
        self._ask = on_keyframe_needed
        self._retry_ns = round(retry_s * 1e9)
        self._last_index: int | None = None
        self._synced = False
        self._asked_ns: int | None = None
        self._lock = threading.Lock()
        self.decoded = 0
        self.errors = 0
        self.lost = 0
        self.skipped = 0
        self.stale = 0
        self.keyframe_requests = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        """True until an IDR has been decoded after the start or the last loss."""
        return not self._synced

    def decode(self, data: bytes, index: int) -> DecodedFrame | None:
        """Decode frame ``index``; None when it is stale, skipped or broken (and counted).

        Whether ``data`` is an IDR is read from its NAL units, not taken on trust.
        """
        with self._lock:
            if self._last_index is not None and index <= self._last_index:
                self.stale += 1
                return None
            if self._last_index is not None and index > self._last_index + 1:
                self.lost += index - self._last_index - 1
                self._synced = False
            self._last_index = index
            keyframe = is_idr(data)
            if not (self._synced or keyframe):
                self.skipped += 1
                self._want_keyframe()
                return None
            start = now_ns()
            try:
                frames = self._ctx.decode(av.Packet(data))
                images = [np.asarray(f.to_ndarray(format="rgb24"), np.uint8) for f in frames]
            except av.FFmpegError:
                images = []
            if len(images) != 1:
                # Either FFmpeg refused the packet or held it back: both break the stream here.
                self.errors += 1
                self._synced = False
                self._want_keyframe()
                return None
            self._synced = True
            self._asked_ns = None
            self.decoded += 1
            image = images[0]
            image.flags.writeable = False
            return DecodedFrame(index, image, keyframe, now_ns() - start)

    def _want_keyframe(self) -> None:
        now = now_ns()
        if self._asked_ns is not None and now - self._asked_ns < self._retry_ns:
            return
        self._asked_ns = now
        self.keyframe_requests += 1
        self._ask()


__all__ = ["DEFAULT_RETRY_S", "DecodedFrame", "H264Decoder"]
