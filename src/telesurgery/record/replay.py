"""Replay: a recorded session's commands through a fresh safety supervisor into the simulator.

The patient node's servo loop runs tick k (supervisor, then one physics step)
and publishes each arm's ``measured_cp`` every E ticks, numbered 1, 2, ... from
tick 0: so ``measured_cp`` number q was taken right after tick (q - 1) E, and
its send time [ns, patient clock] tells when that tick ran. Replay rebuilds the
loop in simulated time from those anchors: tick k runs at the wall time
interpolated between them (a stalled real loop that skipped ticks is replayed
with the ticks it really ran, not with wall time).

Each recorded command (``servo_cp``, ``jaw/servo_jp``) must reach the replayed
supervisor before the same tick that it reached the real one. Its arrival is
estimated as its send time plus the clock offset plus a delay, fitted so that
the command each arm tracked at each anchor (``measured_cp.applied_seq``)
matches best; the recorded ``applied_seq`` of following arms then pins every
pose command to the anchor interval it was applied in. What remains uncertain is
the tick within an interval (E = 2 at the default 1 kHz / 500 Hz): a shift of
one millisecond, micrometres at surgical speeds.

The supervisor gets a simulated clock (the replayed tick's wall time), so its
watchdog, command ages and clutch logic decide as they did; ``SimRobot`` steps
its fixed 1 ms. What replay cannot reproduce exactly is contact: a grasped or
pushed ring is a chaotic system, and the arm feels its contact forces. Nor
does it have the commands the recorder missed (a recorder starved of CPU on a
loaded machine loses some; gaps in their sequence numbers show which, and the
patient had them): replay reconstructs each from its recorded neighbours
(linear in time, position and jaw, normalised linear in orientation), so that
the supervisor's watchdog sees the stream the real one saw, and counts them. Control
ownership follows the recorded owner announcements (each says since when its owner has
held control), so a console that did not hold control is refused again.
The deviation is therefore reported for the whole trajectory, and judged
against the tolerance on the samples in free space (no contact on the
instrument in the recording or in the replay) away from reconstructed commands
(up to ``GAP_SETTLE_S`` after them) and away from the holds the replay cannot repeat:
where the recorded arm was held by a watchdog whose cause (commands that arrived late) the
recording cannot show, the replayed arm went on following, and the engagements after such
a hold come at other ticks; so where one arm follows and the other does not, up to
``GAP_SETTLE_S`` after they agree again, the samples are counted and not judged (the
transitions recorded and replayed are reported beside them).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from telesurgery.config import SafetyConfig
from telesurgery.errors import ConfigError, RecordingError
from telesurgery.geometry import FloatArray, quat_angle, quat_normalize
from telesurgery.messages import (
    JawServoJP,
    MeasuredCF,
    MeasuredCP,
    Message,
    SafetyCause,
    SafetyEvent,
    ServoCP,
    Status,
)
from telesurgery.record.audit import AuditKind, record_object
from telesurgery.record.layout import TRAIL_SUFFIX, audit_dir
from telesurgery.record.reader import Recording
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, TASK_LAYOUTS
from telesurgery.safety.supervisor import Supervisor
from telesurgery.types import ArmMode, Pose, SafetyState

log = logging.getLogger(__name__)

FREE_SPACE_TOLERANCE_MM: Final = 0.25
"""Default largest tool-tip deviation [mm] where replay is judged. Our choice: with every
command in its recorded anchor interval, what remains is a one-tick uncertainty, measured
at about 0.01 mm RMS on demo recordings and up to 0.11 mm at worst on a loaded two-core
machine (where the recorder timestamps late); a quarter of a millimetre is above that
and far below what a surgeon sees, so exceeding it means the replay did not reproduce
the session (a supervisor or simulator that decides differently is off by millimetres)."""
GAP_SETTLE_S: Final = 0.1
"""How long [s] after reconstructed commands the replay is not judged: the motion limiter
absorbs a difference in the target within tens of milliseconds."""
DELAY_GRID_MS: Final = np.arange(0.0, 5.001, 0.05)
"""Candidate command delays [ms] (send -> patient), fitted against the anchors."""
_FOLLOWING: Final = ArmMode.FOLLOWING
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ArmDeviation:
    """How far the replayed tool tip ran from the recorded one, over ``samples`` anchors.

    Positions [mm], orientations [rad]. ``judged_*``: over the ``judged_samples`` in
    free space away from recording gaps; ``contact_samples`` had contact on the
    instrument, ``gap_samples`` came up to ``GAP_SETTLE_S`` after ``missing_commands``
    (missed by the recorder, reconstructed);
    ``held_samples``: one of the recorded and replayed arms following and the other not (a
    hold the replay could not repeat, and the engagement after it), up to ``GAP_SETTLE_S``
    after;
    ``applied_match``: fraction of the judged samples where the replayed supervisor tracked
    the same command as the recorded one.
    """

    arm: str
    samples: int
    max_mm: float
    rms_mm: float
    max_rad: float
    judged_samples: int
    judged_max_mm: float
    judged_rms_mm: float
    contact_samples: int
    gap_samples: int
    missing_commands: int
    applied_match: float
    held_samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"arm": self.arm, "samples": self.samples, "max_mm": round(self.max_mm, 4),
                "rms_mm": round(self.rms_mm, 4), "max_rad": round(self.max_rad, 5),
                "judged_samples": self.judged_samples,
                "judged_max_mm": round(self.judged_max_mm, 4),
                "judged_rms_mm": round(self.judged_rms_mm, 4),
                "contact_samples": self.contact_samples, "gap_samples": self.gap_samples,
                "missing_commands": self.missing_commands,
                "held_samples": self.held_samples,
                "applied_match": round(self.applied_match, 4)}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did and how close it came; ``ok`` when every arm's judged deviation
    is within ``tolerance_mm``."""

    arms: tuple[ArmDeviation, ...]
    tolerance_mm: float
    ticks: int
    commands: int
    delay_ms: float
    rejected: dict[str, int]
    recorded_events: int
    """Supervisor transitions in the recording, from enable to the node's stop (excluded)."""
    replayed_events: int
    recorded_watchdog: int
    """Watchdog holds in the recording. A hold caused by commands arriving late at the
    patient (a stall on its side) is not in the recording, so replay may not repeat it."""
    replayed_watchdog: int
    task: dict[str, Any]
    wall_s: float

    @property
    def ok(self) -> bool:
        """True when every arm stayed within the tolerance where it is judged."""
        return bool(self.arms) and all(a.judged_max_mm <= self.tolerance_mm
                                       for a in self.arms)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"ok": self.ok, "tolerance_mm": self.tolerance_mm, "ticks": self.ticks,
                "sim_s": round(self.ticks * 1e-3, 3), "commands": self.commands,
                "delay_ms": round(self.delay_ms, 3), "rejected": self.rejected,
                "safety_events": {"recorded": self.recorded_events,
                                  "replayed": self.replayed_events,
                                  "watchdog_recorded": self.recorded_watchdog,
                                  "watchdog_replayed": self.replayed_watchdog},
                "task": self.task, "wall_s": round(self.wall_s, 3),
                "arms": [a.as_dict() for a in self.arms]}


