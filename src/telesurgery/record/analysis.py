"""What a recorded session says, as numbers: the series and tables the report draws.

One pass over the recording (and the audit trails beside it) collects, on one
time axis (seconds since the first recorded message, on the recorder's clock):

- control latency, two ways. *Measured by the safety supervisor*: the input
  sample -> accepted percentiles each patient status carries (its last few
  thousand commands). *Derived from the recording*: at every state publication
  of a following arm whose command changed, publication time minus the input
  sample time of the command its setpoint now tracks (``measured_cp.sent_ns -
  applied_sample_ns``, less the clock offset): input sample -> applied by a
  servo tick, an upper bound by at most one state period;
- per path, link statistics (one-way delays, round trip, loss) and alarms;
- video frames (cadence, size, losses) and the glass-to-glass and
  motion-to-photon figures a node reports in its status;
- safety transitions and each arm's mode, the task's progress, control owners
  and handovers, and the audit trails' verdict.

A session without link, video or audit data simply has empty series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from telesurgery.errors import RecordingError
from telesurgery.geometry import FloatArray
from telesurgery.messages import (
    JawServoJP,
    MeasuredCP,
    Message,
    SafetyEvent,
    ServoCP,
    Status,
    VideoFrame,
)
from telesurgery.record.audit import AuditKind, AuditVerifier, TrailReport, record_object
from telesurgery.record.layout import TRAIL_SUFFIX, audit_dir
from telesurgery.record.mcap_writer import METADATA_NAME
from telesurgery.record.reader import Recording
from telesurgery.record.schema import RECORDER_STATS_SCHEMA_NAME
from telesurgery.types import ArmMode

_OWNER_KINDS = (AuditKind.CONTROL_OWNER, AuditKind.HANDOVER_REQUEST, AuditKind.HANDOVER)


@dataclass
class Timed:
    """Values with their times [s since the start of the recording]."""

    t_s: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, t_s: float, value: Any) -> None:
        self.t_s.append(t_s)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.t_s)

    def last(self) -> Any:
        """The latest value (None when empty)."""
        return self.values[-1] if self.values else None


@dataclass
class VideoFrames:
    """Recorded frames of one camera: receive time [s], index, capture time [ns, sender
    clock], encoded size [bytes], keyframe, size [px]."""

    t_s: list[float] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    capture_ns: list[int] = field(default_factory=list)
    nbytes: list[int] = field(default_factory=list)
    keyframes: int = 0
    size: tuple[int, int] = (0, 0)

    @property
    def lost(self) -> int:
        """Frames missing between the first and the last index received."""
        if not self.index:
            return 0
        return max(self.index) - min(self.index) + 1 - len(set(self.index))

    @property
    def fps(self) -> float:
        """Frames per second, from the capture times."""
        if len(self.capture_ns) < 2:
            return 0.0
        return (len(self.capture_ns) - 1) / ((max(self.capture_ns) - min(self.capture_ns))
                                             * 1e-9)


@dataclass
class Session:
    """Everything the report shows about one recorded session."""

    directory: Path
    files: list[Path]
    bytes: int
    complete: bool
    metadata: dict[str, dict[str, str]]
    start_ns: int = 0
    end_ns: int = 0
    session: str = ""
    messages: int = 0
    commands: dict[str, int] = field(default_factory=dict)
    """Recorded commands by arm (servo_cp and jaw/servo_jp)."""
    offset_ns: int = 0
    """Patient clock minus console clock [ns], from the patient's link status (0: none)."""
    applied_latency: dict[str, Timed] = field(default_factory=dict)
    """Per arm: input sample -> applied [ms], derived from measured_cp."""
    supervisor_latency: Timed = field(default_factory=Timed)
    """Percentiles [ms] of input sample -> accepted, as the patient's status reported."""
    nodes: dict[str, Timed] = field(default_factory=dict)
    """Per node (``patient``, ``console``, ...): its status messages."""
    safety: Timed = field(default_factory=Timed)
    """SafetyEvent transitions."""
    modes: dict[str, Timed] = field(default_factory=dict)
    """Per arm: its mode at each state publication (only where it changed)."""
    forces: dict[str, Timed] = field(default_factory=dict)
    """Per arm: the force at the tip [N, magnitude] at each state publication."""
    grips: dict[str, Timed] = field(default_factory=dict)
    """Per arm: the jaws' grip [N] at each state publication."""
    force_cap_n: float | None = None
    """The supervisor's force cap [N], as the patient's status reported it (None: never)."""
    links: dict[str, Timed] = field(default_factory=dict)
    """Per path: its statistics (dicts) as published."""
    link_alarms: Timed = field(default_factory=Timed)
    video: dict[str, VideoFrames] = field(default_factory=dict)
    video_latency: Timed = field(default_factory=Timed)
    """Status ``video`` sections with glass-to-glass or motion-to-photon figures."""
    owners: Timed = field(default_factory=Timed)
    """Messages on ``control/owner``."""
    recorder: dict[str, Any] = field(default_factory=dict)
    """The recorder's last counters."""
    streams: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """Per key and sender session: [messages recorded, first seq, last seq]."""
    trails: list[TrailReport] = field(default_factory=list)
    audit_kinds: dict[str, int] = field(default_factory=dict)
    handovers: list[dict[str, Any]] = field(default_factory=list)
    """Audit records about control: who holds it, requests, handovers."""

    @property
    def patient(self) -> Timed:
        """The patient node's status messages."""
        return self.nodes.get("patient", Timed())

    @property
    def duration_s(self) -> float:
        """From the first to the last recorded message [s]."""
        return (self.end_ns - self.start_ns) * 1e-9

    def rel(self, ns: int) -> float:
        """``ns`` [recorder clock] as seconds since the start of the recording."""
        return (ns - self.start_ns) * 1e-9


