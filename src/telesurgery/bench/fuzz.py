"""``bench fuzz``: bad input at scale through the codec and the safety supervisor.

Two sources (``STRUCTURED_SHARE`` of ``count`` from the first, the rest from the second):

- *structured*: Hypothesis builds a valid body of every message type, then perturbs
  its fields (NaN, infinities, huge and negative numbers, wrong arm names, wrong
  lengths, out-of-range integers, stray tags) and sometimes the bytes it encodes to
  (truncated, extended, one byte set);
- *mutated*: real messages (``seed_messages``: the real types, built around the real
  robot's tool poses and the supervisor's own status) encoded, then bit-flipped,
  overwritten, truncated, extended, spliced and duplicated in part.

Every message goes as the patient node takes it in: ``transport.codec.decode``, then
each command of a bundle (any other body whole) to ``Supervisor.submit``, then one servo
tick (``Supervisor.tick``, ``Robot.step``) of the MuJoCo robot. The supervisor starts
with every arm HELD. A held arm, or one armed by a clutched command since, must never
move; a released command aligned on the tool after the clutch engages an arm (the clutch
cycle, by design), which then may move toward a target within the engage tolerance, and
is held again at once, so that the next message meets a held arm once more. Commands
arrive at the instant the real messages were built for, so that freshness does not hide
the checks behind it.

Outcome: ``crashes`` (anything raised but ``CodecError`` from the codec, anything at all
from the supervisor), ``motions`` (a tick that changed the commanded pose of a held or
armed arm, or took an engaging arm beyond the engage tolerance), and the account: every
message is refused by the codec or decoded, every command it carries is accepted or
refused by the supervisor for a counted reason, and the supervisor's own counters say
the same.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import random
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from telesurgery.config import SafetyConfig
from telesurgery.errors import CodecError, ConfigError
from telesurgery.messages import (
    MAX_BUNDLED,
    AnyBody,
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
    SafetyCause,
    SafetyEvent,
    ServoCP,
    StateBundle,
    Status,
    SyncReply,
    SyncRequest,
    VideoFrame,
)
from telesurgery.robots.base import Robot
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.safety import Supervisor
from telesurgery.safety.supervisor import ENGAGE_TOLERANCE_M
from telesurgery.transport.codec import HEADER_SIZE, TAG_SIZE, decode, encode
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState, Wrench

NOW_NS: Final = 10**15
"""The instant [ns] every message is received at and the real ones were built for."""
PERIOD_NS: Final = 1_000_000
CONSOLE: Final = 0x0C0450_1E
"""The session id of the real messages' console."""
HOLD_MATCH_M: Final = 1e-6
"""How close [m] a held arm's new setpoint must be to where it measured itself."""
PROGRESS_EVERY: Final = 100_000
KEPT: Final = 20
"""Crashes and motions kept with their input (the counts go on)."""
INTERESTING_F64: Final = (float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 0.0, -0.0,
                          5e-324, 1e-300)
INTERESTING_I64: Final = (0, -1, 2**63 - 1, -(2**63), 1, NOW_NS, NOW_NS + 1)
INTERESTING_BYTES: Final = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
Feed = Callable[[Message], None]


# ---- real messages ----------------------------------------------------------------------