@dataclass
class _Session:
    """The recorded pieces replay needs."""

    commands: list[Message] = field(default_factory=list)
    measured: dict[str, list[Message]] = field(default_factory=dict)
    contact: dict[str, dict[int, bool]] = field(default_factory=dict)
    events: list[SafetyEvent] = field(default_factory=list)
    servo_rate_hz: float = 1000.0
    offset_ns: int = 0
    task: dict[str, Any] = field(default_factory=dict)
    owners: dict[int, int | None] = field(default_factory=dict)
    """Control ownership as announced: the time of each change [ns, patient clock] ->
    the owner's console session (None: nobody, control with the bedside)."""


def _load(recording: Recording) -> _Session:
    s = _Session()
    seen: set[tuple[str, int, int]] = set()
    for rec in recording.messages():
        msg, body = rec.message, rec.message.body
        if isinstance(body, ServoCP | JawServoJP):
            # A command recorded twice (two routes to the recorder) is one command.
            ident = (rec.key, msg.session, msg.seq)
            if ident not in seen:
                seen.add(ident)
                s.commands.append(msg)
        elif isinstance(body, MeasuredCP):
            s.measured.setdefault(body.arm, []).append(msg)
        elif isinstance(body, MeasuredCF):
            touching = any(f != 0.0 for f in body.wrench.force)
            s.contact.setdefault(body.arm, {})[msg.seq] = touching
        elif isinstance(body, SafetyEvent):
            # The node's own stop (disable) is not a decision to replay, and its last
            # message may not reach the recorder before the node is gone.
            if body.state is not SafetyState.DISABLED:
                s.events.append(body)
        elif isinstance(body, Status) and rec.key.endswith("/control/owner"):
            _owner(s, msg.sent_ns, body.data)
        elif isinstance(body, Status) and body.data.get("node") == "patient":
            _patient_status(s, body.data)
    for arm, msgs in s.measured.items():
        # One copy per number: state goes out on every path and the main session.
        unique = {m.seq: m for m in msgs}
        s.measured[arm] = [unique[q] for q in sorted(unique)]
    return s


