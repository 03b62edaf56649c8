"""A scripted input device: replays hand trajectories from a CSV file, for tests and demos.

File format (UTF-8 text, one sample a line)::

    # comments and blank lines are ignored
    t_s,arm,x,y,z,qw,qx,qy,qz,grip,clutch
    0.0,psm1,-0.05,0.0,0.3,1,0,0,0,0.5,0
    0.1,psm1,-0.049,0.001,0.3,1,0,0,0,0.5,0

- ``t_s`` [s] from the start of the replay, >= 0, strictly increasing per arm;
- ``arm``: the arm the hand drives (lines of several arms may interleave);
- ``x, y, z`` [m]: the hand position in the view frame (camera axes: x right,
  y down, z forward); ``qw, qx, qy, qz``: its orientation, a unit quaternion;
- ``grip`` in [0 closed, 1 open]; ``clutch``: 1 (pressed) or 0 (released).

Between samples the position and grip are interpolated linearly and the
orientation by slerp (the shorter way); the clutch keeps the earlier sample's
state. Before an arm's first sample and after its last, its nearest sample is
held. The replay starts at the first ``read``. At the end of the file (the
last sample over all arms) it either loops, so a looping file should end where
it starts or clutch across the wrap, or holds the last samples with the clutch
pressed.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telesurgery.errors import ConfigError
from telesurgery.geometry import (
    Vec3,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_rotvec,
    rotvec_to_quat,
)
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.types import Pose

COLUMNS = ("t_s", "arm", "x", "y", "z", "qw", "qx", "qy", "qz", "grip", "clutch")
_HEADER = ",".join(COLUMNS)
_QUAT_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Waypoint:
    """One line of a trajectory: time [s], hand pose [m] in the view frame, grip, clutch."""

    t_s: float
    pose: Pose
    grip: float
    clutch: bool


@dataclass(frozen=True, slots=True)
class _Track:
    """One arm's waypoints, their times [s], and the rotation vector [rad] from each
    waypoint's orientation to the next (precomputed for slerp)."""

    times: tuple[float, ...]
    points: tuple[Waypoint, ...]
    turns: tuple[Vec3, ...]

    def at(self, t_s: float) -> tuple[Pose, float, bool]:
        i = bisect.bisect_right(self.times, t_s) - 1
        if i < 0:
            first = self.points[0]
            return first.pose, first.grip, first.clutch
        a = self.points[i]
        if i + 1 == len(self.points):
            return a.pose, a.grip, a.clutch
        b = self.points[i + 1]
        u = (t_s - a.t_s) / (b.t_s - a.t_s)
        pa, pb = a.pose.position, b.pose.position
        position = (pa[0] + u * (pb[0] - pa[0]), pa[1] + u * (pb[1] - pa[1]),
                    pa[2] + u * (pb[2] - pa[2]))
        w = self.turns[i]
        orientation = quat_normalize(
            quat_mul(a.pose.orientation, rotvec_to_quat((u * w[0], u * w[1], u * w[2]))))
        return Pose(position, orientation), a.grip + u * (b.grip - a.grip), a.clutch


def _number(raw: str, column: str, where: str) -> float:
    try:
        v = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {column} = {raw!r} is not a number") from exc
    if not math.isfinite(v):
        raise ConfigError(f"{where}: {column} = {raw!r} is not finite; give a finite number")
    return v


