"""The messages of the data path: one frozen value type per message body, and the envelope.

These are domain values: the console builds them, the safety supervisor checks them, the
recorder stores them. How they are laid out in bytes is ``transport.codec``'s business
alone. Units: positions [m], angles [rad], forces [N], times [ns] on the sender's
monotonic clock unless a field says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from telesurgery.geometry import Vec3
from telesurgery.types import ArmMode, LabelledEnum, OperatingState, Pose, SafetyState, Wrench


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
    COMMAND_BUNDLE = 14
    STATE_BUNDLE = 15


class ControlAction(enum.IntEnum):
    """What a console asks of the patient node's control ownership."""

    REQUEST = 1
    """A console asks for control; the bedside decides."""
    TAKE_OVER = 2
    """The bedside (backup) console takes control at once."""
    GRANT = 3
    """The bedside gives control to the console session that asked for it."""
    REPLAY = 4
    """The owner offers the motion it made on its twin during an outage for replay on the
    robot (``console.twin``); the bedside decides."""
    ALLOW_REPLAY = 5
    """The bedside allows the replay the console session ``target`` offered."""
    END_REPLAY = 6
    """The console's replay is over: done, withdrawn or abandoned."""


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


@dataclass(frozen=True, slots=True)
class JawServoJP:
    """``jaw/servo_jp``: the jaw opening target [rad]."""

    TYPE: ClassVar[MessageType] = MessageType.JAW_SERVO_JP
    arm: str
    angle: float
    sample_ns: int


Command = ServoCP | JawServoJP
"""One arm's command: a ``servo_cp`` or a ``jaw/servo_jp``."""

MAX_BUNDLED = 16
"""The most bodies one bundle carries (eight arms' pose and jaw commands)."""


def _check_bundled(count: int, what: str) -> None:
    if not 0 < count <= MAX_BUNDLED:
        raise ValueError(f"a {what} carries 1 to {MAX_BUNDLED} bodies, got {count}")


@dataclass(frozen=True, slots=True)
class CommandBundle:
    """One console tick's commands for every arm it drives, in one message.

    Each command is its own ``servo_cp`` or ``jaw/servo_jp`` body with its CRTK meaning.

    Four commands a tick in four messages cost four network samples, four receive
    callbacks, four tag checks and four first-arrival checks on every path; a bundle costs
    one of each. Each command takes the bundle's header (session, sequence number, send
    time): its arm's streams are numbered by bundle.
    """

    TYPE: ClassVar[MessageType] = MessageType.COMMAND_BUNDLE
    commands: tuple[Command, ...]

    def __post_init__(self) -> None:
        _check_bundled(len(self.commands), "command bundle")


@dataclass(frozen=True, slots=True)
class MeasuredCP:
    """``measured_cp``: tip pose and setpoint [m, quaternion], jaw [rad], which command
    produced the setpoint (``applied_seq``, ``applied_sample_ns``), what the safety
    supervisor does with this arm's commands (``mode``: a held arm waits for a clutch),
    and the force at the tip [N, base frame] and the jaws' grip [N] as ``measured_cf``
    reports them: what a console shows and renders at the state rate, on the control
    path, without subscribing to ``measured_cf`` as well."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_CP
    arm: str
    measured: Pose
    setpoint: Pose
    jaw: float
    applied_seq: int
    applied_sample_ns: int
    operating_state: OperatingState
    mode: ArmMode
    force: Vec3 = (0.0, 0.0, 0.0)
    grip: float = 0.0


@dataclass(frozen=True, slots=True)
class StateBundle:
    """One state tick's ``measured_cp`` of every arm, in one message: what a console reads
    at the state rate, one sample and one callback on each path for all arms."""

    TYPE: ClassVar[MessageType] = MessageType.STATE_BUNDLE
    states: tuple[MeasuredCP, ...]

    def __post_init__(self) -> None:
        _check_bundled(len(self.states), "state bundle")


@dataclass(frozen=True, slots=True)
class MeasuredJS:
    """``measured_js``: joint positions [rad or m] and velocities, jaw last."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_JS
    arm: str
    position: tuple[float, ...]
    velocity: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class MeasuredCF:
    """``measured_cf``: tool-tip wrench [N, N m] in the robot base frame, and what the
    jaws squeeze [N] (``grip``)."""

    TYPE: ClassVar[MessageType] = MessageType.MEASURED_CF
    arm: str
    wrench: Wrench
    grip: float = 0.0