def _owner(s: _Session, sent_ns: int, data: dict[str, Any]) -> None:
    """One owner announcement: who holds control since when (``since_s`` before it was
    sent, on the patient's clock, so the change is placed to the millisecond)."""
    since, owner, session = data.get("since_s"), data.get("owner"), data.get("session")
    if owner is None or not isinstance(since, int | float):
        return  # nobody has claimed control yet: any console may, as on the patient
    try:
        who = int(session, 16) if isinstance(session, str) else None
    except ValueError:
        return
    s.owners.setdefault(sent_ns - round(since * 1e9), who)


def _admits(owners: dict[int, int | None], clock: _Clock) -> Callable[[int], bool] | None:
    """The recorded ownership as the replayed supervisor's check (None: nothing recorded,
    any console commands)."""
    if not owners:
        return None
    changes = sorted(owners)
    who = [owners[t] for t in changes]

    def admits(session: int) -> bool:
        i = bisect.bisect_right(changes, clock.now_ns) - 1
        return i < 0 or who[i] == session

    return admits


def _patient_status(s: _Session, data: dict[str, Any]) -> None:
    rate = data.get("servo", {}).get("rate_hz")
    if isinstance(rate, int | float) and rate > 0:
        s.servo_rate_hz = float(rate)
    offset = data.get("link", {}).get("clock", {}).get("offset_ms")
    if isinstance(offset, int | float):
        s.offset_ns = round(offset * 1e6)
    task = data.get("task")
    if isinstance(task, dict):
        s.task = task


def _safety_config(directory: Path) -> SafetyConfig:
    """The safety limits the patient ran with, from its audit trail's ``session_start``
    (defaults when the session has no trail)."""
    for trail in sorted(audit_dir(directory).glob("patient-*" + TRAIL_SUFFIX)):
        try:
            first = record_object(trail.read_text(encoding="utf-8").split("\n", 1)[0])
        except (OSError, ValueError):
            continue
        if first is None:
            continue
        data = first.get("data")
        if (first.get("kind") == AuditKind.SESSION_START and isinstance(data, dict)
                and "safety" in data):
            try:
                return SafetyConfig.model_validate(data["safety"])
            except ValueError as exc:
                raise RecordingError(f"{trail}: session_start holds invalid safety limits "
                                     f"({exc}); the trail is damaged") from exc
    log.info("no patient audit trail with safety limits in %s; replaying with defaults",
             directory)
    return SafetyConfig()


