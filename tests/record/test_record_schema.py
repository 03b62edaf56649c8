"""JSON views of wire messages: they match their JSON Schemas and keep the exact wire bytes."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import struct
from typing import Any

import pytest

from telesurgery.messages import Message, MessageType, ServoCP, Status, VideoFrame
from telesurgery.record.schema import (
    COMPRESSED_VIDEO_SCHEMA_NAME,
    PROJECTIONS,
    message_of,
)
from telesurgery.transport.codec import HEADER_SIZE, encode
from telesurgery.types import Pose

_PY: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
    "boolean": bool, "null": type(None)}


def violations(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What in ``value`` breaks ``schema`` (the JSON Schema subset the recorder uses),
    including properties the schema does not declare."""
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    if types and not any(isinstance(value, _PY[t]) and not (isinstance(value, bool)
                                                           and t in ("integer", "number"))
                         for t in types):
        return [f"{where}: {value!r} is not {types}"]
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} != {schema['const']!r}")
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        out += [f"{where}.{k}: not declared in the schema" for k in value if k not in props]
        out += [f"{where}.{k}: required but missing" for k in schema.get("required", ())
                if k not in value]
        for k, v in value.items():
            if k in props:
                out += violations(v, props[k], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += violations(v, schema["items"], f"{where}[{i}]")
    return out


def test_every_message_type_is_recorded_with_a_schema_naming_each_field() -> None:
    assert set(PROJECTIONS) == set(MessageType)
    for mtype, proj in PROJECTIONS.items():
        assert proj.schema["title"] == proj.schema_name
        props = proj.schema["properties"]
        assert {"session", "seq", "sent_ns", "type"} <= set(props), mtype
    video = PROJECTIONS[MessageType.VIDEO_FRAME]
    assert video.schema_name == COMPRESSED_VIDEO_SCHEMA_NAME
    assert {"timestamp", "frame_id", "data", "format"} <= set(video.schema["properties"])


def test_each_view_matches_its_schema_and_keeps_the_message(
        sample_messages: list[tuple[str, Message]]) -> None:
    for _key, msg in sample_messages:
        wire = encode(msg)
        proj = PROJECTIONS[msg.body.TYPE]
        obj = proj.to_json(msg, wire)
        assert violations(obj, proj.schema) == [], msg.body.TYPE
        # Every body field is visible (video data under Foxglove's name).
        fields = {f.name for f in dataclasses.fields(msg.body)}
        assert fields <= set(obj), msg.body.TYPE
        assert obj["session"] == f"{msg.session:016x}"
        assert (obj["seq"], obj["sent_ns"]) == (msg.seq, msg.sent_ns)
        # The fields alone reproduce the exact bytes, so they are not stored twice.
        assert "wire" not in obj
        rebuilt = message_of(json.loads(json.dumps(obj)))
        assert rebuilt == msg
        assert encode(rebuilt) == wire


def test_pose_view_uses_foxglove_shapes(sample_messages: list[tuple[str, Message]]) -> None:
    _key, msg = sample_messages[0]
    assert isinstance(msg.body, ServoCP)
    obj = PROJECTIONS[MessageType.SERVO_CP].to_json(msg, encode(msg))
    w, x, y, z = msg.body.pose.orientation
    assert obj["pose"]["orientation"] == {"x": x, "y": y, "z": z, "w": w}
    assert obj["pose"]["position"]["z"] == msg.body.pose.position[2]
    assert obj["clutch"] is True


def test_video_view_is_foxglove_compressed_video(
        sample_messages: list[tuple[str, Message]]) -> None:
    _key, msg = sample_messages[-1]
    assert isinstance(msg.body, VideoFrame)
    obj = PROJECTIONS[MessageType.VIDEO_FRAME].to_json(msg, encode(msg))
    sec, nsec = divmod(msg.body.capture_ns, 1_000_000_000)
    assert obj["timestamp"] == {"sec": sec, "nsec": nsec}
    assert obj["format"] == "h264"
    assert obj["frame_id"] == "ecm"
    assert base64.b64decode(obj["data"]) == msg.body.data


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_show_as_null_and_stay_exact_in_wire(bad: float) -> None:
    msg = Message(1, 1, 1, ServoCP("psm1", Pose((bad, 0.0, 0.0)), 0))
    wire = encode(msg)
    obj = PROJECTIONS[MessageType.SERVO_CP].to_json(msg, wire)
    assert obj["pose"]["position"]["x"] is None
    assert violations(obj, PROJECTIONS[MessageType.SERVO_CP].schema) == []
    assert base64.b64decode(obj["wire"]) == wire
    back = message_of(obj)
    assert isinstance(back.body, ServoCP)
    assert encode(back) == wire


def test_bytes_the_codec_would_encode_otherwise_are_kept_exactly() -> None:
    # A foreign sender's STATUS with a space in its JSON: valid, but not our encoding.
    text = b'{"a": 1}'
    wire = encode(Message(1, 1, 1, Status({})))[:HEADER_SIZE] + struct.pack("<H", len(text)) \
        + text
    msg = Message(1, 1, 1, Status({"a": 1}))
    obj = PROJECTIONS[MessageType.STATUS].to_json(msg, wire)
    assert obj["data"] == {"a": 1}
    assert base64.b64decode(obj["wire"]) == wire
    assert message_of(obj) == msg
