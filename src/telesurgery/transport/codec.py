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
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

from telesurgery.errors import CodecError, CodecReason
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState, Wrench

MAGIC = b"TS"
VERSION = 1
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


class MessageType(enum.IntEnum):
    """Message type ids on the wire."""

    SERVO_CP = 1
    JAW_SERVO_JP = 2
    MEASURED_CP = 3
    MEASURED_JS = 4
    MEASURED_CF = 5
    SAFETY_EVENT = 6
    STATUS = 7
    VIDEO_FRAME = 8
    SYNC_REQUEST = 9
    SYNC_REPLY = 10
    KEY_OFFER = 11
    KEY_ACCEPT = 12
    CONTROL_REQUEST = 13


class ControlAction(enum.IntEnum):
    """What a console asks of the patient node's control ownership."""

    REQUEST = 1
    """A console asks for control; the bedside decides."""
    TAKE_OVER = 2
    """The bedside (backup) console takes control at once."""
    GRANT = 3
    """The bedside gives control to the console session that asked for it."""


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
    raw = value.encode("utf-8")
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
_VEC6 = struct.Struct("<6d")
_SAFETY = struct.Struct("<BBB")


def _pose(r: _Reader) -> Pose:
    v = r.take(_POSE)
    return Pose((v[0], v[1], v[2]), (v[3], v[4], v[5], v[6]))


def _pack_pose(p: Pose) -> bytes:
    return _POSE.pack(*p.position, *p.orientation)


class Body(Protocol):
    """What every message body provides."""

    TYPE: ClassVar[MessageType]

    def pack(self) -> bytes: ...

    @classmethod
    def unpack(cls, r: _Reader) -> Self: ...


@dataclass(frozen=True, slots=True)
class ServoCP:
    """``servo_cp``: the instrument tip's target pose in the robot base frame.

    ``sample_ns``: when the input sample behind it was taken [ns, console clock].
    ``clutch``: the surgeon's clutch is pressed; the arm must not move and the
    console re-aligns the hand. After a HOLD, a clutched command re-arms the arm.
    """

    TYPE: ClassVar[MessageType] = MessageType.SERVO_CP
    arm: str
    pose: Pose
    sample_ns: int
    clutch: bool = False

    def pack(self) -> bytes:
        return (_text(self.arm, "arm") + _SERVO_CP.pack(int(self.clutch), self.sample_ns)
                + _pack_pose(self.pose))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        arm = _arm(r.text("arm"), "SERVO_CP")
        clutch, sample_ns = r.take(_SERVO_CP)
        return cls(arm, _pose(r), sample_ns, _flag(clutch, "SERVO_CP.clutch"))


@dataclass(frozen=True, slots=True)
class JawServoJP:
    """``jaw/servo_jp``: the jaw opening target [rad]."""

    TYPE: ClassVar[MessageType] = MessageType.JAW_SERVO_JP
    arm: str
    angle: float
    sample_ns: int

    def pack(self) -> bytes:
        return _text(self.arm, "arm") + _JAW.pack(self.sample_ns, self.angle)

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        arm = _arm(r.text("arm"), "JAW_SERVO_JP")
        sample_ns, angle = r.take(_JAW)
        return cls(arm, angle, sample_ns)