class _Clock:
    """The supervisor's clock during replay: set by the replay loop [ns]."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Tick index <-> wall time [ns] from the anchors (tick, send time)."""

    ticks: IntArray
    walls: FloatArray
    period_ns: int

    def wall(self, tick: IntArray) -> FloatArray:
        """The wall time [ns] each tick ran at."""
        t = np.asarray(tick, dtype=np.float64)
        inside = np.interp(t, self.ticks, self.walls)
        before = self.walls[0] + (t - self.ticks[0]) * self.period_ns
        after = self.walls[-1] + (t - self.ticks[-1]) * self.period_ns
        out: FloatArray = np.where(t < self.ticks[0], before,
                                   np.where(t > self.ticks[-1], after, inside))
        return out

    def tick_after(self, wall_ns: FloatArray) -> IntArray:
        """The first tick that runs after ``wall_ns`` [ns]."""
        w = np.asarray(wall_ns, dtype=np.float64)
        inside = np.interp(w, self.walls, self.ticks)
        before = self.ticks[0] + (w - self.walls[0]) / self.period_ns
        after = self.ticks[-1] + (w - self.walls[-1]) / self.period_ns
        k = np.where(w < self.walls[0], before, np.where(w > self.walls[-1], after, inside))
        out: IntArray = np.maximum(np.floor(k).astype(np.int64) + 1, 0)
        return out


def _timeline(s: _Session, arms: Sequence[str]) -> tuple[_Timeline, int]:
    period_ns = round(1e9 / s.servo_rate_hz)
    ref = max(arms, key=lambda a: len(s.measured[a]))
    seqs = np.array([m.seq for m in s.measured[ref]], dtype=np.int64)
    sent = np.array([m.sent_ns for m in s.measured[ref]], dtype=np.float64)
    if seqs.size < 2:
        raise RecordingError("the recording holds fewer than two measured_cp of any arm; "
                             "nothing to replay against")
    every = max(1, round(float(np.median(np.diff(sent) / np.diff(seqs))) / period_ns))
    return _Timeline((seqs - 1) * every, sent, period_ns), every


@dataclass
class _Anchors:
    """One arm's recorded anchors: tick, applied command, whether following."""

    ticks: IntArray
    applied: IntArray
    following: npt.NDArray[np.bool_]


def _anchors(s: _Session, arm: str, every: int) -> _Anchors:
    msgs = s.measured[arm]
    bodies = [m.body for m in msgs if isinstance(m.body, MeasuredCP)]
    return _Anchors(np.array([(m.seq - 1) * every for m in msgs], dtype=np.int64),
                    np.array([b.applied_seq for b in bodies], dtype=np.int64),
                    np.array([b.mode is _FOLLOWING for b in bodies], dtype=bool))


def _fit_delay(pose_cmds: dict[str, tuple[IntArray, FloatArray]],
               anchors: dict[str, _Anchors], line: _Timeline, offset_ns: int) -> float:
    """The send -> arrival delay [ns] under which the most following anchors track the
    command the recording says they tracked."""
    best, best_score = 0.0, -1
    for d_ms in DELAY_GRID_MS:
        score = 0
        for arm, (seqs, sent) in pose_cmds.items():
            a = anchors[arm]
            if not seqs.size or not a.following.any():
                continue
            arrive_tick = line.tick_after(sent + offset_ns + d_ms * 1e6)
            # The newest command that arrived before each following anchor's tick.
            at = np.searchsorted(arrive_tick, a.ticks[a.following], side="right") - 1
            predicted = np.where(at >= 0, seqs[np.maximum(at, 0)], 0)
            score += int(np.count_nonzero(predicted == a.applied[a.following]))
        if score > best_score:
            best, best_score = float(d_ms * 1e6), score
    return best


