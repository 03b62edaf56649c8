"""JSON views and JSON Schemas of wire messages, as recorded in MCAP for Foxglove.

Every recorded message is one JSON object: the header (``session`` as 16 hex
digits, because JavaScript loses integers above 2**53; ``seq``; ``sent_ns``
[ns, sender's monotonic clock]), the message ``type`` and the body's fields.
The view is two-way: ``message_of`` rebuilds the message from it, and the
writer checks that encoding the rebuilt message gives back the exact bytes
received. Where it does not (non-finite numbers, which JSON cannot carry and
show as ``null``; bytes a foreign sender encoded differently) the object also
holds ``wire``: those bytes, base64. So a recording always reproduces the
wire exactly, at half the size of storing every message twice.

Video frames are recorded in Foxglove's ``foxglove.CompressedVideo`` schema
(so Foxglove plays them), with the frame's other fields beside Foxglove's.

Poses are ``{"position": {x, y, z} [m], "orientation": {x, y, z, w}}`` and
wrenches ``{"force": {x, y, z} [N], "torque": {x, y, z} [N m]}``, the shapes
Foxglove's own schemas use; enumerations are their names.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from telesurgery.geometry import Vec3
from telesurgery.messages import AnyBody, Message, MessageType, VideoFrame
from telesurgery.transport.codec import decode, encode
from telesurgery.types import Pose, Wrench

SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"
SCHEMA_PREFIX = "telesurgery."

JsonObject = dict[str, Any]
_Convert = Callable[[Any], Any]

_NUMBER: JsonObject = {"type": ["number", "null"]}
_INTEGER: JsonObject = {"type": "integer"}
_BASE64: JsonObject = {"type": "string", "contentEncoding": "base64"}
_WIRE: JsonObject = {**_BASE64, "description": "the exact bytes received, present only when "
                     "the other fields cannot reproduce them"}


def b64(data: bytes) -> str:
    """``data`` as a base64 string (how JSON carries bytes)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    """The bytes of a base64 string; ``ValueError`` (or ``TypeError``) if it is not one."""
    return base64.b64decode(text, validate=True)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _number(v: Any) -> float:
    # None (a non-finite number in the view) and booleans are refused: no silent substitute.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"{v!r} is not a number")
    return float(v)


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{v!r} is not an integer")
    return v


def _strict(kind: type) -> _Convert:
    def check(v: Any) -> Any:
        if not isinstance(v, kind):
            raise TypeError(f"{v!r} is not a {kind.__name__}")
        return v
    return check


def _xyz(v: tuple[float, ...]) -> JsonObject:
    return {"x": _finite(v[0]), "y": _finite(v[1]), "z": _finite(v[2])}


def _vec3(o: Any) -> tuple[float, float, float]:
    return _number(o["x"]), _number(o["y"]), _number(o["z"])


def _pose(p: Pose) -> JsonObject:
    w, x, y, z = p.orientation
    return {"position": _xyz(p.position),
            "orientation": {"x": _finite(x), "y": _finite(y), "z": _finite(z), "w": _finite(w)}}


def _pose_of(o: Any) -> Pose:
    q = o["orientation"]
    return Pose(_vec3(o["position"]),
                (_number(q["w"]), _number(q["x"]), _number(q["y"]), _number(q["z"])))


def _wrench(w: Wrench) -> JsonObject:
    return {"force": _xyz(w.force), "torque": _xyz(w.torque)}


def _wrench_of(o: Any) -> Wrench:
    return Wrench(_vec3(o["force"]), _vec3(o["torque"]))


def _floats(t: tuple[float, ...]) -> list[float | None]:
    return [_finite(v) for v in t]


def _floats_of(v: Any) -> tuple[float, ...]:
    return tuple(_number(x) for x in _strict(list)(v))


def _numbers(names: str, title: str) -> JsonObject:
    return {"type": "object", "title": title, "properties": {n: _NUMBER for n in names}}


_POSE_SCHEMA: JsonObject = {"type": "object", "properties": {
    "position": _numbers("xyz", "position [m]"),
    "orientation": _numbers("xyzw", "unit quaternion")}}
