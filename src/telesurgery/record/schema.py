"""JSON views and JSON Schemas of wire messages, as recorded in MCAP for Foxglove.

Every recorded message is one JSON object: the header (``session`` as 16 hex
digits, because JavaScript loses integers above 2**53; ``seq``; ``sent_ns``
[ns, sender's monotonic clock]), the message ``type``, the body's fields, and
``wire``: the exact bytes received, base64. The fields are a view for people
and plots; ``wire`` is the record, decoded again with the one codec by readers
and replay, so nothing is lost to JSON (non-finite floats, which JSON cannot
carry, show as ``null`` in the view and stay exact in ``wire``).

Video frames are the exception: they are recorded in Foxglove's
``foxglove.CompressedVideo`` schema (so Foxglove plays them) with the frame's
other fields beside Foxglove's; encoding those fields again gives the exact
wire bytes, so the frame data is not stored twice.

Poses are ``{"position": {x, y, z} [m], "orientation": {x, y, z, w}}`` and
wrenches ``{"force": {x, y, z} [N], "torque": {x, y, z} [N m]}``, the shapes
Foxglove's own schemas use; enumerations are their names.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
import typing
from collections.abc import Callable
from typing import Any

from telesurgery.transport.codec import AnyBody, Message, MessageType, VideoFrame
from telesurgery.types import Pose, Wrench

SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"
SCHEMA_PREFIX = "telesurgery."

JsonObject = dict[str, Any]
_Convert = Callable[[Any], Any]

_NUMBER: JsonObject = {"type": ["number", "null"]}
_INTEGER: JsonObject = {"type": "integer"}
_BASE64: JsonObject = {"type": "string", "contentEncoding": "base64"}


def b64(data: bytes) -> str:
    """``data`` as a base64 string (how JSON carries bytes)."""
    return base64.b64encode(data).decode("ascii")


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _xyz(v: tuple[float, ...]) -> JsonObject:
    return {"x": _finite(v[0]), "y": _finite(v[1]), "z": _finite(v[2])}


def _numbers(names: str, title: str) -> JsonObject:
    return {"type": "object", "title": title, "properties": {n: _NUMBER for n in names}}


def _pose(p: Pose) -> JsonObject:
    w, x, y, z = p.orientation
    return {"position": _xyz(p.position),
            "orientation": {"x": _finite(x), "y": _finite(y), "z": _finite(z), "w": _finite(w)}}


def _wrench(w: Wrench) -> JsonObject:
    return {"force": _xyz(w.force), "torque": _xyz(w.torque)}


def _enum_name(e: enum.Enum) -> str:
    return e.name


def _floats(t: tuple[float, ...]) -> list[float | None]:
    return [_finite(v) for v in t]


_POSE_SCHEMA: JsonObject = {"type": "object", "properties": {
    "position": _numbers("xyz", "position [m]"),
    "orientation": _numbers("xyzw", "unit quaternion")}}
_WRENCH_SCHEMA: JsonObject = {"type": "object", "properties": {
    "force": _numbers("xyz", "force [N]"), "torque": _numbers("xyz", "torque [N m]")}}
_SIMPLE: dict[Any, tuple[_Convert, JsonObject]] = {
    Pose: (_pose, _POSE_SCHEMA),
    Wrench: (_wrench, _WRENCH_SCHEMA),
    bool: (bool, {"type": "boolean"}),
    int: (int, _INTEGER),
    float: (_finite, _NUMBER),
    str: (str, {"type": "string"}),
    bytes: (b64, _BASE64),
}


def _field(hint: Any) -> tuple[_Convert, JsonObject]:
    """How one dataclass field type becomes JSON, and its schema."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_name, {"type": "string", "enum": [m.name for m in hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and args == (float, Ellipsis):
        return _floats, {"type": "array", "items": _NUMBER}
    if origin is dict:
        return dict, {"type": "object"}
    raise TypeError(f"no JSON view for field type {hint!r}; add one to record/schema.py")


@dataclasses.dataclass(frozen=True, slots=True)
class _BodyView:
    """The JSON view of one body type: its field converters and the schema's properties."""

    fields: tuple[tuple[str, _Convert], ...]
    properties: JsonObject

    def convert(self, msg: Message) -> JsonObject:
        """Header and body fields of ``msg`` as JSON values."""
        out: JsonObject = {"session": f"{msg.session:016x}", "seq": msg.seq,
                           "sent_ns": msg.sent_ns, "type": msg.body.TYPE.name}
        body = msg.body
        out.update((name, conv(getattr(body, name))) for name, conv in self.fields)
        return out


def _body_view(cls: type[AnyBody], exclude: frozenset[str] = frozenset()) -> _BodyView:
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, _Convert]] = []
    props: JsonObject = {
        "session": {"type": "string", "description": "sender's session id, 16 hex digits"},
        "seq": _INTEGER,
        "sent_ns": {"type": "integer", "description": "send time [ns], sender's clock"},
        "type": {"type": "string", "const": cls.TYPE.name},
    }
    for f in dataclasses.fields(cls):
        if f.name not in exclude:
            conv, schema = _field(hints[f.name])
            fields.append((f.name, conv))
            props[f.name] = schema
    return _BodyView(tuple(fields), props)