def _pin(seqs: IntArray, ticks: IntArray, a: _Anchors) -> IntArray:
    """Move pose commands into the anchor interval the recording says they were applied in.

    A following anchor at tick T tracking command S means commands up to S arrived before
    tick T ran, and later ones after it. Where the anchors contradict themselves (several
    console sessions), the estimate stands.
    """
    f_ticks, f_applied = a.ticks[a.following], a.applied[a.following]
    if not f_ticks.size:
        return ticks
    # Latest: the first following anchor that tracks S or a later command.
    order = np.maximum.accumulate(f_applied)
    i = np.searchsorted(order, seqs, side="left")
    latest = np.where(i < f_ticks.size, f_ticks[np.minimum(i, f_ticks.size - 1)],
                      np.iinfo(np.int64).max)
    # Earliest: just after the last following anchor that tracks an older command.
    j = np.searchsorted(order, seqs, side="left") - 1
    earliest = np.where(j >= 0, f_ticks[np.maximum(j, 0)] + 1, 0)
    pinned: IntArray = np.where(earliest <= latest, np.clip(ticks, earliest, latest), ticks)
    # A command released just before a clutch or a hold is accepted and never applied (the
    # tick after it finds the arm no longer following), so the anchors after the pause say
    # nothing of it: never move a command across an anchor where the arm was not following.
    stopped = a.ticks[~a.following]
    if not stopped.size:
        return pinned
    lo, hi = np.minimum(ticks, pinned), np.maximum(ticks, pinned)
    k = np.searchsorted(stopped, lo, side="right")
    crosses = (k < stopped.size) & (stopped[np.minimum(k, stopped.size - 1)] <= hi)
    kept: IntArray = np.where(crosses, ticks, pinned)
    return kept


def _released(msg: Message) -> bool:
    """A pose command with the clutch released: one that can become the arm's target."""
    return isinstance(msg.body, ServoCP) and not msg.body.clutch


def _sample_ns(msg: Message) -> int:
    body = msg.body
    return body.sample_ns if isinstance(body, ServoCP | JawServoJP) else 0


@dataclass
class _Schedule:
    """Every command with the tick it is submitted before and its estimated arrival [ns],
    in submission order; the fitted delay [ns]; per arm, the tick windows after gaps in
    its recorded pose commands and how many commands are missing."""

    commands: list[tuple[int, int, Message]]
    delay_ns: float
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def after_gap(self, arm: str, tick: int) -> bool:
        """True when ``tick`` falls in one of ``arm``'s gap windows."""
        return any(a <= tick <= b for a, b in self.gaps.get(arm, ()))


def _gaps(sched: _Schedule, arm: str, filled: npt.NDArray[np.bool_], ticks: IntArray,
          settle: int) -> None:
    sched.missing[arm] = sched.missing.get(arm, 0) + int(filled.sum())
    edges = np.flatnonzero(np.diff(np.concatenate(([0], filled.astype(np.int8), [0]))))
    sched.gaps.setdefault(arm, []).extend(
        (int(ticks[a]), int(ticks[b - 1]) + settle) for a, b in zip(edges[::2], edges[1::2],
                                                                     strict=True))


def _lerp(a: float, b: float, f: float) -> float:
    return a + f * (b - a)


