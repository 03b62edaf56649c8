"""Endoscope video: H.264 encoding and decoding, VIDEO_FRAME messages, latency stamps."""

from telesurgery.config import VideoConfig
from telesurgery.video.decoder import DecodedFrame, H264Decoder
from telesurgery.video.encoder import (
    DEFAULT_BITRATE_BPS,
    EncodedFrame,
    H264Encoder,
    default_bitrate,
)
from telesurgery.video.pipeline import (
    KEYFRAME_REQUEST_SUFFIX,
    ReceivedFrame,
    VideoReceiver,
    VideoSender,
    frame_body,
    keyframe_request,
    requested_camera,
)

__all__ = [
    "DEFAULT_BITRATE_BPS",
    "KEYFRAME_REQUEST_SUFFIX",
    "DecodedFrame",
    "EncodedFrame",
    "H264Decoder",
    "H264Encoder",
    "ReceivedFrame",
    "VideoConfig",
    "VideoReceiver",
    "VideoSender",
    "default_bitrate",
    "frame_body",
    "keyframe_request",
    "requested_camera",
]