def seed_messages(robot: Robot, supervisor: Supervisor) -> list[Message]:
    """Real messages of every type, as the nodes send them: the console's commands at the
    tools' poses (clutched and not, bundled and alone), the patient's state and events,
    its status (the supervisor's own snapshot), a video frame, clock sync, key exchange
    and control requests; tagged and untagged."""
    sent = NOW_NS - PERIOD_NS
    arms = list(robot.arms)
    tips = {a: robot.arms[a].setpoint_cp() for a in arms}
    servo = [ServoCP(a, tips[a], sent - PERIOD_NS, clutch) for a in arms
             for clutch in (True, False)]
    jaw = [JawServoJP(a, 0.2, sent - PERIOD_NS) for a in arms]
    states = tuple(MeasuredCP(a, tips[a], tips[a], 0.1, 7, sent - 5 * PERIOD_NS,
                              OperatingState.ENABLED, ArmMode.FOLLOWING) for a in arms)
    bodies: list[AnyBody] = [
        *servo, *jaw,
        CommandBundle(tuple(b for a in arms for b in (servo[2 * arms.index(a) + 1],
                                                      jaw[arms.index(a)]))),
        CommandBundle(tuple(servo[2 * i] for i in range(len(arms)))),
        StateBundle(states), states[0],
        MeasuredJS(arms[0], (0.1, -0.2, 0.12, 0.0, 0.3, -0.3, 0.1), (0.0,) * 7),
        MeasuredCF(arms[0], Wrench((0.1, -0.2, 1.5), (0.0, 0.01, 0.0))),
        SafetyEvent(SafetyState.HOLD, SafetyState.ENGAGED, OperatingState.ENABLED,
                    SafetyCause.WATCHDOG, "watchdog: no valid command for 50.1 ms", arms[0],
                    ArmMode.FOLLOWING, ArmMode.HELD),
        SafetyEvent(SafetyState.ESTOP, SafetyState.ENGAGED, OperatingState.ENABLED,
                    SafetyCause.ESTOP, "emergency stop requested"),
        Status({"node": "patient", "safety": supervisor.snapshot()}),
        VideoFrame("ecm", 640, 480, True, 12, sent, 7, sent - 40 * PERIOD_NS,
                   b"\x00\x00\x00\x01\x67\x42\xc0\x1e" + bytes(range(64))),
        SyncRequest("fibre"),
        SyncReply("5g", 3, sent - 60 * PERIOD_NS, sent - 30 * PERIOD_NS),
        KeyOffer(bytes(range(32)), b"\x30\x82" + bytes(300), bytes(64)),
        KeyAccept(CONSOLE, bytes(range(32, 64)), b"\x30\x82" + bytes(280), bytes(64)),
        ControlRequest(ControlAction.REQUEST, "surgeon"),
        ControlRequest(ControlAction.GRANT, "backup", CONSOLE),
    ]
    return [Message(CONSOLE, 100 + i, sent, body, tag)
            for i, body in enumerate(bodies) for tag in (b"", bytes(range(TAG_SIZE)))]


# ---- byte mutation ----------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes]) -> bytes:
    """``data`` after one to three random mutations: bits flipped, bytes set, an 8-byte
    field overwritten with a NaN, an infinity or an extreme integer, a header byte
    changed, truncated, extended, spliced with another message of ``corpus``, or a
    part repeated."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        n = len(out)
        if op == 0 and n:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(n)] = rng.choice((*INTERESTING_BYTES, rng.randrange(256)))
        elif op == 2 and n >= HEADER_SIZE + 8:
            i = rng.randrange(HEADER_SIZE, n - 7)
            value = (struct.pack("<d", rng.choice(INTERESTING_F64)) if rng.random() < 0.5
                     else struct.pack("<q", rng.choice(INTERESTING_I64)))
            out[i:i + 8] = value
        elif op == 3 and n >= HEADER_SIZE:
            out[rng.randrange(2, 6)] = rng.randrange(256)  # version, type, flags, reserved
        elif op == 4:
            del out[rng.randrange(n + 1):]
        elif op == 5:
            out += rng.randbytes(rng.randint(1, 64))
        elif op == 6:
            other = rng.choice(corpus)
            out = out[:rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1):]
        elif op == 7 and n:
            i = rng.randrange(n)
            j = rng.randrange(i, n + 1)
            out[j:j] = out[i:j]
        elif op == 8 and n > HEADER_SIZE:
            # A length or count byte of the body: the first bytes after the header are the
            # arm's or path's length, or a bundle's count.
            i = HEADER_SIZE + rng.randrange(min(4, n - HEADER_SIZE))
            out[i] = (out[i] + rng.choice((-1, 1, 2, 16, 128))) % 256
    return bytes(out)


# ---- the judge --------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened to every message fed."""

    fed: int = 0
    structured: int = 0
    mutated: int = 0
    encode_refused: Counter[str] = field(default_factory=Counter)
    """Built messages the codec would not encode, by ``CodecReason``."""
    decode_refused: Counter[str] = field(default_factory=Counter)
    """Bytes the codec would not decode, by ``CodecReason``."""
    decoded: int = 0
    commands: int = 0
    """Bodies handed to the supervisor (each command of a bundle, any other body whole)."""
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """The supervisor's verdicts, by ``Reason``."""
    engaged: int = 0
    """Messages that engaged an arm by the clutch cycle (it was then held again)."""
    crashes: Counter[str] = field(default_factory=Counter)
    """Errors that should never be, by where: ``encode``, ``decode`` (anything but
    ``CodecError``), ``submit``, ``tick`` (anything at all)."""
    crash_examples: list[dict[str, Any]] = field(default_factory=list)
    motions: int = 0
    motion_examples: list[dict[str, Any]] = field(default_factory=list)


