"""The wire format: one compact, versioned binary codec for every message.

Layout (little-endian), version 1::

    offset size field
    0      2    magic b"TS"
    2      1    version (1)
    3      1    message type (see ``MessageType``)
    4      1    flags: bit 0 (``FLAG_TAG``) = an authentication tag follows the body;
                other bits must be 0 in version 1
    5      1    reserved (0)
    6      8    session: the sender's session instance id (u64)
    14     8    sequence number (u64), per sender and stream
    22     8    sender's monotonic clock at send [ns] (i64)
    30     ...  body, laid out by the message type
    end-16 16   with ``FLAG_TAG``: the tag over everything before it (``security.tags``)

Strings are a u8 length then UTF-8 bytes. ``decode`` either returns a valid
``Message`` or raises ``CodecError`` with a message that says what is wrong and a
``reason`` from the fixed set ``CodecReason``; it never raises anything else, whatever
the bytes (a STATUS body nested too deep included).
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from telesurgery.errors import CodecError, CodecReason
from telesurgery.messages import (
    MAX_BUNDLED,
    AnyBody,
    Command,
    CommandBundle,
    ControlAction,
    ControlRequest,
    JawServoJP,
    KeyAccept,
    KeyOffer,
    MeasuredCF,
    MeasuredCP,
    MeasuredJS,
    Message,
    MessageType,
    SafetyCause,
    SafetyEvent,
    ServoCP,
    StateBundle,
    Status,
    SyncReply,
    SyncRequest,
    VideoFrame,
)
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState, Wrench

MAGIC = b"TS"
VERSION = 2
_HEADER = struct.Struct("<2sBBBBQQq")
HEADER_SIZE = _HEADER.size
FLAGS_OFFSET = 4
"""Where the flags byte sits in the header."""
FLAG_TAG = 0x01
TAG_SIZE = 16
"""Bytes of the authentication tag a message with ``FLAG_TAG`` ends with."""
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
MAX_STATUS_BYTES = 16_384
MAX_STATUS_DEPTH = 32
"""The deepest a STATUS body may nest (objects and lists); a node's nests a few levels."""
_E = TypeVar("_E", bound=enum.IntEnum)


class _Reader:
    """Bounds-checked cursor over a body; every failure is a ``CodecError``."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, buf: bytes, pos: int, what: str) -> None:
        self._buf = buf
        self._pos = pos
        self._what = what

    def take(self, s: struct.Struct) -> tuple[Any, ...]:
        end = self._pos + s.size
        if end > len(self._buf):
            raise CodecError(
                f"{self._what} body truncated: needs {end} bytes, got {len(self._buf)}; "
                "the sender may run another protocol version", CodecReason.TRUNCATED
            )
        out = s.unpack_from(self._buf, self._pos)
        self._pos = end
        return out

    def text(self, field: str) -> str:
        (n,) = self.take(_U8)
        end = self._pos + n
        if end > len(self._buf):
            raise CodecError(f"{self._what}.{field} truncated: {n} bytes announced, "
                             f"{len(self._buf) - self._pos} present", CodecReason.TRUNCATED)
        raw = self._buf[self._pos:end]
        self._pos = end
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"{self._what}.{field} is not valid UTF-8",
                             CodecReason.BAD_FIELD) from exc

    def finish(self) -> None:
        extra = len(self._buf) - self._pos
        if extra:
            raise CodecError(f"{extra} unexpected bytes after the {self._what} body",
                             CodecReason.TRAILING)


def _text(value: str, field: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8
        raise CodecError(f"{field} is not valid Unicode text ({exc.reason}); send text that "
                         "UTF-8 can encode", CodecReason.BAD_FIELD) from exc
    if len(raw) > 255:
        raise CodecError(f"{field} is {len(raw)} bytes long; at most 255 fit",
                         CodecReason.TOO_LARGE)
    return _U8.pack(len(raw)) + raw


def _arm(value: str, what: str) -> str:
    if not value or any(c in value for c in "/*$?# ") or not value.isascii():
        raise CodecError(f"{what}.arm {value!r} is not a valid arm name (ASCII, no '/', '*' "
                         "or spaces)", CodecReason.BAD_FIELD)
    return value


def _flag(value: int, what: str) -> bool:
    if value not in (0, 1):
        raise CodecError(f"{what}: boolean byte is {value}, expected 0 or 1",
                         CodecReason.BAD_FIELD)
    return value == 1


def _enum(cls: type[_E], value: int, what: str,
          reason: CodecReason = CodecReason.BAD_FIELD) -> _E:
    try:
        return cls(value)
    except ValueError as exc:
        valid = ", ".join(f"{m.value}={m.name}" for m in cls)
        raise CodecError(f"{what} {value} is unknown; valid: {valid}", reason) from exc


_U8 = struct.Struct("<B")
_POSE = struct.Struct("<7d")
_SERVO_CP = struct.Struct("<Bq")
_JAW = struct.Struct("<qd")
_MEASURED_CP_TAIL = struct.Struct("<QqBB")
_MEASURED_CP_FORCE = struct.Struct("<4d")
"""MEASURED_CP's force at the tip [N] and grip [N], after its tail."""
_VEC6_GRIP = struct.Struct("<7d")
_SAFETY = struct.Struct("<6B")