def _between(a: Message, b: Message, seq: int) -> Message:
    """Command number ``seq`` of a stream, reconstructed from its neighbours ``a`` and ``b``."""
    f = (seq - a.seq) / (b.seq - a.seq)
    sent = round(_lerp(a.sent_ns, b.sent_ns, f))
    x, y = a.body, b.body
    if isinstance(x, ServoCP) and isinstance(y, ServoCP):
        pa, pb = x.pose.position, y.pose.position
        qa, qb = x.pose.orientation, y.pose.orientation
        # The shorter way round: q and -q are the same rotation.
        k = -1.0 if qa[0] * qb[0] + qa[1] * qb[1] + qa[2] * qb[2] + qa[3] * qb[3] < 0 else 1.0
        pose = Pose((_lerp(pa[0], pb[0], f), _lerp(pa[1], pb[1], f), _lerp(pa[2], pb[2], f)),
                    quat_normalize((_lerp(qa[0], k * qb[0], f), _lerp(qa[1], k * qb[1], f),
                                    _lerp(qa[2], k * qb[2], f), _lerp(qa[3], k * qb[3], f))))
        body: ServoCP | JawServoJP = ServoCP(
            x.arm, pose, round(_lerp(x.sample_ns, y.sample_ns, f)), x.clutch)
    elif isinstance(x, JawServoJP) and isinstance(y, JawServoJP):
        body = JawServoJP(x.arm, _lerp(x.angle, y.angle, f),
                          round(_lerp(x.sample_ns, y.sample_ns, f)))
    else:
        raise RecordingError(f"a stream mixes {type(x).__name__} and {type(y).__name__}; the "
                             "recording is damaged")
    return Message(a.session, seq, sent, body)


def _fill(msgs: list[Message]) -> tuple[list[Message], npt.NDArray[np.bool_]]:
    """A stream (sorted by number) with its missing numbers reconstructed; which are."""
    out: list[Message] = []
    filled: list[bool] = []
    for a, b in itertools.pairwise(msgs):
        out.append(a)
        filled.append(False)
        for seq in range(a.seq + 1, b.seq):
            out.append(_between(a, b, seq))
            filled.append(True)
    if msgs:
        out.append(msgs[-1])
        filled.append(False)
    return out, np.array(filled, dtype=bool)


def _schedule(s: _Session, arms: Sequence[str], line: _Timeline, every: int) -> _Schedule:
    """When each recorded command reaches the replayed supervisor (see the module
    docstring)."""
    anchors = {arm: _anchors(s, arm, every) for arm in arms}
    streams: dict[tuple[str, int, bool], list[Message]] = {}
    for msg in s.commands:
        body = msg.body
        if isinstance(body, ServoCP | JawServoJP):
            streams.setdefault((body.arm, msg.session, isinstance(body, ServoCP)),
                               []).append(msg)
    reconstructed: dict[tuple[str, int, bool], npt.NDArray[np.bool_]] = {}
    for ident, msgs in streams.items():
        msgs.sort(key=lambda m: m.seq)
        streams[ident], reconstructed[ident] = _fill(msgs)
    pose_cmds: dict[str, tuple[IntArray, FloatArray]] = {}
    for (arm, _, is_pose), msgs in streams.items():
        if is_pose and arm in anchors:
            moving = [m for m in msgs if _released(m)]
            pose_cmds[arm] = (np.array([m.seq for m in moving], dtype=np.int64),
                              np.array([m.sent_ns for m in moving], dtype=np.float64))
    delay = _fit_delay(pose_cmds, anchors, line, s.offset_ns)
    sched = _Schedule([], delay)
    settle = round(GAP_SETTLE_S * 1e9 / line.period_ns)
    sessions_per_arm: dict[str, int] = {}
    for arm, _, is_pose in streams:
        sessions_per_arm[arm] = sessions_per_arm.get(arm, 0) + is_pose
    pose_tick: dict[tuple[str, int, int], int] = {}
    for pose_first in (True, False):
        for (arm, session, is_pose), msgs in streams.items():
            if is_pose is not pose_first:
                continue
            sent = np.array([m.sent_ns for m in msgs], dtype=np.float64)
            arrive = sent + s.offset_ns + delay
            ticks = line.tick_after(arrive)
            if is_pose and arm in anchors and sessions_per_arm[arm] == 1:
                seqs = np.array([m.seq for m in msgs], dtype=np.int64)
                moves = np.array([_released(m) for m in msgs], dtype=bool)
                ticks = ticks.copy()
                ticks[moves] = _pin(seqs[moves], ticks[moves], anchors[arm])
            elif not is_pose:
                # A jaw command leaves with the pose command of the same input sample.
                ticks = np.array([pose_tick.get((arm, session, _sample_ns(m)), int(t))
                                  for m, t in zip(msgs, ticks, strict=True)], dtype=np.int64)
            # A stream's commands arrive in order: never schedule one before its elder.
            ticks = np.maximum.accumulate(ticks)
            if is_pose:
                _gaps(sched, arm, reconstructed[(arm, session, is_pose)], ticks, settle)
            for m, t, a in zip(msgs, ticks, arrive, strict=True):
                sched.commands.append((int(t), int(a), m))
                if is_pose:
                    pose_tick[(arm, session, _sample_ns(m))] = int(t)
    sched.commands.sort(key=lambda x: (x[0], x[1], isinstance(x[2].body, JawServoJP),
                                       x[2].seq))
    return sched