def _parse_line(fields: list[str], where: str) -> tuple[str, Waypoint]:
    if len(fields) != len(COLUMNS):
        raise ConfigError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)} "
                          f"({_HEADER})")
    t_s = _number(fields[0], "t_s", where)
    if t_s < 0.0:
        raise ConfigError(f"{where}: t_s = {t_s} is negative; times count from 0 s")
    arm = fields[1]
    if not arm or not arm.isascii() or any(c in arm for c in "/*$?# "):
        raise ConfigError(f"{where}: arm {arm!r} must be a non-empty ASCII name without "
                          "'/', '*', '$', '?', '#' or spaces, e.g. psm1")
    x, y, z, qw, qx, qy, qz, grip = (_number(fields[k], COLUMNS[k], where) for k in range(2, 10))
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if abs(norm - 1.0) > _QUAT_TOLERANCE:
        raise ConfigError(f"{where}: quaternion (qw, qx, qy, qz) has norm {norm:.6g}; give a "
                          f"unit quaternion (norm within {_QUAT_TOLERANCE} of 1)")
    if not 0.0 <= grip <= 1.0:
        raise ConfigError(f"{where}: grip = {grip} is outside [0, 1] (0 closed, 1 open)")
    if fields[10] not in ("0", "1"):
        raise ConfigError(f"{where}: clutch = {fields[10]!r} must be 0 (released) or "
                          "1 (pressed)")
    pose = Pose((x, y, z), quat_normalize((qw, qx, qy, qz)))
    return arm, Waypoint(t_s, pose, grip, fields[10] == "1")


def load_trajectory(path: Path) -> dict[str, tuple[Waypoint, ...]]:
    """Parse a trajectory file into waypoints per arm, in the order arms first appear.

    Raises ``ConfigError`` naming the file, the line and what is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such trajectory file; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from exc
    arms: dict[str, list[Waypoint]] = {}
    header_seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        fields = [f.strip() for f in stripped.split(",")]
        if not header_seen:
            if tuple(fields) != COLUMNS:
                raise ConfigError(f"{where}: the first line must be the header {_HEADER!r}, "
                                  f"got {stripped!r}")
            header_seen = True
            continue
        arm, point = _parse_line(fields, where)
        track = arms.setdefault(arm, [])
        if track and point.t_s <= track[-1].t_s:
            raise ConfigError(f"{where}: t_s = {point.t_s} for {arm} does not increase "
                              f"(the previous {arm} sample is at {track[-1].t_s}); sort the "
                              "samples by time")
        track.append(point)
    if not arms:
        raise ConfigError(f"{path}: no samples; a trajectory needs the header "
                          f"{_HEADER!r} and at least one sample line")
    return {arm: tuple(points) for arm, points in arms.items()}


def _track(points: tuple[Waypoint, ...]) -> _Track:
    turns = tuple(
        quat_to_rotvec(quat_mul(quat_conj(a.pose.orientation), b.pose.orientation))
        for a, b in itertools.pairwise(points))
    return _Track(tuple(p.t_s for p in points), points, turns)


class ScriptedDevice(InputDevice):
    """Replays the trajectory file at ``path`` for the arms it names.

    ``loop``: start over at the end instead of holding with the clutch pressed.
    ``rate_hz`` [Hz]: the rate the console reads it at (any rate works).
    """

    auto_reclutch = True

    def __init__(self, path: Path, *, loop: bool = False, rate_hz: float = 1000.0) -> None:
        tracks = load_trajectory(path)
        self.rate_hz = rate_hz
        self.arms = tuple(tracks)
        self.loop = loop
        self._tracks = {arm: _track(points) for arm, points in tracks.items()}
        self.duration_s = max(points[-1].t_s for points in tracks.values())
        """The time [s] of the last sample over all arms."""
        self._start_ns: int | None = None

    def sample_at(self, arm: str, t_s: float) -> HandSample:
        """The hand of ``arm`` at ``t_s`` [s] into the file (no looping, no end hold),
        stamped ``t_ns`` = 0."""
        pose, grip, clutch = self._tracks[arm].at(t_s)
        return HandSample(0, pose, grip, clutch)

    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        """Every arm's hand at ``now_ns`` [ns]; the first call starts the replay."""
        if self._start_ns is None:
            self._start_ns = now_ns
        t_s = (now_ns - self._start_ns) * 1e-9
        ended = False
        if t_s > self.duration_s:
            if self.loop and self.duration_s > 0.0:
                t_s = math.fmod(t_s, self.duration_s)
            else:
                ended = True
        out = {}
        for arm, track in self._tracks.items():
            pose, grip, clutch = track.at(t_s)
            out[arm] = HandSample(now_ns, pose, grip, clutch or ended)
        return out


__all__ = ["COLUMNS", "ScriptedDevice", "Waypoint", "load_trajectory"]