@dataclass(frozen=True, slots=True)
class MeasuredCP:
    """``measured_cp``: tip pose and setpoint [m, quaternion], jaw [rad], which command
    produced the setpoint (``applied_seq``, ``applied_sample_ns``), and what the safety
    supervisor does with this arm's commands (``mode``: a held arm waits for a clutch)."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_CP
    arm: str
    measured: Pose
    setpoint: Pose
    jaw: float
    applied_seq: int
    applied_sample_ns: int
    operating_state: OperatingState
    mode: ArmMode

    def pack(self) -> bytes:
        return (_text(self.arm, "arm") + _pack_pose(self.measured) + _pack_pose(self.setpoint)
                + struct.pack("<d", self.jaw)
                + _MEASURED_CP_TAIL.pack(self.applied_seq, self.applied_sample_ns,
                                         int(self.operating_state), int(self.mode)))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        arm = _arm(r.text("arm"), "MEASURED_CP")
        measured, setpoint = _pose(r), _pose(r)
        (jaw,) = r.take(_F64)
        seq, sample_ns, op, mode = r.take(_MEASURED_CP_TAIL)
        return cls(arm, measured, setpoint, jaw, seq, sample_ns,
                   _enum(OperatingState, op, "MEASURED_CP.operating_state"),
                   _enum(ArmMode, mode, "MEASURED_CP.mode"))


_F64 = struct.Struct("<d")


@dataclass(frozen=True, slots=True)
class MeasuredJS:
    """``measured_js``: joint positions [rad or m] and velocities, jaw last."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_JS
    arm: str
    position: tuple[float, ...]
    velocity: tuple[float, ...]

    def pack(self) -> bytes:
        n = len(self.position)
        if len(self.velocity) != n or n > 32:
            raise CodecError(f"MEASURED_JS needs as many velocities as positions (<= 32), "
                             f"got {n} and {len(self.velocity)}", CodecReason.BAD_FIELD)
        return (_text(self.arm, "arm") + _U8.pack(n)
                + struct.pack(f"<{2 * n}d", *self.position, *self.velocity))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        arm = _arm(r.text("arm"), "MEASURED_JS")
        (n,) = r.take(_U8)
        if n > 32:
            raise CodecError(f"MEASURED_JS announces {n} joints; at most 32 are allowed",
                             CodecReason.TOO_LARGE)
        v = r.take(struct.Struct(f"<{2 * n}d"))
        return cls(arm, tuple(v[:n]), tuple(v[n:]))


@dataclass(frozen=True, slots=True)
class MeasuredCF:
    """``measured_cf``: tool-tip wrench [N, N m] in the robot base frame."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_CF
    arm: str
    wrench: Wrench

    def pack(self) -> bytes:
        return _text(self.arm, "arm") + _VEC6.pack(*self.wrench.force, *self.wrench.torque)

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        arm = _arm(r.text("arm"), "MEASURED_CF")
        v = r.take(_VEC6)
        return cls(arm, Wrench((v[0], v[1], v[2]), (v[3], v[4], v[5])))


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """A transition of the safety supervisor, with the reason in words."""

    TYPE: ClassVar[MessageType] = MessageType.SAFETY_EVENT
    state: SafetyState
    previous: SafetyState
    operating_state: OperatingState
    reason: str

    def pack(self) -> bytes:
        return (_SAFETY.pack(int(self.state), int(self.previous), int(self.operating_state))
                + _text(self.reason, "reason"))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        state, previous, op = r.take(_SAFETY)
        return cls(_enum(SafetyState, state, "SAFETY_EVENT.state"),
                   _enum(SafetyState, previous, "SAFETY_EVENT.previous"),
                   _enum(OperatingState, op, "SAFETY_EVENT.operating_state"),
                   r.text("reason"))


@dataclass(frozen=True, slots=True)
class Status:
    """Low-rate telemetry of a node (counters, percentiles) as a JSON object."""

    TYPE: ClassVar[MessageType] = MessageType.STATUS
    data: dict[str, Any]

    def pack(self) -> bytes:
        raw = json.dumps(self.data, separators=(",", ":"), allow_nan=False).encode()
        if len(raw) > MAX_STATUS_BYTES:
            raise CodecError(f"STATUS is {len(raw)} bytes; at most {MAX_STATUS_BYTES} fit",
                             CodecReason.TOO_LARGE)
        return struct.pack("<H", len(raw)) + raw

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        (n,) = r.take(struct.Struct("<H"))
        if n > MAX_STATUS_BYTES:
            raise CodecError(f"STATUS announces {n} bytes; at most {MAX_STATUS_BYTES} are "
                             "allowed", CodecReason.TOO_LARGE)
        raw = r.take(struct.Struct(f"<{n}s"))[0]
        data = untrusted_json(raw, "STATUS body", MAX_STATUS_DEPTH)
        if not isinstance(data, dict):
            raise CodecError(f"STATUS body must be a JSON object, got {type(data).__name__}",
                             CodecReason.BAD_BODY)
        return cls(data)


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


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One encoded endoscope frame: H.264 Annex-B ``data`` of ``width`` x ``height`` [px].

    ``capture_ns``: when the frame finished rendering [ns, sender clock];
    ``applied_seq`` / ``applied_sample_ns``: sequence and input-sample time [ns] of
    the last command applied to the robot when the scene was captured (0 before
    any), for motion-to-photon; ``frame_index`` counts frames from 0, so a gap is a
    lost frame; ``keyframe``: an IDR a decoder can start from.
    """

    TYPE: ClassVar[MessageType] = MessageType.VIDEO_FRAME
    camera: str
    width: int
    height: int
    keyframe: bool
    frame_index: int
    capture_ns: int
    applied_seq: int
    applied_sample_ns: int
    data: bytes

    def pack(self) -> bytes:
        if len(self.data) > MAX_VIDEO_BYTES:
            raise CodecError(f"VIDEO_FRAME data is {len(self.data)} bytes; at most "
                             f"{MAX_VIDEO_BYTES} fit: lower the bitrate or the frame size",
                             CodecReason.TOO_LARGE)
        return (_text(self.camera, "camera")
                + _VIDEO.pack(self.width, self.height, int(self.keyframe), self.frame_index,
                              self.capture_ns, self.applied_seq, self.applied_sample_ns,
                              len(self.data))
                + self.data)

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        camera = r.text("camera")
        w, h, key, index, capture_ns, seq, sample_ns, n = r.take(_VIDEO)
        if not (w and h):
            raise CodecError(f"VIDEO_FRAME size {w}x{h} is empty; the sender is broken",
                             CodecReason.BAD_FIELD)
        if n > MAX_VIDEO_BYTES:
            raise CodecError(f"VIDEO_FRAME announces {n} bytes of data; at most "
                             f"{MAX_VIDEO_BYTES} are allowed", CodecReason.TOO_LARGE)
        (data,) = r.take(struct.Struct(f"<{n}s"))
        return cls(camera, w, h, _flag(key, "VIDEO_FRAME.keyframe"), index, capture_ns, seq,
                   sample_ns, data)