_WRENCH_SCHEMA: JsonObject = {"type": "object", "properties": {
    "force": _numbers("xyz", "force [N]"), "torque": _numbers("xyz", "torque [N m]")}}


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    """One field type: to JSON, back from JSON, and its schema."""

    to_json: _Convert
    of_json: _Convert
    schema: JsonObject


_SIMPLE: dict[Any, _Field] = {
    Pose: _Field(_pose, _pose_of, _POSE_SCHEMA),
    Wrench: _Field(_wrench, _wrench_of, _WRENCH_SCHEMA),
    Vec3: _Field(_xyz, _vec3, _numbers("xyz", "vector")),
    bool: _Field(bool, _strict(bool), {"type": "boolean"}),
    int: _Field(int, _integer, _INTEGER),
    float: _Field(_finite, _number, _NUMBER),
    str: _Field(str, _strict(str), {"type": "string"}),
    bytes: _Field(b64, unb64, _BASE64),
}


def _optional(inner: _Field) -> _Field:
    """``inner`` or null (a field such as ``SafetyEvent.arm`` that may be None)."""
    schema = dict(inner.schema)
    schema["type"] = [schema["type"], "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return _Field(lambda v: None if v is None else inner.to_json(v),
                  lambda v: None if v is None else inner.of_json(v), schema)


