"""Camera frames to VIDEO_FRAME messages and back, with the stamps latency is measured from.

Patient side: ``VideoSender`` is a camera ``on_frame`` callback that encodes
each frame and hands the ``VideoFrame`` body to a publish function (e.g. a
transport publisher's ``put``). Console side: ``VideoReceiver`` takes each
received message and returns the decoded frame with every stage's time, or
None while the stream is broken; its decoder asks for an IDR through
``on_keyframe_needed``, which the console forwards as a ``keyframe_request``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telesurgery.camera.camera import CapturedFrame
from telesurgery.camera.renderer import RGBImage
from telesurgery.clock import now_ns
from telesurgery.messages import Message, Status, VideoFrame
from telesurgery.video.decoder import H264Decoder
from telesurgery.video.encoder import EncodedFrame, H264Encoder

KEYFRAME_REQUEST_SUFFIX = "keyframe"
"""Appended to the video key (``.../ecm/video/keyframe``) for keyframe requests."""


def frame_body(encoded: EncodedFrame, captured: CapturedFrame, camera: str) -> VideoFrame:
    """The VIDEO_FRAME body of ``encoded``, stamped from the ``captured`` frame it came from."""
    return VideoFrame(camera, encoded.width, encoded.height, encoded.keyframe, encoded.index,
                      captured.capture_ns, captured.applied_seq, captured.applied_sample_ns,
                      encoded.data)


def keyframe_request(camera: str) -> Status:
    """The body a viewer sends to ask ``camera`` for an IDR."""
    return Status({"keyframe_request": camera})


def requested_camera(body: object) -> str | None:
    """The camera a keyframe request asks, or None when ``body`` is not one."""
    if isinstance(body, Status):
        camera = body.data.get("keyframe_request")
        return camera if isinstance(camera, str) else None
    return None


class VideoSender:
    """Encodes captured frames and publishes their VIDEO_FRAME bodies; use as ``on_frame``."""

    def __init__(self, encoder: H264Encoder, camera: str,
                 publish: Callable[[VideoFrame], Any]) -> None:
        self.encoder = encoder
        self.camera = camera
        self._publish = publish
        self.last: EncodedFrame | None = None

    def on_keyframe_request(self, body: object) -> None:
        """Handle a received message body: an IDR request for this camera forces one."""
        if requested_camera(body) == self.camera:
            self.encoder.request_keyframe()

    def __call__(self, captured: CapturedFrame) -> None:
        encoded = self.encoder.encode(captured.image)
        self._publish(frame_body(encoded, captured, self.camera))
        self.last = encoded


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """A decoded frame with its stamps [ns]: ``capture_ns`` (render done, sender clock),
    ``sent_ns`` (encoded and sent, sender clock), ``received_ns`` and ``decoded_ns``
    (receiver clock); ``applied_seq``/``applied_sample_ns`` as in ``VideoFrame``."""

    index: int
    image: RGBImage
    keyframe: bool
    capture_ns: int
    sent_ns: int
    received_ns: int
    decoded_ns: int
    applied_seq: int
    applied_sample_ns: int
    data_bytes: int


class VideoReceiver:
    """Decodes VIDEO_FRAME messages of one camera; frames of other cameras are ignored."""

    def __init__(self, decoder: H264Decoder, camera: str) -> None:
        self.decoder = decoder
        self.camera = camera

    def receive(self, msg: Message, received_ns: int) -> ReceivedFrame | None:
        """Decode ``msg`` (received at ``received_ns`` [ns]); None if not shown (counted)."""
        body = msg.body
        if not isinstance(body, VideoFrame) or body.camera != self.camera:
            return None
        decoded = self.decoder.decode(body.data, body.frame_index)
        if decoded is None:
            return None
        return ReceivedFrame(body.frame_index, decoded.image, decoded.keyframe, body.capture_ns,
                             msg.sent_ns, received_ns, now_ns(), body.applied_seq,
                             body.applied_sample_ns, len(body.data))


__all__ = [
    "KEYFRAME_REQUEST_SUFFIX",
    "ReceivedFrame",
    "VideoReceiver",
    "VideoSender",
    "frame_body",
    "keyframe_request",
    "requested_camera",
]
