"""What travels over the console page's WebSocket: binary video messages and JSON text.

Console -> page, binary, one video frame per message (little-endian)::

    offset size field
    0      1    kind: 1 = H.264 Annex-B access unit, 2 = JPEG picture
    1      1    flags: bit 0 = keyframe (an IDR with its parameter sets)
    2      2    width [px]
    4      2    height [px]
    6      4    frame index (u32, wraps)
    10     8    capture time on the page's clock [ms] (f64; NaN before the clocks are synced)
    18     ...  payload

Console -> page, text: ``hello`` (session, size, arms, whether the page drives
them, the console's ``role``: ``surgeon`` or ``backup``, which decides the control
buttons), ``ping`` (clock sync), ``hud`` (the heads-up display's numbers; ``owner``: who
holds control, ``you`` when this console does, pending ``requests``, ``handovers``,
the patient's pre-flight ``checklist`` (null when it enforces none);
``forces``: the ``cap_n`` [N] and per arm the tip force ``force_n``, its ``peak_n`` and its
direction in the view frame ``view_n`` [N], the ``grip_n`` [N] and the gauge's ``level``:
``ok``, ``near``, ``over`` or ``unknown``, where null stands for a force not known),
``codec`` (the console switched the page from H.264 to JPEG pictures, and ``why``).

Page -> console, text (JSON objects, ``t`` names the kind; times are the
page's ``performance.now()`` [ms]): ``hello`` (whether WebCodecs is there),
``pong`` (the page's time for a ping), ``frame`` (when a frame arrived, was
decoded, painted, and reached the next display refresh), ``input`` (the
surgeon's hands: velocities, mouse nudges, grip, clutch) and ``action`` (hold,
resume, keyframe; request control from a surgeon console, take control or grant it to
the oldest pending request from a backup console) and ``checklist`` (a backup console's
page: ``a`` ``confirm``, or ``override`` with the ``item`` and the written ``reason``,
which the patient node judges). ``parse`` turns each into a frozen value
or raises ``CodecError`` saying what is wrong (with a ``CodecReason``, whatever the text:
JSON nested too deep included); the console counts and drops it.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Any, Final

from telesurgery.errors import CodecError, CodecReason
from telesurgery.transport.codec import untrusted_json

_VIDEO = struct.Struct("<BBHHId")
VIDEO_HEADER_SIZE: Final = _VIDEO.size
MAX_TEXT_BYTES: Final = 4096
MAX_TEXT_DEPTH: Final = 4
"""The deepest a page message may nest; the page's own are an object holding lists."""
MAX_NUDGE_PX: Final = 2000.0
"""A mouse or wheel movement larger than this in one message is refused [px]."""


class VideoKind(enum.IntEnum):
    """What a binary video message carries."""

    H264 = 1
    JPEG = 2


def video_message(kind: VideoKind, keyframe: bool, width: int, height: int, index: int,
                  capture_page_ms: float, payload: bytes) -> bytes:
    """One binary WebSocket message: the header above, then ``payload``."""
    return _VIDEO.pack(int(kind), int(keyframe), width, height, index & 0xFFFFFFFF,
                       capture_page_ms) + payload


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """A parsed binary video header (the page does this in JavaScript; tests in Python)."""

    kind: VideoKind
    keyframe: bool
    width: int
    height: int
    index: int
    capture_page_ms: float


def parse_video(data: bytes) -> tuple[VideoHeader, bytes]:
    """Header and payload of a binary video message."""
    if len(data) < VIDEO_HEADER_SIZE:
        raise CodecError(f"video message is {len(data)} bytes; the header alone is "
                         f"{VIDEO_HEADER_SIZE}", CodecReason.TRUNCATED)
    kind, flags, w, h, index, capture = _VIDEO.unpack_from(data)
    try:
        video_kind = VideoKind(kind)
    except ValueError as exc:
        raise CodecError(f"video kind {kind} is unknown; 1 = H.264, 2 = JPEG",
                         CodecReason.UNKNOWN_TYPE) from exc
    return (VideoHeader(video_kind, bool(flags & 1), w, h, index, capture),
            data[VIDEO_HEADER_SIZE:])