_SYNC_REPLY = struct.Struct("<Qqq")


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A clock-synchronisation request sent on control path ``path``; the header's
    ``sent_ns`` is its send time t0 [ns, requester clock]."""

    TYPE: ClassVar[MessageType] = MessageType.SYNC_REQUEST
    path: str

    def pack(self) -> bytes:
        return _text(self.path, "path")

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        return cls(r.text("path"))


@dataclass(frozen=True, slots=True)
class SyncReply:
    """The answer to ``SyncRequest`` number ``request_seq`` on ``path``: its send time
    ``t0_ns`` [ns, requester clock] echoed and its arrival time ``t1_ns`` [ns, responder
    clock]; the header's ``sent_ns`` is the reply's send time t2 [ns, responder clock]."""

    TYPE: ClassVar[MessageType] = MessageType.SYNC_REPLY
    path: str
    request_seq: int
    t0_ns: int
    t1_ns: int

    def pack(self) -> bytes:
        return _text(self.path, "path") + _SYNC_REPLY.pack(self.request_seq, self.t0_ns,
                                                           self.t1_ns)

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        path = r.text("path")
        seq, t0, t1 = r.take(_SYNC_REPLY)
        return cls(path, seq, t0, t1)


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


@dataclass(frozen=True, slots=True)
class KeyOffer:
    """A console's offer of a command key: its X25519 ``ephemeral`` public key [32 bytes],
    its ``certificate`` (DER) and its ``signature`` over both (``security.handshake``).
    The header's ``session`` is the console's session id."""

    TYPE: ClassVar[MessageType] = MessageType.KEY_OFFER
    ephemeral: bytes
    certificate: bytes
    signature: bytes

    def pack(self) -> bytes:
        return (_X25519.pack(self.ephemeral)
                + _blob(self.certificate, "KEY_OFFER.certificate", MAX_CERTIFICATE_BYTES)
                + _blob(self.signature, "KEY_OFFER.signature", 255))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        (eph,) = r.take(_X25519)
        cert = _take_blob(r, "KEY_OFFER.certificate", MAX_CERTIFICATE_BYTES)
        return cls(eph, cert, _take_blob(r, "KEY_OFFER.signature", 255))


_KEY_ACCEPT = struct.Struct("<Q32s")


@dataclass(frozen=True, slots=True)
class KeyAccept:
    """The patient node's answer to the offer of console session ``console_session``
    [u64]: its own ``ephemeral`` X25519 key [32 bytes], ``certificate`` (DER) and
    ``signature``. The header's ``session`` is the patient's session id."""

    TYPE: ClassVar[MessageType] = MessageType.KEY_ACCEPT
    console_session: int
    ephemeral: bytes
    certificate: bytes
    signature: bytes

    def pack(self) -> bytes:
        return (_KEY_ACCEPT.pack(self.console_session, self.ephemeral)
                + _blob(self.certificate, "KEY_ACCEPT.certificate", MAX_CERTIFICATE_BYTES)
                + _blob(self.signature, "KEY_ACCEPT.signature", 255))

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        console, eph = r.take(_KEY_ACCEPT)
        cert = _take_blob(r, "KEY_ACCEPT.certificate", MAX_CERTIFICATE_BYTES)
        return cls(console, eph, cert, _take_blob(r, "KEY_ACCEPT.signature", 255))


_CONTROL = struct.Struct("<BQ")


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """A console's ``action`` on control ownership, sent as ``role`` (``surgeon`` or
    ``backup``; with security on, the certificate behind the command key decides and this
    field is only checked against it); ``target`` is the console session a ``GRANT``
    gives control to (0 otherwise). Tagged like a command."""

    TYPE: ClassVar[MessageType] = MessageType.CONTROL_REQUEST
    action: ControlAction
    role: str
    target: int = 0

    def pack(self) -> bytes:
        if not 0 <= self.target <= _U64_MAX:
            raise CodecError("CONTROL_REQUEST.target must fit an unsigned 64-bit integer",
                             CodecReason.BAD_FIELD)
        return _CONTROL.pack(int(self.action), self.target) + _text(self.role, "role")

    @classmethod
    def unpack(cls, r: _Reader) -> Self:
        action, target = r.take(_CONTROL)
        return cls(_enum(ControlAction, action, "CONTROL_REQUEST.action"), r.text("role"),
                   target)


AnyBody = (ServoCP | JawServoJP | MeasuredCP | MeasuredJS | MeasuredCF | SafetyEvent | Status
           | VideoFrame | SyncRequest | SyncReply | KeyOffer | KeyAccept | ControlRequest)
_BODIES: dict[MessageType, type[AnyBody]] = {
    b.TYPE: b for b in (ServoCP, JawServoJP, MeasuredCP, MeasuredJS, MeasuredCF, SafetyEvent,
                        Status, VideoFrame, SyncRequest, SyncReply, KeyOffer, KeyAccept,
                        ControlRequest)
}


@dataclass(frozen=True, slots=True)
class Message:
    """A header plus one body: ``session`` [u64], ``seq`` [u64], ``sent_ns`` [ns], and
    the authentication ``tag`` the message ended with (empty: none; ``TAG_SIZE``
    bytes otherwise). Decoding never checks a tag: ``security.tags`` does."""

    session: int
    seq: int
    sent_ns: int
    body: AnyBody
    tag: bytes = b""

    def __bytes__(self) -> bytes:
        return encode(self)


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
        body = msg.body.pack()
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
    body = _BODIES[kind].unpack(r)
    r.finish()
    return Message(session, seq, sent_ns, body, tag)


__all__ = [
    "FLAGS_OFFSET",
    "FLAG_TAG",
    "HEADER_SIZE",
    "MAX_STATUS_BYTES",
    "MAX_STATUS_DEPTH",
    "TAG_SIZE",
    "AnyBody",
    "ControlAction",
    "ControlRequest",
    "JawServoJP",
    "KeyAccept",
    "KeyOffer",
    "MeasuredCF",
    "MeasuredCP",
    "MeasuredJS",
    "Message",
    "MessageType",
    "SafetyEvent",
    "ServoCP",
    "Status",
    "SyncReply",
    "SyncRequest",
    "VideoFrame",
    "decode",
    "encode",
    "untrusted_json",
]