def load_session(directory: Path) -> Session:
    """Read the recording and audit trails of ``directory`` (or one MCAP file)."""
    rec = Recording(directory)
    files = [e.path for e in rec.extents]
    s = Session(directory, files, sum(e.size for e in rec.extents), rec.complete,
                rec.metadata())
    s.session = s.metadata.get(METADATA_NAME, {}).get("session", "")
    first = True
    last_cp: dict[str, tuple[int, ArmMode]] = {}
    for r in rec.messages():
        if first:
            s.start_ns, first = r.receive_ns, False
        s.end_ns = max(s.end_ns, r.receive_ns)
        s.messages += 1
        _count(s, r.key, r.message)
        _take(s, r.key, s.rel(r.receive_ns), r.message, last_cp)
    if first:
        raise RecordingError(f"{directory} holds a recording without any message; record a "
                             "running session (telesurgery demo --record or record)")
    for obj in rec.json(_stats_topics(s)):
        if obj.schema == RECORDER_STATS_SCHEMA_NAME:
            s.recorder = obj.obj
    _audit(s, directory)
    return s


def _count(s: Session, key: str, msg: Message) -> None:
    st = s.streams.get((key, msg.session))
    if st is None:
        s.streams[(key, msg.session)] = [1, msg.seq, msg.seq]
    else:
        st[0] += 1
        st[1] = min(st[1], msg.seq)
        st[2] = max(st[2], msg.seq)


def completeness(s: Session) -> dict[str, tuple[int, int]]:
    """Per key: (messages recorded, messages sent), from the senders' sequence numbers
    (a sender numbers its messages on a key 1, 2, ...; gaps are what the recorder missed).
    Keys whose sender numbers differently (several copies per number) are left out."""
    out: dict[str, tuple[int, int]] = {}
    for (key, _), (count, first, last) in s.streams.items():
        sent = last - first + 1
        if count > sent:
            continue
        have, total = out.get(key, (0, 0))
        out[key] = (have + count, total + sent)
    return out


def _stats_topics(s: Session) -> list[str]:
    return [f"telesurgery/{s.session}/recorder/stats"] if s.session else []


def _take(s: Session, key: str, t: float, msg: Message,
          last_cp: dict[str, tuple[int, ArmMode]]) -> None:
    body = msg.body
    if isinstance(body, ServoCP | JawServoJP):
        s.commands[body.arm] = s.commands.get(body.arm, 0) + 1
    elif isinstance(body, MeasuredCP):
        _measured(s, t, msg, body, last_cp)
    elif isinstance(body, SafetyEvent):
        s.safety.add(t, body)
    elif isinstance(body, VideoFrame):
        v = s.video.setdefault(body.camera, VideoFrames())
        v.t_s.append(t)
        v.index.append(body.frame_index)
        v.capture_ns.append(body.capture_ns)
        v.nbytes.append(len(body.data))
        v.keyframes += body.keyframe
        v.size = (body.width, body.height)
    elif isinstance(body, Status):
        _status(s, key, t, body.data)