class Action(enum.Enum):
    """Buttons of the page that are not hand motion."""

    HOLD = "hold"
    """Latch the instruments where they are (a console-side clutch that stays pressed)."""
    RESUME = "resume"
    """Release a hold; the hand re-anchors on the instruments, so nothing jumps."""
    REQUEST_CONTROL = "request_control"
    """Ask the bedside for control of the robot (a surgeon console)."""
    TAKE_CONTROL = "take_control"
    """Take control of the robot now (a backup console: one click, key T)."""
    GRANT_CONTROL = "grant_control"
    """Give control to the console whose request is the oldest pending (a backup console)."""
    ALLOW_REPLAY = "allow_replay"
    """Allow the replay a surgeon console offered of its outage motion (a backup console)."""
    DISCARD_REPLAY = "discard_replay"
    """Withdraw this console's offered or running replay (a surgeon console)."""
    KEYFRAME = "keyframe"
    """The page's decoder lost the stream and needs an IDR."""


@dataclass(frozen=True, slots=True)
class PageHello:
    """The page's first message: whether it can decode H.264 itself (WebCodecs), and
    whether the console may switch it to JPEG when it keeps falling behind (the page's
    ``?codec=h264`` says no)."""

    webcodecs: bool
    fallback: bool = True


@dataclass(frozen=True, slots=True)
class Pong:
    """The page's clock [ms] when it answered ping ``id``."""

    id: int
    at_ms: float


@dataclass(frozen=True, slots=True)
class FramePainted:
    """Frame ``index`` on the page: message arrived (``received_ms``), decoder output
    (``decoded_ms``), drawn on the canvas (``painted_ms``), next display refresh
    (``shown_ms``, None where unknown); page clock [ms]."""

    index: int
    received_ms: float
    decoded_ms: float
    painted_ms: float
    shown_ms: float | None


@dataclass(frozen=True, slots=True)
class HandInput:
    """The surgeon's hand for ``arm`` as the page reads it.

    ``move``: velocity along the view axes (x right, y down, z into the scene) as a
    fraction of full speed, each in [-1, 1]; ``nudge``: mouse and wheel movement
    since the last message [px]; ``roll``: roll rate about the view axis in [-1, 1];
    ``grip`` in [0 closed, 1 open]; ``clutch`` pressed.
    """

    arm: str
    move: tuple[float, float, float]
    nudge: tuple[float, float, float]
    roll: float
    grip: float
    clutch: bool


@dataclass(frozen=True, slots=True)
class PageAction:
    """A button that is not hand motion."""

    action: Action


@dataclass(frozen=True, slots=True)
class PageChecklist:
    """The bedside lead confirms the pre-flight checklist (``action`` ``confirm``) or
    overrides its failed ``item`` with a written ``reason`` (``override``)."""

    action: str
    item: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        """What the console sends the patient node (``ControlClient.checklist``)."""
        if self.action == "confirm":
            return {"action": "confirm"}
        return {"action": "override", "item": self.item, "reason": self.reason}


MAX_REASON_CHARS = 500
"""The longest override reason a page may send (the patient's limit too)."""

PageMessage = PageHello | Pong | FramePainted | HandInput | PageAction | PageChecklist


def _number(obj: dict[str, Any], key: str, lo: float, hi: float) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise CodecError(f"'{key}' must be a finite number, got {v!r}", CodecReason.BAD_FIELD)
    if not lo <= v <= hi:
        raise CodecError(f"'{key}' is {v}; it must lie in [{lo}, {hi}]", CodecReason.BAD_FIELD)
    return float(v)


def _time(obj: dict[str, Any], key: str) -> float:
    return _number(obj, key, 0.0, 1e12)