def _pose(r: _Reader) -> Pose:
    v = r.take(_POSE)
    return Pose((v[0], v[1], v[2]), (v[3], v[4], v[5], v[6]))


def _pack_pose(p: Pose) -> bytes:
    return _POSE.pack(*p.position, *p.orientation)


def _pack_servo_cp(b: ServoCP) -> bytes:
    return (_text(b.arm, "arm") + _SERVO_CP.pack(int(b.clutch), b.sample_ns)
            + _pack_pose(b.pose))


def _unpack_servo_cp(r: _Reader) -> ServoCP:
    arm = _arm(r.text("arm"), "SERVO_CP")
    clutch, sample_ns = r.take(_SERVO_CP)
    return ServoCP(arm, _pose(r), sample_ns, _flag(clutch, "SERVO_CP.clutch"))



def _pack_jaw_servo_jp(b: JawServoJP) -> bytes:
    return _text(b.arm, "arm") + _JAW.pack(b.sample_ns, b.angle)


def _unpack_jaw_servo_jp(r: _Reader) -> JawServoJP:
    arm = _arm(r.text("arm"), "JAW_SERVO_JP")
    sample_ns, angle = r.take(_JAW)
    return JawServoJP(arm, angle, sample_ns)



def _pack_measured_cp(b: MeasuredCP) -> bytes:
    return (_text(b.arm, "arm") + _pack_pose(b.measured) + _pack_pose(b.setpoint)
            + struct.pack("<d", b.jaw)
            + _MEASURED_CP_TAIL.pack(b.applied_seq, b.applied_sample_ns,
                                     int(b.operating_state), int(b.mode))
            + _MEASURED_CP_FORCE.pack(*b.force, b.grip))


def _unpack_measured_cp(r: _Reader) -> MeasuredCP:
    arm = _arm(r.text("arm"), "MEASURED_CP")
    measured, setpoint = _pose(r), _pose(r)
    (jaw,) = r.take(_F64)
    seq, sample_ns, op, mode = r.take(_MEASURED_CP_TAIL)
    fx, fy, fz, grip = r.take(_MEASURED_CP_FORCE)
    return MeasuredCP(arm, measured, setpoint, jaw, seq, sample_ns,
                      _enum(OperatingState, op, "MEASURED_CP.operating_state"),
                      _enum(ArmMode, mode, "MEASURED_CP.mode"), (fx, fy, fz), grip)



_F64 = struct.Struct("<d")


def _pack_measured_js(b: MeasuredJS) -> bytes:
    n = len(b.position)
    if len(b.velocity) != n or n > 32:
        raise CodecError(f"MEASURED_JS needs as many velocities as positions (<= 32), "
                         f"got {n} and {len(b.velocity)}", CodecReason.BAD_FIELD)
    return (_text(b.arm, "arm") + _U8.pack(n)
            + struct.pack(f"<{2 * n}d", *b.position, *b.velocity))


def _unpack_measured_js(r: _Reader) -> MeasuredJS:
    arm = _arm(r.text("arm"), "MEASURED_JS")
    (n,) = r.take(_U8)
    if n > 32:
        raise CodecError(f"MEASURED_JS announces {n} joints; at most 32 are allowed",
                         CodecReason.TOO_LARGE)
    v = r.take(struct.Struct(f"<{2 * n}d"))
    return MeasuredJS(arm, tuple(v[:n]), tuple(v[n:]))