def replay(directory: Path, tolerance_mm: float = FREE_SPACE_TOLERANCE_MM,
           arms: Sequence[str] | None = None) -> ReplayResult:
    """Replay the session recorded in ``directory`` and measure how far it ran from the
    recording. Raises ``RecordingError`` when there is nothing to replay."""
    if not (math.isfinite(tolerance_mm) and tolerance_mm > 0):
        raise ConfigError(f"tolerance {tolerance_mm} mm must be positive, e.g. 0.1")
    started = time.perf_counter()
    s = _load(Recording(directory))
    # The recorded task's board: a handover's rings have two tabs the arms grasp.
    robot = SimRobot(TASK_LAYOUTS.get(str(s.task.get("name")), DEFAULT_LAYOUT))
    chosen = [a for a in (arms or robot.arms) if a in s.measured]
    if not chosen:
        raise RecordingError(f"no measured_cp of {list(arms or robot.arms)} in {directory}; "
                             "record the patient's state (telesurgery record or demo --record)")
    if not s.commands:
        raise RecordingError(f"no commands in {directory}, nothing to replay: over dedicated "
                             "control paths (demo --link) commands do not pass the site "
                             "router the recorder listens on")
    line, every = _timeline(s, chosen)
    sched = _schedule(s, chosen, line, every)
    clock = _Clock()
    events: list[SafetyEvent] = []
    sup = Supervisor(robot, _safety_config(directory), events.append,
                     period_s=line.period_ns * 1e-9, arms=list(robot.arms), clock=clock,
                     admits=_admits(s.owners, clock))
    rows = _run(s, sched, line, every, chosen, robot, sup, clock)
    deviations = tuple(_deviation(arm, rows[arm], sched.missing.get(arm, 0)) for arm in chosen)
    return ReplayResult(deviations, tolerance_mm,
                        max((s.measured[a][-1].seq - 1) * every + 1 for a in chosen),
                        len(sched.commands), sched.delay_ns * 1e-6,
                        sup.snapshot()["rejected_by_reason"], len(s.events), len(events),
                        _watchdog(s.events), _watchdog(events),
                        {"recorded": s.task, "replayed": robot.task_status()},
                        time.perf_counter() - started)


def _watchdog(events: list[SafetyEvent]) -> int:
    """How many arms the watchdog held."""
    return sum(1 for ev in events if ev.cause is SafetyCause.WATCHDOG)


_Row = tuple[float, float, bool, bool, bool, bool]
"""distance [m], angle [rad], contact, after a gap, same command tracked, after a hold the
replay did not repeat."""


def _hand_over(handovers: list[tuple[int, int | None]], h: int, until_ns: int,
               sup: Supervisor, clock: _Clock) -> int:
    """Hold for each recorded change of owner up to ``until_ns`` [ns] from index ``h``;
    the index of the next one."""
    while h < len(handovers) and handovers[h][0] <= until_ns:
        at, owner = handovers[h]
        clock.now_ns = max(clock.now_ns, at)
        sup.hold_others(owner, "recorded change of control owner")
        h += 1
    return h