def _vector(obj: dict[str, Any], key: str, limit: float) -> tuple[float, float, float]:
    v = obj.get(key, [0.0, 0.0, 0.0])
    if not isinstance(v, list) or len(v) != 3:
        raise CodecError(f"'{key}' must be a list of 3 numbers, got {v!r}",
                         CodecReason.BAD_FIELD)
    x, y, z = (_number({"v": e}, "v", -limit, limit) for e in v)
    return (x, y, z)


def _flag(obj: dict[str, Any], key: str) -> bool:
    v = obj.get(key, False)
    if not isinstance(v, bool):
        raise CodecError(f"'{key}' must be true or false, got {v!r}", CodecReason.BAD_FIELD)
    return v


def _int(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise CodecError(f"'{key}' must be a non-negative integer, got {v!r}",
                         CodecReason.BAD_FIELD)
    return v


def parse(text: str) -> PageMessage:
    """One text message from the page; ``CodecError`` saying what is wrong otherwise."""
    if len(text) > MAX_TEXT_BYTES:
        raise CodecError(f"page message of {len(text)} characters; at most {MAX_TEXT_BYTES}",
                         CodecReason.TOO_LARGE)
    obj = untrusted_json(text, "page message", MAX_TEXT_DEPTH)
    if not isinstance(obj, dict):
        raise CodecError(f"page message must be a JSON object, got {type(obj).__name__}",
                         CodecReason.BAD_BODY)
    kind = obj.get("t")
    if kind == "hello":
        return PageHello(_flag(obj, "webcodecs"),
                         _flag(obj, "fallback") if "fallback" in obj else True)
    if kind == "pong":
        return Pong(_int(obj, "id"), _time(obj, "at"))
    if kind == "frame":
        shown = None if obj.get("shown") is None else _time(obj, "shown")
        return FramePainted(_int(obj, "i"), _time(obj, "rx"), _time(obj, "out"),
                            _time(obj, "paint"), shown)
    if kind == "input":
        arm = obj.get("arm")
        if not isinstance(arm, str) or not arm or len(arm) > 64:
            raise CodecError(f"'arm' must name an arm, got {arm!r}", CodecReason.BAD_FIELD)
        return HandInput(arm, _vector(obj, "move", 1.0), _vector(obj, "nudge", MAX_NUDGE_PX),
                         _number(obj, "roll", -1.0, 1.0) if "roll" in obj else 0.0,
                         _number(obj, "grip", 0.0, 1.0), _flag(obj, "clutch"))
    if kind == "action":
        try:
            return PageAction(Action(obj.get("a")))
        except ValueError as exc:
            valid = ", ".join(a.value for a in Action)
            raise CodecError(f"action {obj.get('a')!r} is unknown; valid: {valid}",
                             CodecReason.BAD_FIELD) from exc
    if kind == "checklist":
        return _checklist(obj)
    raise CodecError(f"page message kind {kind!r} is unknown; valid: hello, pong, frame, "
                     "input, action, checklist", CodecReason.UNKNOWN_TYPE)


def _checklist(obj: dict[str, Any]) -> PageChecklist:
    action = obj.get("a")
    if action == "confirm":
        return PageChecklist("confirm")
    if action != "override":
        raise CodecError(f"checklist action {action!r} is unknown; valid: confirm, override",
                         CodecReason.BAD_FIELD)
    item, reason = obj.get("item"), obj.get("reason")
    if not isinstance(item, str) or not 0 < len(item) <= 32:
        raise CodecError(f"'item' must name a checklist item, got {item!r}",
                         CodecReason.BAD_FIELD)
    if not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON_CHARS:
        raise CodecError(f"'reason' must be 1 to {MAX_REASON_CHARS} characters",
                         CodecReason.BAD_FIELD)
    return PageChecklist("override", item, reason)


__all__ = [
    "MAX_NUDGE_PX",
    "VIDEO_HEADER_SIZE",
    "Action",
    "FramePainted",
    "HandInput",
    "PageAction",
    "PageChecklist",
    "PageHello",
    "PageMessage",
    "Pong",
    "VideoHeader",
    "VideoKind",
    "parse",
    "parse_video",
    "video_message",
]