@dataclasses.dataclass(frozen=True, slots=True)
class Projection:
    """How messages of one type are recorded: the schema's name, the JSON Schema, the view."""

    schema_name: str
    schema: JsonObject
    to_json: Callable[[Message, bytes], JsonObject]


def _plain(cls: type[AnyBody]) -> Projection:
    view = _body_view(cls)

    def to_json(msg: Message, wire: bytes) -> JsonObject:
        out = view.convert(msg)
        out["wire"] = b64(wire)
        return out

    name = SCHEMA_PREFIX + cls.__name__
    props = {**view.properties,
             "wire": {**_BASE64, "description": "the message exactly as received"}}
    schema = {"title": name, "description": (cls.__doc__ or name).strip().splitlines()[0],
              "type": "object", "properties": props, "required": ["wire"]}
    return Projection(name, schema, to_json)


COMPRESSED_VIDEO_SCHEMA_NAME = "foxglove.CompressedVideo"
_COMPRESSED_VIDEO_PROPERTIES: JsonObject = {
    "timestamp": {"type": "object", "title": "time", "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}},
    "frame_id": {"type": "string"},
    "data": _BASE64,
    "format": {"type": "string"},
}
COMPRESSED_VIDEO_SCHEMA: JsonObject = {
    "title": COMPRESSED_VIDEO_SCHEMA_NAME,
    "description": "A single frame of a compressed video bitstream",
    "type": "object",
    "properties": _COMPRESSED_VIDEO_PROPERTIES,
}
"""Foxglove's schema for one encoded video frame (H.264: Annex B, one frame a message)."""


def compressed_video_json(timestamp_ns: int, frame_id: str, data: bytes,
                          fmt: str = "h264") -> JsonObject:
    """A ``foxglove.CompressedVideo`` object; ``timestamp_ns`` [ns] is the capture time."""
    sec, nsec = divmod(timestamp_ns, 1_000_000_000)
    return {"timestamp": {"sec": sec, "nsec": nsec}, "frame_id": frame_id,
            "data": b64(data), "format": fmt}


def _video() -> Projection:
    view = _body_view(VideoFrame, exclude=frozenset({"data"}))

    def to_json(msg: Message, _wire: bytes) -> JsonObject:
        body = msg.body
        if not isinstance(body, VideoFrame):
            raise TypeError(f"a {body.TYPE.name} message is not a video frame")
        out = compressed_video_json(body.capture_ns, body.camera, body.data)
        out.update(view.convert(msg))
        return out

    schema = {**COMPRESSED_VIDEO_SCHEMA,
              "properties": {**_COMPRESSED_VIDEO_PROPERTIES, **view.properties}}
    return Projection(COMPRESSED_VIDEO_SCHEMA_NAME, schema, to_json)


def video_message(obj: JsonObject) -> Message:
    """The exact ``VideoFrame`` message behind a recorded video object.

    Raises ``KeyError``, ``ValueError`` or ``TypeError`` for an object that is not one.
    """
    frame = VideoFrame(str(obj["camera"]), int(obj["width"]), int(obj["height"]),
                       bool(obj["keyframe"]), int(obj["frame_index"]), int(obj["capture_ns"]),
                       int(obj["applied_seq"]), int(obj["applied_sample_ns"]),
                       base64.b64decode(obj["data"], validate=True))
    return Message(int(obj["session"], 16), int(obj["seq"]), int(obj["sent_ns"]), frame)


def _projections() -> dict[MessageType, Projection]:
    out = {cls.TYPE: _plain(cls) for cls in typing.get_args(AnyBody) if cls is not VideoFrame}
    out[MessageType.VIDEO_FRAME] = _video()
    return out


PROJECTIONS: dict[MessageType, Projection] = _projections()
"""How each message type the codec knows is recorded."""

UNDECODABLE_SCHEMA_NAME = SCHEMA_PREFIX + "Undecodable"
UNDECODABLE_SCHEMA: JsonObject = {
    "title": UNDECODABLE_SCHEMA_NAME,
    "description": "bytes received on a session key that are not a valid message",
    "type": "object",
    "properties": {"key": {"type": "string"}, "error": {"type": "string"}, "wire": _BASE64},
    "required": ["key", "error", "wire"],
}


def undecodable_json(key: str, error: str, wire: bytes) -> JsonObject:
    """The recorded JSON object of bytes on ``key`` that did not decode."""
    return {"key": key, "error": error, "wire": b64(wire)}


RECORDER_STATS_SCHEMA_NAME = SCHEMA_PREFIX + "RecorderStats"
RECORDER_STATS_SCHEMA: JsonObject = {
    "title": RECORDER_STATS_SCHEMA_NAME,
    "description": "the recorder's own counters, written every second: was anything lost?",
    "type": "object",
    "properties": {n: _INTEGER for n in ("received", "written", "dropped", "undecodable",
                                         "queue_peak")},
}


__all__ = [
    "COMPRESSED_VIDEO_SCHEMA",
    "COMPRESSED_VIDEO_SCHEMA_NAME",
    "MESSAGE_ENCODING",
    "PROJECTIONS",
    "RECORDER_STATS_SCHEMA",
    "RECORDER_STATS_SCHEMA_NAME",
    "SCHEMA_ENCODING",
    "UNDECODABLE_SCHEMA",
    "UNDECODABLE_SCHEMA_NAME",
    "Projection",
    "b64",
    "compressed_video_json",
    "undecodable_json",
    "video_message",
]