def _example(data: bytes | None, msg: Message | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {"what": what}
    if data is not None:
        out["bytes_hex"] = data[:512].hex()
    if msg is not None:
        out["message"] = repr(msg)[:1000]
    return out


class HeldSupervisor:
    """The supervisor over ``robot``, enabled, every arm HELD; judges what it is fed."""

    def __init__(self, robot: Robot, tally: Tally) -> None:
        self.robot = robot
        self.tally = tally
        self._held: set[str] = set()
        """Arms the supervisor held during the message being judged (from its events)."""
        self.sup = Supervisor(robot, SafetyConfig(), self._on_event,
                              period_s=PERIOD_NS * 1e-9, clock=lambda: NOW_NS)
        robot.enable()
        self.sup.enable()
        self._tick()
        self._reference = self._setpoints()

    def _on_event(self, ev: SafetyEvent) -> None:
        if ev.arm is not None and ev.mode_after is ArmMode.HELD:
            self._held.add(ev.arm)

    def _tick(self) -> None:
        self.sup.tick(NOW_NS)
        self.robot.step(PERIOD_NS * 1e-9)

    def _setpoints(self) -> dict[str, Pose]:
        return {name: arm.setpoint_cp() for name, arm in self.robot.arms.items()}

    def bytes_in(self, data: bytes) -> None:
        """Decode ``data`` as the patient node does; judge the message if it decodes."""
        t = self.tally
        t.fed += 1
        try:
            msg = decode(data)
        except CodecError as exc:
            t.decode_refused[exc.reason.value] += 1
            return
        except Exception as exc:  # any other error is the finding
            self._crash("decode", data, None, exc)
            return
        t.decoded += 1
        self.message_in(msg, data)

    def built_in(self, msg: Message) -> bytes | None:
        """Encode ``msg``; its bytes, or None where the codec refused it (counted)."""
        try:
            return encode(msg)
        except CodecError as exc:
            self.tally.fed += 1
            self.tally.encode_refused[exc.reason.value] += 1
        except Exception as exc:  # any other error is the finding
            self.tally.fed += 1
            self._crash("encode", None, msg, exc)
        return None

    def message_in(self, msg: Message, data: bytes) -> None:
        """Hand ``msg``'s commands to the supervisor, tick once, check nothing moved."""
        t = self.tally
        bodies: Sequence[AnyBody] = (msg.body.commands if isinstance(msg.body, CommandBundle)
                                     else (msg.body,))
        self._held.clear()
        for body in bodies:
            t.commands += 1
            try:
                verdict = self.sup.submit(msg, NOW_NS, body)
            except Exception as exc:  # it must never raise
                self._crash("submit", data, msg, exc)
                continue
            if verdict.reason is None:
                t.accepted += 1
            else:
                t.refused[verdict.reason.value] += 1
        # Where each arm is as the tick begins: a hold in it stops the arm there.
        where = {name: arm.measured_cp() for name, arm in self.robot.arms.items()}
        try:
            self._tick()
        except Exception as exc:  # it must never raise
            self._crash("tick", data, msg, exc)
        moved, engaged = [], []
        for name, pose in self._setpoints().items():
            if self.sup.mode(name) in (ArmMode.HELD, ArmMode.ARMED):
                if pose == self._reference[name]:
                    continue
                # A hold (a new console session holds an armed arm) commands the arm to
                # where it measures itself: still settling from an engagement, it is not
                # quite where it was commanded last. Anywhere else is a motion.
                if name in self._held and pose.distance(where[name]) <= HOLD_MATCH_M:
                    self._reference[name] = pose
                else:
                    moved.append(name)
            else:
                engaged.append(name)
                if pose.distance(self._reference[name]) > ENGAGE_TOLERANCE_M:
                    moved.append(name)
        t.engaged += bool(engaged)
        if moved:
            t.motions += 1
            if len(t.motion_examples) < KEPT:
                t.motion_examples.append(_example(data, msg, f"moved {moved}"))
        if moved or engaged:
            self.sup.hold("fuzz: back to held")
            self._tick()
            # The hold itself stops the arm where it measures it (its own settling), the
            # one change to a setpoint not made by what was fed.
            self._reference = self._setpoints()

    def _crash(self, where: str, data: bytes | None, msg: Message | None,
               exc: Exception) -> None:
        self.tally.crashes[where] += 1
        if len(self.tally.crash_examples) < KEPT:
            where_raised = traceback.format_exception(exc)[-2].strip()
            self.tally.crash_examples.append(
                _example(data, msg, f"{where}: {exc!r} at {where_raised}"))

    def supervisor_refusals(self) -> dict[str, int]:
        """The supervisor's own counters, by reason name, zeros left out."""
        return {r.value: n for r, n in self.sup.rejections().items() if n}


# ---- structured fuzzing -----------------------------------------------------------------

BATCH: Final = 8
"""Messages built per Hypothesis example: its bookkeeping of an example costs more than
building one message."""
STRUCTURED_SHARE: Final = 0.1
"""The share of ``count`` built by Hypothesis, the rest mutated: Hypothesis takes about
3.4 ms of CPU to build a message, mutating one and judging it about 60 us (measured on
the 2-core machine)."""


@functools.cache
def _wild(kind: Any) -> Any:
    """A Hypothesis strategy of bad values for a field of type ``kind`` (``tuple``: a tuple
    of floats); None for a field left alone (a flag: the wire has no third value but its
    byte, which the byte perturbations reach). Built once a type: a strategy built afresh
    at every draw is validated afresh, which cost more than the drawing."""
    from hypothesis import strategies as st

    wild_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                           st.sampled_from(INTERESTING_F64))
    three = st.tuples(wild_float, wild_float, wild_float)
    by_kind: dict[type, Any] = {
        int: st.one_of(st.sampled_from((*INTERESTING_I64, -(2**63) - 1, 2**64, -5)),
                       st.integers(-(2**65), 2**65)),
        float: wild_float,
        str: st.one_of(st.sampled_from(BAD_NAMES), st.text(max_size=300)),
        bytes: st.binary(max_size=80),
        Pose: st.builds(Pose, three, st.tuples(wild_float, wild_float, wild_float, wild_float)),
        Wrench: st.builds(Wrench, three, three),
        dict: st.dictionaries(st.text(max_size=8), st.one_of(
            st.none(), wild_float, st.integers(), st.text(max_size=8)), max_size=8),
        tuple: st.lists(wild_float, max_size=40).map(tuple),
    }
    if issubclass(kind, enum.Enum):
        return st.sampled_from(kind)
    return None if kind is bool else by_kind.get(kind)


