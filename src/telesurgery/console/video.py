"""The console's end of the endoscope stream: receive on Zenoh, decode on a thread of its own.

Zenoh's receive thread (real-time priority in a real-time console) only
queues each message; one thread below the loop's priority (``clock.set_bulk_thread``;
its decoder's threads are made in it, so they inherit that) hands the encoded frame
to the page sink first (pages decode it themselves, so the console's decode
adds nothing to their latency), then decodes its own copy, which detects
loss (and asks the patient for an IDR), stands in for the page where none is
open, and feeds the JPEG fallback. The 1 kHz teleoperation loop never
touches video.

Clocks: ``capture_ns`` and the publish time are on the patient's clock; a
frame's ``applied_sample_ns`` is on this console's (it is the input sample
time of one of its commands). ``clock_offset_ns`` (patient minus console,
0 on one machine) maps the former onto the latter.
"""

from __future__ import annotations

import logging
import queue
import threading
from enum import Enum
from typing import Any, Final, Protocol

import zenoh

from telesurgery.camera.renderer import RGBImage
from telesurgery.clock import now_ns, set_bulk_thread
from telesurgery.config import VideoConfig
from telesurgery.messages import Message, VideoFrame
from telesurgery.stats import Samples
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, subscribe
from telesurgery.video.decoder import H264Decoder
from telesurgery.video.latency import LatencyBook
from telesurgery.video.pipeline import KEYFRAME_REQUEST_SUFFIX, VideoReceiver, keyframe_request

log = logging.getLogger(__name__)

VIDEO_LATE_MS: Final = 300.0
"""The newest frame older than this [ms] since its capture: the surgeon is warned. Xu et
al. 2014 (dV-Trainer): every subject judged up to 300 ms of latency safe."""
VIDEO_FROZEN_MS: Final = 500.0
"""The newest frame older than this [ms]: the picture is too old to operate on, and the
console clutches every arm in software until a fresh frame arrives (the supervisor
brakes the instruments and keeps them there). Xu et al. 2014: 400-500 ms acceptable but
tiring, beyond it only simple low-risk work."""



def patient_clock_offset_ns(status: dict[str, Any]) -> int | None:
    """The patient's clock minus this console's [ns], as the patient's status estimates it
    from its path sync (``link.clock.offset_ms``); None when the status has none."""
    offset_ms = status.get("link", {}).get("clock", {}).get("offset_ms")
    if isinstance(offset_ms, int | float) and not isinstance(offset_ms, bool):
        return round(offset_ms * 1e6)
    return None

class VideoAge(Enum):
    """How old the surgeon's picture is: what the console does about it."""

    FRESH = "fresh"
    LATE = "late"
    """Older than ``VIDEO_LATE_MS``: an alarm on the page."""
    FROZEN = "frozen"
    """Older than ``VIDEO_FROZEN_MS``: an alarm, and the arms clutched."""


def video_age(newest_capture_ns: int, now: int) -> VideoAge:
    """The verdict on a picture whose newest frame was captured at ``newest_capture_ns``
    [ns, console clock; 0: no frame yet, which is not judged: the console drives without
    video as with ``--no-video``]."""
    if newest_capture_ns == 0:
        return VideoAge.FRESH
    age_ms = (now - newest_capture_ns) * 1e-6
    if age_ms > VIDEO_FROZEN_MS:
        return VideoAge.FROZEN
    return VideoAge.LATE if age_ms > VIDEO_LATE_MS else VideoAge.FRESH


VIDEO_BACK_S: Final = 1.0
"""After a freeze, the picture must stay fresh this long [s] before the hands drive again:
on a starved machine frames come and go, and the instruments would otherwise be clutched
and released several times a second."""


class PictureCheck:
    """``video_age`` with the hysteresis of ``VIDEO_BACK_S``: once FROZEN, the verdict stays
    FROZEN until the picture has been FRESH that long. One per console loop."""

    def __init__(self) -> None:
        self.verdict = VideoAge.FRESH
        self._fresh_since: int | None = None

    def update(self, newest_capture_ns: int, now: int) -> VideoAge:
        """The verdict at ``now`` [ns] on a picture whose newest frame was captured at
        ``newest_capture_ns`` [ns, console clock; 0: none yet]."""
        age = video_age(newest_capture_ns, now)
        if self.verdict is VideoAge.FROZEN and age is not VideoAge.FROZEN:
            if age is not VideoAge.FRESH:
                self._fresh_since = None
                return self.verdict
            if self._fresh_since is None:
                self._fresh_since = now
            if now - self._fresh_since < VIDEO_BACK_S * 1e9:
                return self.verdict
        self._fresh_since = None
        self.verdict = age
        return age


class FrameSink(Protocol):
    """Where frames go besides the console's decoder (the web page server)."""

    def encoded(self, body: VideoFrame, capture_ns: int, published_ns: int,
                received_ns: int) -> None:
        """A frame as received, before decoding (stamps [ns], console clock)."""

    def decoded(self, body: VideoFrame, image: RGBImage, capture_ns: int, published_ns: int,
                received_ns: int) -> None:
        """The same frame after the console decoded it."""