def _pack_measured_cf(b: MeasuredCF) -> bytes:
    return _text(b.arm, "arm") + _VEC6_GRIP.pack(*b.wrench.force, *b.wrench.torque, b.grip)


def _unpack_measured_cf(r: _Reader) -> MeasuredCF:
    arm = _arm(r.text("arm"), "MEASURED_CF")
    v = r.take(_VEC6_GRIP)
    return MeasuredCF(arm, Wrench((v[0], v[1], v[2]), (v[3], v[4], v[5])), v[6])



# SAFETY_EVENT body: six u8 (state, previous: SafetyState; operating_state; cause:
# SafetyCause; mode_before, mode_after: ArmMode), then the arm (a string, empty for a
# transition of the supervisor as a whole) and the reason in words (a string).
_NO_MODE = 0xFF
"""SAFETY_EVENT's mode bytes when no arm changed mode."""


def _pack_safety_event(b: SafetyEvent) -> bytes:
    # The dataclass guarantees an arm comes with both its modes, or none of the three.
    before = _NO_MODE if b.mode_before is None else int(b.mode_before)
    after = _NO_MODE if b.mode_after is None else int(b.mode_after)
    return (_SAFETY.pack(int(b.state), int(b.previous), int(b.operating_state),
                         int(b.cause), before, after)
            + _text(b.arm or "", "arm") + _text(b.reason, "reason"))


def _unpack_safety_event(r: _Reader) -> SafetyEvent:
    state, previous, op, cause, before, after = r.take(_SAFETY)
    arm = r.text("arm")
    if not arm:
        if (before, after) != (_NO_MODE, _NO_MODE):
            raise CodecError(f"SAFETY_EVENT names no arm but modes {before} and {after}; "
                             f"a transition of no arm has modes {_NO_MODE}",
                             CodecReason.BAD_FIELD)
        change: tuple[str | None, ArmMode | None, ArmMode | None] = (None, None, None)
    else:
        change = (_arm(arm, "SAFETY_EVENT"),
                  _enum(ArmMode, before, "SAFETY_EVENT.mode_before"),
                  _enum(ArmMode, after, "SAFETY_EVENT.mode_after"))
    return SafetyEvent(_enum(SafetyState, state, "SAFETY_EVENT.state"),
                       _enum(SafetyState, previous, "SAFETY_EVENT.previous"),
                       _enum(OperatingState, op, "SAFETY_EVENT.operating_state"),
                       _enum(SafetyCause, cause, "SAFETY_EVENT.cause"),
                       r.text("reason"), *change)