def _wild_for(value: Any) -> Any:
    """``_wild`` for a field holding ``value``; None for a tuple of anything but floats (a
    bundle's bodies, each perturbed itself)."""
    if isinstance(value, tuple):
        return _wild(tuple) if all(isinstance(v, float) for v in value) else None
    return _wild(value.__class__)


BAD_NAMES: Final = ("", "psm3", "PSM1", "ecm", "psm1/", "psm*", "psm 1", "psm1\x00", "\u03c81",
                    "\ud800", "a" * 255, "a" * 256)
"""Names no arm, path or role has, some of which the wire cannot carry (a lone surrogate
is no UTF-8 at all)."""


def _structured(arms: Sequence[str], tips: dict[str, Pose]) -> Any:
    """A Hypothesis strategy of (message, byte perturbation): a valid message of any type
    near the real ones, zero to two of its body's fields and of its header's replaced
    by bad values (``_wild_for``), and sometimes its bytes cut, grown or one set."""
    from hypothesis import strategies as st

    @st.composite
    def perturbed(draw: Any, valid: Any) -> Any:
        obj = draw(valid)
        for _ in range(draw(st.integers(0, 2))):
            bad = {f.name: w for f in fields(obj)
                   if (w := _wild_for(getattr(obj, f.name))) is not None}
            if not bad:
                break
            name = draw(st.sampled_from(sorted(bad)))
            # A value the type itself refuses (a safety event's arm without its modes) is
            # not a message anyone can build, so the field keeps its valid value.
            with contextlib.suppress(ValueError, TypeError):
                obj = replace(obj, **{name: draw(bad[name])})
        return obj

    arm = st.sampled_from(list(arms))
    sample_ns = st.integers(NOW_NS - 3 * PERIOD_NS, NOW_NS - 2 * PERIOD_NS)
    sent_ns = st.integers(NOW_NS - 2 * PERIOD_NS, NOW_NS)
    small = st.floats(-0.015, 0.015)

    def near(tip: Pose) -> Any:
        # Within and beyond the 10 mm engage tolerance of the tool's pose.
        return st.builds(lambda dx, dy, dz, q: Pose((tip.position[0] + dx, tip.position[1]
                                                     + dy, tip.position[2] + dz), q),
                         small, small, small,
                         st.sampled_from((tip.orientation, (1.0, 0.0, 0.0, 0.0),
                                          (0.0, 1.0, 0.0, 0.0))))

    servo = st.one_of([st.builds(ServoCP, st.just(a), near(tips[a]), sample_ns, st.booleans())
                       for a in arms])
    jaw = st.builds(JawServoJP, arm, st.floats(-0.7, 1.4), sample_ns)
    command = st.one_of(perturbed(servo), perturbed(jaw))
    pose = arm.map(lambda a: tips[a])
    measured = perturbed(st.builds(MeasuredCP, arm, pose, pose, st.floats(-0.7, 1.4),
                                   st.integers(0, 10**6), sample_ns,
                                   st.sampled_from(OperatingState), st.sampled_from(ArmMode)))
    joints = st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(tuple)
    vec = st.tuples(st.floats(-5.0, 5.0), st.floats(-5.0, 5.0), st.floats(-5.0, 5.0))
    whole = st.builds(SafetyEvent, st.sampled_from(SafetyState), st.sampled_from(SafetyState),
                      st.sampled_from(OperatingState), st.sampled_from(SafetyCause),
                      st.text(max_size=40))
    of_arm = st.builds(SafetyEvent, st.sampled_from(SafetyState),
                       st.sampled_from(SafetyState), st.sampled_from(OperatingState),
                       st.sampled_from(SafetyCause), st.text(max_size=40), arm,
                       st.sampled_from(ArmMode), st.sampled_from(ArmMode))
    status = st.builds(Status, st.dictionaries(st.sampled_from(("node", "safety", "link")),
                                               st.integers() | st.text(max_size=8),
                                               max_size=3))
    path = st.sampled_from(("fibre", "5g"))
    body = st.one_of(
        command, command, command,
        st.lists(command, min_size=1, max_size=MAX_BUNDLED).map(
            lambda c: CommandBundle(tuple(c))),
        st.lists(command, min_size=1, max_size=4).map(lambda c: CommandBundle(tuple(c))),
        st.lists(measured, min_size=1, max_size=2).map(lambda m: StateBundle(tuple(m))),
        measured,
        perturbed(st.builds(MeasuredJS, arm, joints, joints)),
        perturbed(st.builds(MeasuredCF, arm, st.builds(Wrench, vec, vec))),
        perturbed(whole | of_arm),
        perturbed(status),
        perturbed(st.builds(VideoFrame, st.just("ecm"), st.integers(1, 4096),
                            st.integers(1, 4096), st.booleans(), st.integers(0, 10**6),
                            sent_ns, st.integers(0, 10**6), sample_ns,
                            st.binary(max_size=64))),
        perturbed(st.builds(SyncRequest, path)),
        perturbed(st.builds(SyncReply, path, st.integers(0, 10**6), sample_ns, sent_ns)),
        perturbed(st.builds(KeyOffer, st.binary(min_size=32, max_size=32),
                            st.binary(max_size=64), st.binary(max_size=64))),
        perturbed(st.builds(KeyAccept, st.just(CONSOLE), st.binary(min_size=32, max_size=32),
                            st.binary(max_size=64), st.binary(max_size=64))),
        perturbed(st.builds(ControlRequest, st.sampled_from(ControlAction),
                            st.sampled_from(("surgeon", "backup")),
                            st.integers(0, 2**64 - 1))),
    )
    tag = st.one_of(st.just(b""), st.binary(min_size=TAG_SIZE, max_size=TAG_SIZE))
    message = perturbed(st.builds(Message, st.sampled_from((CONSOLE, CONSOLE + 1)),
                                  st.integers(0, 2000), sent_ns, body, tag))
    # What happens to the bytes on the way: nothing (most), cut, grown, or one byte set.
    wire = st.one_of(st.just(("none", 0, 0)), st.just(("none", 0, 0)),
                     st.just(("none", 0, 0)),
                     st.tuples(st.just("truncate"), st.integers(0, 4096), st.just(0)),
                     st.tuples(st.just("extend"), st.integers(1, 64), st.integers(0, 255)),
                     st.tuples(st.just("set"), st.integers(0, 4096), st.integers(0, 255)))
    return st.lists(st.tuples(message, wire), min_size=BATCH, max_size=BATCH)