def _measured(s: Session, t: float, msg: Message, body: MeasuredCP,
              last_cp: dict[str, tuple[int, ArmMode]]) -> None:
    arm = body.arm
    prev = last_cp.get(arm)
    s.forces.setdefault(arm, Timed()).add(t, math.hypot(*body.force))
    s.grips.setdefault(arm, Timed()).add(t, body.grip)
    modes = s.modes.setdefault(arm, Timed())
    if prev is None or prev[1] is not body.mode:
        modes.add(t, body.mode)
    if (body.mode is ArmMode.FOLLOWING and prev is not None
            and body.applied_seq != prev[0] and body.applied_sample_ns > 0):
        ms = (msg.sent_ns - body.applied_sample_ns - s.offset_ns) * 1e-6
        s.applied_latency.setdefault(arm, Timed()).add(t, ms)
    last_cp[arm] = (body.applied_seq, body.mode)


def _owner_key(data: Any) -> tuple[Any, ...]:
    d = data if isinstance(data, dict) else {}
    return d.get("owner"), d.get("session"), d.get("handovers")


def _status(s: Session, key: str, t: float, data: dict[str, Any]) -> None:
    parts = key.split("/")
    if key.endswith("/control/owner"):
        # Announced every half second: keep the changes (and the first).
        if not s.owners.values or _owner_key(s.owners.values[-1]) != _owner_key(data):
            s.owners.add(t, data)
    elif len(parts) >= 5 and parts[-3] == "link" and parts[-1] == "stats":
        s.links.setdefault(parts[-2], Timed()).add(t, data)
    elif len(parts) >= 5 and parts[-3] == "link" and parts[-1] == "alarm":
        s.link_alarms.add(t, data)
    elif key.endswith("/status"):
        node = str(data.get("node", parts[-2]))
        s.nodes.setdefault(node, Timed()).add(t, data)
        if node == "patient":
            _patient(s, t, data)
        video = data.get("video")
        if isinstance(video, Mapping) and ("glass_to_glass_ms" in video
                                           or "motion_to_photon_ms" in video):
            s.video_latency.add(t, {"node": node, **video})


def _patient(s: Session, t: float, data: dict[str, Any]) -> None:
    offset = data.get("link", {}).get("clock", {}).get("offset_ms")
    if isinstance(offset, int | float):
        s.offset_ns = round(offset * 1e6)
    safety = data.get("safety", {})
    latency = safety.get("latency_ms", {})
    if latency:
        s.supervisor_latency.add(t, latency)
    cap = safety.get("force_cap_n")
    if isinstance(cap, int | float) and not isinstance(cap, bool) and cap > 0:
        s.force_cap_n = float(cap)


def _audit(s: Session, directory: Path) -> None:
    folder = audit_dir(directory if directory.is_dir() else directory.parent)
    if not any(folder.glob("*" + TRAIL_SUFFIX)):
        return
    s.trails = AuditVerifier().verify_dir(folder)
    for trail in sorted(folder.glob("*" + TRAIL_SUFFIX)):
        for line in trail.read_text(encoding="utf-8", errors="replace").splitlines():
            rec = record_object(line)
            if rec is None:
                continue  # the verifier above reports the line
            kind = str(rec.get("kind"))
            s.audit_kinds[kind] = s.audit_kinds.get(kind, 0) + 1
            if kind in _OWNER_KINDS:
                time = rec.get("time")
                s.handovers.append({"wall": time.get("wall", "") if isinstance(time, dict)
                                    else "", "node": rec.get("node", ""), "kind": kind,
                                    "data": rec.get("data", {})})


def time_above(series: Timed, cap: float) -> float:
    """Time [s] ``series`` spent at or above ``cap``: each sample at or over it counts until
    the next sample (the last one for nothing)."""
    t, v = series.t_s, series.values
    return sum(t[i + 1] - t[i] for i in range(len(t) - 1) if v[i] >= cap)


def latency_values(s: Session) -> FloatArray:
    """Every derived input sample -> applied latency [ms], all arms together."""
    parts = [np.asarray(v.values, dtype=np.float64) for v in s.applied_latency.values()]
    return np.concatenate(parts) if parts else np.empty(0)


__all__ = ["Session", "Timed", "VideoFrames", "completeness", "latency_values",
           "load_session", "time_above"]