class SafetyCause(LabelledEnum):
    """Why the safety supervisor changed its state or an arm's mode (wire id), or, for the
    force and grip caps, what it limits without changing either.

    Each is what one supervisor event says; the supervisor emits no other."""

    ENABLED = 1
    """``enable()``: DISABLED -> HOLD, every arm held until the console clutches."""
    DISABLED = 2
    """``disable()``: nothing moves until ``enable()``."""
    ESTOP = 3
    """``estop()``: an operator latched the emergency stop."""
    ROBOT_ERROR = 4
    """The robot driver raised an error: ESTOP latched and a fault counted."""
    ROBOT_NOT_ENABLED = 5
    """The robot left ENABLED (the event's ``operating_state`` says for what): arm held."""
    WATCHDOG = 6
    """No valid command for the arm within the watchdog limit: arm held."""
    NEW_SESSION = 7
    """Commands from another console session (a console restarted): arm held."""
    HOLD_REQUESTED = 8
    """``hold()``: an operator held every arm."""
    HANDOVER = 9
    """Control passed to another console (take-over, grant, owner lost): arm held."""
    CLUTCH_PRESSED = 10
    """The console's clutch: a held arm is armed, a following arm clutched."""
    ALIGNED_ENGAGE = 11
    """Clutch released with the hand aligned on the tool: the arm follows."""
    FORCE_LIMIT = 12
    """The force at the tip reached the cap: motion into contact stops (no mode changes)."""
    FORCE_CLEARED = 13
    """The force at the tip fell back under the cap."""
    GRIP_LIMIT = 14
    """The jaws' grip reached the cap: the jaws close no further."""
    GRIP_CLEARED = 15
    """The jaws' grip fell back under the cap."""


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """A transition of the safety supervisor, its cause, and the arm whose mode changed.

    ``state`` and ``previous``: the supervisor's states after and before; the robot's
    ``operating_state``; ``cause``: why. An arm's change of mode names the ``arm`` and its
    modes before and after (``mode_before``, ``mode_after``); a transition of the
    supervisor as a whole (enable, disable, emergency stop) has all three None.
    ``reason`` says why in words, with details such as how long the watchdog waited
    [ms], for logs and people: programs read the fields, never the words.
    """

    TYPE: ClassVar[MessageType] = MessageType.SAFETY_EVENT
    state: SafetyState
    previous: SafetyState
    operating_state: OperatingState
    cause: SafetyCause
    reason: str
    arm: str | None = None
    mode_before: ArmMode | None = None
    mode_after: ArmMode | None = None

    def __post_init__(self) -> None:
        if (self.arm is None) != (self.mode_before is None) or \
                (self.arm is None) != (self.mode_after is None):
            raise ValueError("a safety event names an arm with both its modes, or none of "
                             f"the three; got arm {self.arm!r}, modes {self.mode_before!r} "
                             f"and {self.mode_after!r}")

    @property
    def held(self) -> bool:
        """True when an arm went to HELD (it needs the clutch cycle to move again)."""
        return self.mode_after is ArmMode.HELD and self.mode_before is not ArmMode.HELD

    def text(self) -> str:
        """One line for logs and displays: ``psm1 following -> held: <reason>``, or the
        reason alone for a transition of the supervisor as a whole."""
        if self.arm is None or self.mode_before is None or self.mode_after is None:
            return self.reason
        return (f"{self.arm} {self.mode_before.label} -> {self.mode_after.label}: "
                f"{self.reason}")


@dataclass(frozen=True, slots=True)
class Status:
    """Low-rate telemetry of a node (counters, percentiles) as a JSON object."""

    TYPE: ClassVar[MessageType] = MessageType.STATUS
    data: dict[str, Any]


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


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A clock-synchronisation request sent on control path ``path``; the header's
    ``sent_ns`` is its send time t0 [ns, requester clock]."""

    TYPE: ClassVar[MessageType] = MessageType.SYNC_REQUEST
    path: str


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


@dataclass(frozen=True, slots=True)
class KeyOffer:
    """A console's offer of a command key: its X25519 ``ephemeral`` public key [32 bytes],
    its ``certificate`` (DER) and its ``signature`` over both (``security.handshake``).
    The header's ``session`` is the console's session id."""

    TYPE: ClassVar[MessageType] = MessageType.KEY_OFFER
    ephemeral: bytes
    certificate: bytes
    signature: bytes


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


AnyBody = (ServoCP | JawServoJP | MeasuredCP | MeasuredJS | MeasuredCF | SafetyEvent | Status
           | VideoFrame | SyncRequest | SyncReply | KeyOffer | KeyAccept | ControlRequest
           | CommandBundle | StateBundle)
"""Every message body."""


@dataclass(frozen=True, slots=True)
class Message:
    """One body with its sender's ``session`` instance id [u64], its ``seq`` [u64] per
    sender and stream, its send time ``sent_ns`` [ns, sender clock], and the
    authentication ``tag`` it ended with (empty: none). Nothing here checks a tag:
    ``security.tags`` does."""

    session: int
    seq: int
    sent_ns: int
    body: AnyBody
    tag: bytes = b""


__all__ = [
    "AnyBody",
    "Command",
    "CommandBundle",
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
    "SafetyCause",
    "SafetyEvent",
    "ServoCP",
    "StateBundle",
    "Status",
    "SyncReply",
    "SyncRequest",
    "VideoFrame",
]
