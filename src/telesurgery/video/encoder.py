"""H.264 encoding of endoscope frames with libx264, one packet out for every frame in.

Settings, for the lowest latency:

- ``ultrafast`` + ``zerolatency``: no lookahead, no B-frames, so the encoder
  holds no frame back (without zerolatency libx264 keeps about 3);
- slice threads, not frame threads: each frame is cut into slices encoded in
  parallel, where frame threads would delay output by one frame per thread;
- intra refresh instead of periodic IDR frames: a column of intra blocks
  sweeps the picture every ``keyint`` frames, so frame sizes stay even and no
  frame queues behind a large keyframe; a full IDR is sent only on request
  (a viewer joins or lost a frame);
- a VBV of ``vbv_s`` of the bitrate caps any frame, an IDR included, at that
  many seconds of the link budget.

RGB is converted to YUV 4:2:0 by FFmpeg's swscale with a reused context: on
the 2-core reference machine that took 0.6-0.9 ms at 640x480, against
2.2 ms for integer numpy arithmetic and 11 ms for float numpy.
"""

from __future__ import annotations

import fractions
import threading
from dataclasses import dataclass
from typing import Final

import av
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from telesurgery.camera.renderer import RGBImage
from telesurgery.clock import now_ns
from telesurgery.errors import VideoError
from telesurgery.video.h264 import is_idr

DEFAULT_BITRATE_BPS: Final = 2_000_000
"""For 640x480 at 30 fps: ~0.22 bit a pixel. ultrafast spends about twice the bits
of slower presets for the same quality; at this rate the simulated peg-transfer
scene with moving instruments used ~1.8 Mbit/s and came back at 40 dB PSNR
(``bench_video``), where artefacts are hard to see. It is well inside the
5.2 Mbit/s the Riverfield 150 km study ran on and the 12.8 Mbit/s of the Edge
trial's stream. Other sizes scale it by pixel rate (``default_bitrate``)."""

DEFAULT_VBV_S: Final = 0.25


def default_bitrate(width: int, height: int, fps: float) -> int:
    """The default bitrate [bit/s] scaled from 2 Mbit/s at 640x480@30 by pixel rate."""
    return round(DEFAULT_BITRATE_BPS * (width * height * fps) / (640 * 480 * 30.0))


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame: Annex-B ``data``, ``keyframe`` when it is an IDR with its parameter
    sets; ``convert_ns`` and ``encode_ns`` are durations [ns]."""

    index: int
    data: bytes
    keyframe: bool
    width: int
    height: int
    convert_ns: int
    encode_ns: int


class H264Encoder:
    """Encodes (height, width, 3) RGB frames of one size to H.264, one packet per frame.

    ``fps`` [1/s] is the nominal rate the bitrate is spread over; ``bitrate_bps``
    [bit/s] defaults to ``default_bitrate``; ``keyint`` [frames] is the intra
    refresh period (default: one second of frames); ``threads`` serves both the
    slices and the colour conversion.
    """

    def __init__(self, width: int, height: int, *, fps: float = 30.0,
                 bitrate_bps: int | None = None, keyint: int | None = None, threads: int = 2,
                 vbv_s: float = DEFAULT_VBV_S) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise VideoError(f"frame size {width}x{height} cannot be encoded as YUV 4:2:0; "
                             "use even sizes of at least 16 px, e.g. 640x480")
        if not fps > 0.0:
            raise VideoError(f"encoder rate must be positive, got {fps} fps")
        bitrate = bitrate_bps if bitrate_bps is not None else default_bitrate(width, height, fps)
        if bitrate < 50_000:
            raise VideoError(f"bitrate {bitrate} bit/s is too low for H.264 video; use at "
                             "least 50000 (the default for 640x480@30 is 2000000)")
        if not 1 <= threads <= 16:
            raise VideoError(f"threads must be 1 to 16, got {threads}")
        self.width = width
        self.height = height
        self.bitrate_bps = bitrate
        self.frames = 0
        self.keyframes = 0
        self._threads = threads
        self._keyframe_wanted = threading.Event()
        self._reformatter = VideoReformatter()
        kbps = max(bitrate // 1000, 1)
        gop = keyint if keyint is not None else max(round(fps), 1)
        rate = fractions.Fraction(fps).limit_denominator(1001)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = rate
        ctx.time_base = 1 / rate
        ctx.bit_rate = bitrate
        ctx.max_b_frames = 0
        ctx.thread_type = "SLICE"
        ctx.thread_count = threads
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": (f"intra-refresh=1:keyint={gop}:bframes=0:sliced-threads=1"
                            f":vbv-maxrate={kbps}:vbv-bufsize={max(round(kbps * vbv_s), 1)}"),
        }
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise VideoError(f"cannot open libx264 ({exc}); PyAV needs an FFmpeg built with "
                             "libx264 (the PyPI 'av' wheels are)") from exc
        self._ctx = ctx

    def request_keyframe(self) -> None:
        """Make the next frame an IDR (thread-safe: call it from a network callback)."""
        self._keyframe_wanted.set()

    def convert(self, image: RGBImage) -> av.VideoFrame:
        """RGB (height, width, 3) uint8 to a YUV 4:2:0 frame."""
        if image.shape != (self.height, self.width, 3) or image.dtype.name != "uint8":
            raise VideoError(f"the encoder takes ({self.height}, {self.width}, 3) uint8 RGB "
                             f"frames, got {image.shape} {image.dtype}; render at the encoder's "
                             "size")
        rgb = av.VideoFrame.from_numpy_buffer(image, format="rgb24")
        return self._reformatter.reformat(rgb, format="yuv420p", threads=self._threads)

    def encode(self, image: RGBImage) -> EncodedFrame:
        """Convert and encode one frame; the packet comes back now, never a frame later."""
        start = now_ns()
        yuv = self.convert(image if image.flags.c_contiguous else image.copy())
        return self.encode_yuv(yuv, convert_ns=now_ns() - start)

    def encode_yuv(self, frame: av.VideoFrame, *, convert_ns: int = 0) -> EncodedFrame:
        """Encode one YUV 4:2:0 frame (from ``convert``)."""
        index = self.frames
        frame.pts = index
        if self._keyframe_wanted.is_set():
            self._keyframe_wanted.clear()
            frame.pict_type = PictureType.I
        start = now_ns()
        try:
            packets = self._ctx.encode(frame)
        except av.FFmpegError as exc:
            raise VideoError(f"libx264 failed on frame {index}: {exc}") from exc
        took = now_ns() - start
        if len(packets) != 1:
            raise VideoError(f"libx264 returned {len(packets)} packets for frame {index} instead "
                             "of 1: it is holding frames back; check the zerolatency settings")
        data = bytes(packets[0])
        # Not ``packet.is_keyframe``: with intra refresh libx264 also flags the start of
        # each refresh wave, a P frame no decoder can start from.
        keyframe = is_idr(data)
        self.frames += 1
        self.keyframes += int(keyframe)
        return EncodedFrame(index, data, keyframe, self.width, self.height, convert_ns, took)


__all__ = ["DEFAULT_BITRATE_BPS", "EncodedFrame", "H264Encoder", "default_bitrate"]