def _run(s: _Session, sched: _Schedule, line: _Timeline, every: int, arms: Sequence[str],
         robot: SimRobot, sup: Supervisor, clock: _Clock) -> dict[str, list[_Row]]:
    """The servo loop in simulated time; compares at every recorded measured_cp."""
    robot.enable()
    sup.enable()
    last_tick = max((s.measured[a][-1].seq - 1) * every for a in arms)
    walls = line.wall(np.arange(last_tick + 2)).astype(np.int64)
    compare = {arm: {(m.seq - 1) * every: m for m in s.measured[arm]} for arm in arms}
    rows: dict[str, list[_Row]] = {a: [] for a in arms}
    dt = line.period_ns * 1e-9
    cmds, i = sched.commands, 0
    # Every change of owner after the first claim held the other consoles' arms at once on
    # the patient (PatientControl), not at the new owner's first command.
    handovers, h = sorted(s.owners.items())[1:], 0
    settle = round(GAP_SETTLE_S * 1e9 / line.period_ns)
    apart_until = dict.fromkeys(arms, -1)
    for k in range(last_tick + 1):
        while i < len(cmds) and cmds[i][0] <= k:
            _, arrive, msg = cmds[i]
            # Received within the interval before tick k, as close to the estimate as fits.
            at = min(max(arrive, int(walls[k - 1]) + 1 if k else arrive), int(walls[k]) - 1)
            h = _hand_over(handovers, h, at, sup, clock)
            clock.now_ns = at
            sup.submit(msg, clock.now_ns)
            i += 1
        h = _hand_over(handovers, h, int(walls[k]), sup, clock)
        clock.now_ns = int(walls[k])
        sup.tick(clock.now_ns)
        robot.step(dt)
        for arm in arms:
            rec = compare[arm].get(k)
            if rec is None or not isinstance(rec.body, MeasuredCP):
                continue
            ours, theirs = robot.arms[arm].measured_cp(), rec.body.measured
            contact = s.contact.get(arm, {}).get(rec.seq, False) or any(
                f != 0.0 for f in robot.arms[arm].measured_cf().force)
            if (rec.body.mode is _FOLLOWING) is not (sup.mode(arm) is _FOLLOWING):
                apart_until[arm] = k + settle
            rows[arm].append((ours.distance(theirs),
                              quat_angle(ours.orientation, theirs.orientation), contact,
                              sched.after_gap(arm, k),
                              sup.applied(arm)[0] == rec.body.applied_seq,
                              k <= apart_until[arm]))
    return rows


def _deviation(arm: str, rows: list[_Row], missing: int) -> ArmDeviation:
    if not rows:
        return ArmDeviation(arm, 0, math.nan, math.nan, math.nan, 0, math.nan, math.nan, 0, 0,
                            missing, 0.0)
    a = np.array(rows, dtype=np.float64)
    dist_mm, angle = a[:, 0] * 1e3, a[:, 1]
    contact, gap, match, held = a[:, 2] > 0, a[:, 3] > 0, a[:, 4] > 0, a[:, 5] > 0
    keep = ~contact & ~gap & ~held
    judged = dist_mm[keep]
    return ArmDeviation(arm, len(rows), float(dist_mm.max()),
                        float(np.sqrt(np.mean(dist_mm ** 2))), float(angle.max()),
                        int(judged.size), float(judged.max()) if judged.size else 0.0,
                        float(np.sqrt(np.mean(judged ** 2))) if judged.size else 0.0,
                        int(contact.sum()), int((gap & ~contact).sum()), missing,
                        float(match[keep].mean()) if judged.size else 0.0,
                        int((held & ~contact & ~gap).sum()))


__all__ = ["FREE_SPACE_TOLERANCE_MM", "ArmDeviation", "ReplayResult", "replay"]