def _field(hint: Any) -> _Field:
    """How one dataclass field type maps to JSON and back."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        names = hint.__members__
        return _Field(lambda e: e.name, lambda v: names[v],
                      {"type": "string", "enum": list(names)})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return _optional(_field(next(a for a in args if a is not type(None))))
    if origin is tuple and args == (float, Ellipsis):
        return _Field(_floats, _floats_of, {"type": "array", "items": _NUMBER})
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _bodies(typing.get_args(args[0]) or (args[0],))
    if origin is dict:
        return _Field(dict, _strict(dict), {"type": "object"})
    raise TypeError(f"no JSON view for field type {hint!r}; add one to record/schema.py")


def _bodies(classes: tuple[type[AnyBody], ...]) -> _Field:
    """A list of bodies of ``classes`` (a bundle's commands), each with its ``type``."""
    views = {cls.TYPE.name: _body_view(cls) for cls in classes}

    def to_json(items: tuple[AnyBody, ...]) -> list[JsonObject]:
        return [views[b.TYPE.name].body_json(b) for b in items]

    def of_json(v: Any) -> tuple[AnyBody, ...]:
        return tuple(views[_strict(str)(o["type"])].body_of(o) for o in _strict(list)(v))

    items = [{"type": "object", "properties": {k: p for k, p in view.properties.items()
                                               if k not in _HEADER_PROPERTIES}}
             for view in views.values()]
    return _Field(to_json, of_json, {"type": "array", "items": {"oneOf": items}})


@dataclasses.dataclass(frozen=True, slots=True)
class _BodyView:
    """The two-way JSON view of one body type."""

    cls: type[AnyBody]
    fields: tuple[tuple[str, _Field], ...]
    properties: JsonObject

    def to_json(self, msg: Message) -> JsonObject:
        """Header and body fields of ``msg`` as JSON values."""
        out: JsonObject = {"session": f"{msg.session:016x}", "seq": msg.seq,
                           "sent_ns": msg.sent_ns}
        out.update(self.body_json(msg.body))
        return out

    def body_json(self, body: AnyBody) -> JsonObject:
        """The ``type`` and fields of ``body`` as JSON values."""
        out: JsonObject = {"type": body.TYPE.name}
        out.update((name, f.to_json(getattr(body, name))) for name, f in self.fields)
        return out

    def of_json(self, obj: JsonObject) -> Message:
        """The message behind ``obj``; ``KeyError``, ``TypeError`` or ``ValueError`` if none."""
        return Message(int(_strict(str)(obj["session"]), 16), _integer(obj["seq"]),
                       _integer(obj["sent_ns"]), self.body_of(obj))

    def body_of(self, obj: JsonObject) -> AnyBody:
        """The body whose fields ``obj`` holds."""
        return self.cls(**{name: f.of_json(obj[name]) for name, f in self.fields})


_HEADER_PROPERTIES = ("session", "seq", "sent_ns")


def _body_view(cls: type[AnyBody]) -> _BodyView:
    hints = typing.get_type_hints(cls)
    props: JsonObject = {
        "session": {"type": "string", "description": "sender's session id, 16 hex digits"},
        "seq": _INTEGER,
        "sent_ns": {"type": "integer", "description": "send time [ns], sender's clock"},
        "type": {"type": "string", "const": cls.TYPE.name},
    }
    fields = tuple((f.name, _field(hints[f.name])) for f in dataclasses.fields(cls))
    props.update((name, f.schema) for name, f in fields)
    return _BodyView(cls, fields, props)


@dataclasses.dataclass(frozen=True, slots=True)
class Projection:
    """How messages of one type are recorded: the schema's name, the JSON Schema, the view."""

    schema_name: str
    schema: JsonObject
    view: _BodyView
    extra: Callable[[Message], JsonObject]
    """Fields added beside the view's (Foxglove's, for video)."""

    def to_json(self, msg: Message, wire: bytes) -> JsonObject:
        """The recorded object of ``msg``, received as ``wire`` (kept when not reproducible)."""
        out = self.extra(msg)
        out.update(self.view.to_json(msg))
        try:
            exact = encode(self.view.of_json(out)) == wire
        except (KeyError, TypeError, ValueError):
            exact = False
        if not exact:
            out["wire"] = b64(wire)
        return out


def _nothing(_msg: Message) -> JsonObject:
    return {}


def _plain(cls: type[AnyBody]) -> Projection:
    view = _body_view(cls)
    name = SCHEMA_PREFIX + cls.__name__
    schema = {"title": name, "description": (cls.__doc__ or name).strip().splitlines()[0],
              "type": "object", "properties": {**view.properties, "wire": _WIRE}}
    return Projection(name, schema, view, _nothing)


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


def _video_extra(msg: Message) -> JsonObject:
    body = msg.body
    if not isinstance(body, VideoFrame):
        raise TypeError(f"a {body.TYPE.name} message is not a video frame")
    sec, nsec = divmod(body.capture_ns, 1_000_000_000)
    # ``data`` comes from the frame's own view: the same base64 bytes Foxglove reads.
    return {"timestamp": {"sec": sec, "nsec": nsec}, "frame_id": body.camera, "format": "h264"}


def _video() -> Projection:
    view = _body_view(VideoFrame)
    schema = {**COMPRESSED_VIDEO_SCHEMA, "properties": {
        **_COMPRESSED_VIDEO_PROPERTIES, **view.properties, "wire": _WIRE}}
    return Projection(COMPRESSED_VIDEO_SCHEMA_NAME, schema, view, _video_extra)


def _projections() -> dict[MessageType, Projection]:
    out = {cls.TYPE: _plain(cls) for cls in typing.get_args(AnyBody) if cls is not VideoFrame}
    out[MessageType.VIDEO_FRAME] = _video()
    return out


PROJECTIONS: dict[MessageType, Projection] = _projections()
"""How each message type the codec knows is recorded."""
_BY_TYPE_NAME = {t.name: p for t, p in PROJECTIONS.items()}
MESSAGE_SCHEMAS = frozenset(p.schema_name for p in PROJECTIONS.values())
"""Names of the schemas whose objects are wire messages."""


def message_of(obj: JsonObject) -> Message:
    """The exact message a recorded object holds (from ``wire`` where it was kept).

    Raises ``CodecError``, ``KeyError``, ``TypeError`` or ``ValueError`` (which
    ``binascii.Error`` is) for an object that holds no valid message.
    """
    if "wire" in obj:
        return decode(unb64(obj["wire"]))
    return _BY_TYPE_NAME[_strict(str)(obj["type"])].view.of_json(obj)


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
    "MESSAGE_SCHEMAS",
    "PROJECTIONS",
    "RECORDER_STATS_SCHEMA",
    "RECORDER_STATS_SCHEMA_NAME",
    "SCHEMA_ENCODING",
    "UNDECODABLE_SCHEMA",
    "UNDECODABLE_SCHEMA_NAME",
    "Projection",
    "b64",
    "compressed_video_json",
    "message_of",
    "unb64",
    "undecodable_json",
]