def _perturb(data: bytes, wire: tuple[str, int, int]) -> bytes:
    kind, a, b = wire
    if kind == "truncate":
        return data[:a % (len(data) + 1)]
    if kind == "extend":
        return data + bytes([b]) * a
    if kind == "set" and data:
        i = a % len(data)
        return data[:i] + bytes([b]) + data[i + 1:]
    return data


def run_structured(judge: HeldSupervisor, count: int, seed: int) -> None:
    """Feed ``count`` Hypothesis-built messages (reproducible from ``seed``)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    robot = judge.robot
    tips = {name: arm.setpoint_cp() for name, arm in robot.arms.items()}
    left = [count]

    @hypothesis_seed(seed)
    @settings(max_examples=-(-count // BATCH), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(_structured(list(robot.arms), tips))
    def feed(cases: list[tuple[Message, tuple[str, int, int]]]) -> None:
        for msg, wire in cases[:left[0]]:
            left[0] -= 1
            judge.tally.structured += 1
            data = judge.built_in(msg)
            if data is not None:
                judge.bytes_in(_perturb(data, wire))

    feed()
    if left[0]:
        # Hypothesis ends a run early once it has tried everything it could tell apart;
        # these strategies have no such end, but the count must hold all the same.
        raise ConfigError(f"Hypothesis stopped {left[0]} messages short of {count}; "
                          "run again with another --seed")


def run_mutated(judge: HeldSupervisor, count: int, seed: int,
                progress: Callable[[str], None] = lambda _line: None) -> None:
    """Feed ``count`` mutations of the real messages (reproducible from ``seed``); a
    progress line every ``PROGRESS_EVERY`` messages."""
    rng = random.Random(seed)
    corpus = [encode(m) for m in seed_messages(judge.robot, judge.sup)]
    for i in range(1, count + 1):
        judge.tally.mutated += 1
        judge.bytes_in(mutate(rng, rng.choice(corpus), corpus))
        if i % PROGRESS_EVERY == 0:
            t = judge.tally
            progress(f"{i}/{count} mutated; crashes {t.crashes.total()}, motions {t.motions}")


# ---- the benchmark ----------------------------------------------------------------------


def bench_fuzz(count: int, seed: int = 0,
               progress: Callable[[str], None] = lambda _line: None,
               structured_share: float = STRUCTURED_SHARE) -> dict[str, Any]:
    """Fuzz ``count`` messages (``structured_share`` of them built by Hypothesis, the rest
    mutated) through the codec and the supervisor over the MuJoCo robot; the JSON (see
    the module's docstring).

    ``ConfigError`` (one line) for a count under 2, a share outside 0 to 1, or no
    Hypothesis installed.
    """
    if count < 2:
        raise ConfigError(f"--count must be 2 or more, got {count}")
    if not 0.0 <= structured_share <= 1.0:
        raise ConfigError(f"--structured is a share from 0 to 1, got {structured_share}")
    try:
        import hypothesis  # noqa: F401 - checked here, used in run_structured
    except ImportError as exc:
        raise ConfigError("bench fuzz needs Hypothesis: pip install 'telesurgery[test]'"
                          ) from exc
    started = time.monotonic()
    tally = Tally()
    judge = HeldSupervisor(SimRobot(), tally)
    structured = round(count * structured_share)
    progress(f"{structured} structured messages (Hypothesis, seed {seed})")
    run_structured(judge, structured, seed)
    progress(f"{count - structured} mutations of real messages (seed {seed})")
    run_mutated(judge, count - structured, seed, progress)
    wall = time.monotonic() - started
    own = judge.supervisor_refusals()
    codec_refused = sum(tally.encode_refused.values()) + sum(tally.decode_refused.values())
    crashes = tally.crashes
    return {
        "what": "fuzzed messages through the codec and the safety supervisor over the "
                "MuJoCo robot, every arm held: crashes, motions of a held arm, and every "
                "message and command accounted for",
        "count": tally.fed,
        "seed": seed,
        "sources": {"structured": tally.structured, "mutated": tally.mutated},
        "crashes": crashes.total(),
        "crashes_by_where": dict(crashes),
        "motions": tally.motions,
        "codec": {"encode_refused": dict(tally.encode_refused),
                  "decode_refused": dict(tally.decode_refused),
                  "refused": codec_refused, "decoded": tally.decoded},
        "supervisor": {"commands": tally.commands, "accepted": tally.accepted,
                       "refused": sum(tally.refused.values()),
                       "refused_by_reason": dict(tally.refused),
                       "own_counters": own},
        "accounted": {
            "messages": codec_refused + tally.decoded + crashes["encode"]
            + crashes["decode"] == tally.fed,
            "commands": tally.accepted + sum(tally.refused.values()) + crashes["submit"]
            == tally.commands,
            "supervisor_counters": own == {r: n for r, n in tally.refused.items() if n},
            "what": "every message refused by the codec or decoded; every command accepted "
                    "or refused for a reason; the supervisor's own counters equal the "
                    "verdicts it returned",
        },
        "engaged": tally.engaged,
        "accepted_why": "a held arm accepts a clutched command (it arms the arm); an armed "
                        "one a jaw command it does not apply, and a released command "
                        "aligned on the tool, which engages it (the judge then holds it "
                        "again)",
        "crash_examples": tally.crash_examples,
        "motion_examples": tally.motion_examples,
        "wall_s": round(wall, 1),
        "messages_per_s": round(tally.fed / wall, 1) if wall > 0 else None,
    }


__all__ = ["HeldSupervisor", "Tally", "bench_fuzz", "mutate", "run_mutated", "run_structured",
           "seed_messages"]