def _pack_status(b: Status) -> bytes:
    try:
        raw = json.dumps(b.data, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, a set, a cycle, too deep
        raise CodecError(f"STATUS cannot be sent as JSON ({exc}); report finite numbers "
                         "(None for one not measured) in plain objects and lists",
                         CodecReason.BAD_BODY) from exc
    if len(raw) > MAX_STATUS_BYTES:
        raise CodecError(f"STATUS is {len(raw)} bytes; at most {MAX_STATUS_BYTES} fit",
                         CodecReason.TOO_LARGE)
    return struct.pack("<H", len(raw)) + raw


def _unpack_status(r: _Reader) -> Status:
    (n,) = r.take(struct.Struct("<H"))
    if n > MAX_STATUS_BYTES:
        raise CodecError(f"STATUS announces {n} bytes; at most {MAX_STATUS_BYTES} are "
                         "allowed", CodecReason.TOO_LARGE)
    raw = r.take(struct.Struct(f"<{n}s"))[0]
    data = untrusted_json(raw, "STATUS body", MAX_STATUS_DEPTH)
    if not isinstance(data, dict):
        raise CodecError(f"STATUS body must be a JSON object, got {type(data).__name__}",
                         CodecReason.BAD_BODY)
    return Status(data)



def untrusted_json(raw: bytes | str, what: str, max_depth: int) -> Any:
    """``raw`` parsed as JSON nested at most ``max_depth`` deep (objects and lists).

    Raises ``CodecError`` (``BAD_BODY``) for anything else: invalid JSON or UTF-8, a
    number too long to convert, nesting so deep that the parser gives up
    (``RecursionError``) or deeper than ``max_depth`` (which later ``repr`` or
    ``json.dumps`` calls, deeper in a stack, could not handle either).
    """
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise CodecError(f"{what} is nested too deep to parse; at most {max_depth} levels",
                         CodecReason.BAD_BODY) from exc
    except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        raise CodecError(f"{what} is not valid JSON: {exc}", CodecReason.BAD_BODY) from exc
    if _nesting(data, max_depth) > max_depth:
        raise CodecError(f"{what} is nested more than {max_depth} levels deep",
                         CodecReason.BAD_BODY)
    return data


def _nesting(value: Any, limit: int) -> int:
    """How deep ``value`` nests, counted without recursion up to one past ``limit``."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        todo.extend((child, depth + 1) for child in children)
    return deepest


MAX_VIDEO_BYTES = 16 * 2**20
_VIDEO = struct.Struct("<HHBQqQqI")


def _pack_video_frame(b: VideoFrame) -> bytes:
    if len(b.data) > MAX_VIDEO_BYTES:
        raise CodecError(f"VIDEO_FRAME data is {len(b.data)} bytes; at most "
                         f"{MAX_VIDEO_BYTES} fit: lower the bitrate or the frame size",
                         CodecReason.TOO_LARGE)
    return (_text(b.camera, "camera")
            + _VIDEO.pack(b.width, b.height, int(b.keyframe), b.frame_index,
                          b.capture_ns, b.applied_seq, b.applied_sample_ns,
                          len(b.data))
            + b.data)


def _unpack_video_frame(r: _Reader) -> VideoFrame:
    camera = r.text("camera")
    w, h, key, index, capture_ns, seq, sample_ns, n = r.take(_VIDEO)
    if not (w and h):
        raise CodecError(f"VIDEO_FRAME size {w}x{h} is empty; the sender is broken",
                         CodecReason.BAD_FIELD)
    if n > MAX_VIDEO_BYTES:
        raise CodecError(f"VIDEO_FRAME announces {n} bytes of data; at most "
                         f"{MAX_VIDEO_BYTES} are allowed", CodecReason.TOO_LARGE)
    (data,) = r.take(struct.Struct(f"<{n}s"))
    return VideoFrame(camera, w, h, _flag(key, "VIDEO_FRAME.keyframe"), index, capture_ns, seq,
               sample_ns, data)



_SYNC_REPLY = struct.Struct("<Qqq")


def _pack_sync_request(b: SyncRequest) -> bytes:
    return _text(b.path, "path")


def _unpack_sync_request(r: _Reader) -> SyncRequest:
    return SyncRequest(r.text("path"))



def _pack_sync_reply(b: SyncReply) -> bytes:
    return _text(b.path, "path") + _SYNC_REPLY.pack(b.request_seq, b.t0_ns,
                                                       b.t1_ns)


def _unpack_sync_reply(r: _Reader) -> SyncReply:
    path = r.text("path")
    seq, t0, t1 = r.take(_SYNC_REPLY)
    return SyncReply(path, seq, t0, t1)



MAX_CERTIFICATE_BYTES = 8192
_X25519 = struct.Struct("<32s")
_U16 = struct.Struct("<H")


def _blob(value: bytes, field: str, limit: int) -> bytes:
    if len(value) > limit:
        raise CodecError(f"{field} is {len(value)} bytes long; at most {limit} fit",
                         CodecReason.TOO_LARGE)
    return _U16.pack(len(value)) + value


def _take_blob(r: _Reader, field: str, limit: int) -> bytes:
    (n,) = r.take(_U16)
    if n > limit:
        raise CodecError(f"{field} announces {n} bytes; at most {limit} are allowed",
                         CodecReason.TOO_LARGE)
    return bytes(r.take(struct.Struct(f"<{n}s"))[0])


def _pack_key_offer(b: KeyOffer) -> bytes:
    return (_X25519.pack(b.ephemeral)
            + _blob(b.certificate, "KEY_OFFER.certificate", MAX_CERTIFICATE_BYTES)
            + _blob(b.signature, "KEY_OFFER.signature", 255))


def _unpack_key_offer(r: _Reader) -> KeyOffer:
    (eph,) = r.take(_X25519)
    cert = _take_blob(r, "KEY_OFFER.certificate", MAX_CERTIFICATE_BYTES)
    return KeyOffer(eph, cert, _take_blob(r, "KEY_OFFER.signature", 255))



_KEY_ACCEPT = struct.Struct("<Q32s")


def _pack_key_accept(b: KeyAccept) -> bytes:
    return (_KEY_ACCEPT.pack(b.console_session, b.ephemeral)
            + _blob(b.certificate, "KEY_ACCEPT.certificate", MAX_CERTIFICATE_BYTES)
            + _blob(b.signature, "KEY_ACCEPT.signature", 255))


def _unpack_key_accept(r: _Reader) -> KeyAccept:
    console, eph = r.take(_KEY_ACCEPT)
    cert = _take_blob(r, "KEY_ACCEPT.certificate", MAX_CERTIFICATE_BYTES)
    return KeyAccept(console, eph, cert, _take_blob(r, "KEY_ACCEPT.signature", 255))



_CONTROL = struct.Struct("<BQ")


def _pack_control_request(b: ControlRequest) -> bytes:
    if not 0 <= b.target <= _U64_MAX:
        raise CodecError("CONTROL_REQUEST.target must fit an unsigned 64-bit integer",
                         CodecReason.BAD_FIELD)
    return _CONTROL.pack(int(b.action), b.target) + _text(b.role, "role")


def _unpack_control_request(r: _Reader) -> ControlRequest:
    action, target = r.take(_CONTROL)
    return ControlRequest(_enum(ControlAction, action, "CONTROL_REQUEST.action"), r.text("role"),
               target)



# COMMAND_BUNDLE body: u8 count (1..MAX_BUNDLED), then per command its type byte
# (SERVO_CP or JAW_SERVO_JP) and that type's body layout.
_BUNDLED: dict[int, tuple[Callable[[Any], bytes], Callable[[_Reader], Command]]] = {
    int(MessageType.SERVO_CP): (_pack_servo_cp, _unpack_servo_cp),
    int(MessageType.JAW_SERVO_JP): (_pack_jaw_servo_jp, _unpack_jaw_servo_jp),
}


def _pack_command_bundle(b: CommandBundle) -> bytes:
    return _U8.pack(len(b.commands)) + b"".join(
        _U8.pack(int(c.TYPE)) + _BUNDLED[int(c.TYPE)][0](c) for c in b.commands)


def _unpack_command_bundle(r: _Reader) -> CommandBundle:
    (n,) = r.take(_U8)
    if not 0 < n <= MAX_BUNDLED:
        raise CodecError(f"COMMAND_BUNDLE announces {n} commands; 1 to {MAX_BUNDLED} are "
                         "allowed", CodecReason.BAD_FIELD)
    commands = []
    for _ in range(n):
        (kind,) = r.take(_U8)
        layout = _BUNDLED.get(kind)
        if layout is None:
            raise CodecError(f"COMMAND_BUNDLE holds a message of type {kind}; only SERVO_CP "
                             f"({int(MessageType.SERVO_CP)}) and JAW_SERVO_JP "
                             f"({int(MessageType.JAW_SERVO_JP)}) are bundled",
                             CodecReason.BAD_FIELD)
        commands.append(layout[1](r))
    return CommandBundle(tuple(commands))


# STATE_BUNDLE body: u8 count (1..MAX_BUNDLED), then each arm's MEASURED_CP body.
def _pack_state_bundle(b: StateBundle) -> bytes:
    return _U8.pack(len(b.states)) + b"".join(_pack_measured_cp(m) for m in b.states)


def _unpack_state_bundle(r: _Reader) -> StateBundle:
    (n,) = r.take(_U8)
    if not 0 < n <= MAX_BUNDLED:
        raise CodecError(f"STATE_BUNDLE announces {n} arms; 1 to {MAX_BUNDLED} are allowed",
                         CodecReason.BAD_FIELD)
    return StateBundle(tuple(_unpack_measured_cp(r) for _ in range(n)))


_Packer = Callable[[Any], bytes]
_Unpacker = Callable[[_Reader], AnyBody]
_LAYOUTS: dict[MessageType, tuple[_Packer, _Unpacker]] = {
    MessageType.SERVO_CP: (_pack_servo_cp, _unpack_servo_cp),
    MessageType.JAW_SERVO_JP: (_pack_jaw_servo_jp, _unpack_jaw_servo_jp),
    MessageType.MEASURED_CP: (_pack_measured_cp, _unpack_measured_cp),
    MessageType.MEASURED_JS: (_pack_measured_js, _unpack_measured_js),
    MessageType.MEASURED_CF: (_pack_measured_cf, _unpack_measured_cf),
    MessageType.SAFETY_EVENT: (_pack_safety_event, _unpack_safety_event),
    MessageType.STATUS: (_pack_status, _unpack_status),
    MessageType.VIDEO_FRAME: (_pack_video_frame, _unpack_video_frame),
    MessageType.SYNC_REQUEST: (_pack_sync_request, _unpack_sync_request),
    MessageType.SYNC_REPLY: (_pack_sync_reply, _unpack_sync_reply),
    MessageType.KEY_OFFER: (_pack_key_offer, _unpack_key_offer),
    MessageType.KEY_ACCEPT: (_pack_key_accept, _unpack_key_accept),
    MessageType.CONTROL_REQUEST: (_pack_control_request, _unpack_control_request),
    MessageType.COMMAND_BUNDLE: (_pack_command_bundle, _unpack_command_bundle),
    MessageType.STATE_BUNDLE: (_pack_state_bundle, _unpack_state_bundle),
}
"""How each message type's body is laid out: its packer and its unpacker."""


def encode(msg: Message) -> bytes:
    """Serialise ``msg``; raises ``CodecError`` for values that do not fit the format."""
    if not 0 <= msg.session <= _U64_MAX or not 0 <= msg.seq <= _U64_MAX:
        raise CodecError("session and seq must fit an unsigned 64-bit integer",
                         CodecReason.BAD_FIELD)
    if not _I64_MIN <= msg.sent_ns <= _I64_MAX:
        raise CodecError("sent_ns must fit a signed 64-bit integer", CodecReason.BAD_FIELD)
    if msg.tag and len(msg.tag) != TAG_SIZE:
        raise CodecError(f"an authentication tag is {TAG_SIZE} bytes, got {len(msg.tag)}",
                         CodecReason.BAD_FIELD)
    try:
        body = _LAYOUTS[msg.body.TYPE][0](msg.body)
    except struct.error as exc:
        raise CodecError(f"{msg.body.TYPE.name} has a value out of range: {exc}",
                         CodecReason.BAD_FIELD) from exc
    flags = FLAG_TAG if msg.tag else 0
    return _HEADER.pack(MAGIC, VERSION, int(msg.body.TYPE), flags, 0, msg.session, msg.seq,
                        msg.sent_ns) + body + msg.tag


def decode(data: bytes) -> Message:
    """Parse one message; raises ``CodecError`` saying what is wrong with ``data``."""
    if len(data) < HEADER_SIZE:
        raise CodecError(f"message too short: {len(data)} bytes, the header alone is "
                         f"{HEADER_SIZE}", CodecReason.TRUNCATED)
    magic, version, mtype, flags, reserved, session, seq, sent_ns = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(f"bad magic {magic!r}, expected {MAGIC!r}: not a telesurgery message",
                         CodecReason.BAD_MAGIC)
    if version != VERSION:
        raise CodecError(f"protocol version {version} is not supported (this node speaks "
                         f"{VERSION}); run the same telesurgery release on both ends",
                         CodecReason.BAD_VERSION)
    if flags & ~FLAG_TAG or reserved != 0:
        raise CodecError(f"header flags {flags:#04x}/{reserved:#04x} are not understood by "
                         f"protocol version {VERSION}", CodecReason.BAD_FLAGS)
    kind = _enum(MessageType, mtype, "message type", CodecReason.UNKNOWN_TYPE)
    raw = bytes(data)
    tag = b""
    if flags & FLAG_TAG:
        if len(raw) < HEADER_SIZE + TAG_SIZE:
            raise CodecError(f"message flagged as tagged is {len(raw)} bytes, too short for "
                             f"the header and a {TAG_SIZE}-byte tag", CodecReason.TRUNCATED)
        raw, tag = raw[:-TAG_SIZE], raw[-TAG_SIZE:]
    r = _Reader(raw, HEADER_SIZE, kind.name)
    body = _LAYOUTS[kind][1](r)
    r.finish()
    return Message(session, seq, sent_ns, body, tag)


__all__ = [
    "FLAGS_OFFSET",
    "FLAG_TAG",
    "HEADER_SIZE",
    "MAX_STATUS_BYTES",
    "MAX_STATUS_DEPTH",
    "TAG_SIZE",
    "decode",
    "encode",
    "untrusted_json",
]