class ConsoleVideo:
    """Receives ``config.camera``'s frames, decodes them, and hands them to ``sink``.

    ``book`` holds the console decoder's own latency figures (glass-to-glass up to
    decoded, motion-to-photon for commands one ``command_period_ns`` apart).
    """

    def __init__(self, config: VideoConfig, command_period_ns: int,
                 sink: FrameSink | None = None) -> None:
        self.config = config
        self.sink = sink
        self.clock_offset_ns = 0
        """Patient clock minus console clock [ns] (0 on one machine)."""
        self.decoder = H264Decoder(on_keyframe_needed=self.request_keyframe,
                                   threads=config.threads)
        self.receiver = VideoReceiver(self.decoder, config.camera)
        self.book = LatencyBook(command_period_ns)
        self.received = 0
        self.last_received_ns = 0
        self.first_received_ns = 0
        self.newest_capture_ns = 0
        """Capture time [ns, console clock] of the newest frame received (0: none yet)."""
        self.queue_ns = Samples()
        self.error: str | None = None
        self._queue: queue.SimpleQueue[tuple[Message, int] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sub: zenoh.Subscriber[None] | None = None
        self._requests: Publisher | None = None

    def start(self, z: zenoh.Session, keys: Keys, session_id: int,
              rejects: RejectCounter) -> None:
        """Subscribe to the video key and start decoding."""
        self._requests = Publisher(z, f"{keys.video}/{KEYFRAME_REQUEST_SUFFIX}", Stream.EVENT,
                                   session_id)
        self._thread = threading.Thread(target=self._run, name="console-video", daemon=True)
        self._thread.start()
        self._sub = subscribe(z, keys.video, self._on_message, rejects)

    def request_keyframe(self) -> None:
        """Ask the patient's encoder for an IDR (a page joined, or a frame was lost)."""
        if self._requests is not None:
            self._requests.put(keyframe_request(self.config.camera))

    def _on_message(self, msg: Message, received_ns: int) -> None:
        self._queue.put((msg, received_ns))

    def _run(self) -> None:
        set_bulk_thread()
        while (item := self._queue.get()) is not None:
            try:
                self._frame(*item)
            except Exception as exc:
                # A bug here must not end the video for the rest of the operation.
                self.error = str(exc)
                log.exception("console video: a frame failed")

    def _frame(self, msg: Message, received_ns: int) -> None:
        body = msg.body
        if not isinstance(body, VideoFrame) or body.camera != self.config.camera:
            return
        dequeued = now_ns()
        self.queue_ns.add(dequeued - received_ns)
        self.received += 1
        self.first_received_ns = self.first_received_ns or received_ns
        self.last_received_ns = received_ns
        capture = body.capture_ns - self.clock_offset_ns
        self.newest_capture_ns = max(self.newest_capture_ns, capture)
        published = msg.sent_ns - self.clock_offset_ns
        if self.sink is not None:
            self.sink.encoded(body, capture, published, received_ns)
        frame = self.receiver.receive(msg, received_ns)
        if frame is None:
            return
        self.book.shown(capture, body.applied_sample_ns, frame.decoded_ns, {
            "transport": received_ns - published,
            "queue": dequeued - received_ns,
            "decode": frame.decoded_ns - dequeued,
        })
        if self.sink is not None:
            self.sink.decoded(body, frame.image, capture, published, received_ns)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Unsubscribe and stop the decoding thread (idempotent)."""
        if self._sub is not None:
            self._sub.undeclare()
            self._sub = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None
        if self._requests is not None:
            self._requests.close()
            self._requests = None

    def fps(self) -> float:
        """Frames received per second [1/s] so far."""
        span = self.last_received_ns - self.first_received_ns
        return round((self.received - 1) / (span * 1e-9), 2) if span > 0 else 0.0

    def status(self) -> dict[str, Any]:
        """Live figures: frames, decoder counters, recent glass-to-glass to decoded [ms]."""
        d = self.decoder
        out: dict[str, Any] = {
            "received": self.received, "fps": self.fps(),
            "age_ms": round((now_ns() - self.last_received_ns) * 1e-6, 1)
            if self.last_received_ns else None,
            "decoder": {"decoded": d.decoded, "lost": d.lost, "errors": d.errors,
                        "skipped": d.skipped, "keyframe_requests": d.keyframe_requests,
                        "waiting_for_keyframe": d.waiting_for_keyframe},
            "glass_to_glass_ms": self.book.recent_ms(),
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def report(self) -> dict[str, Any]:
        """Final figures: the console decoder's latency book over the whole run."""
        out = self.status()
        out.pop("glass_to_glass_ms")
        out.pop("age_ms")
        out["console_decoder"] = self.book.summary()
        return out


__all__ = ["ConsoleVideo", "FrameSink", "patient_clock_offset_ns"]
