"""The session in Foxglove's well-known schemas: the robot's frames, the scene, forces, camera.

Our own schemas hold every message exactly; Foxglove's 3D and image panels read
only its well-known ones. ``FoxgloveView`` derives them from the messages as
they arrive (recorded or served live), in the same JSON encoding:

``<prefix>/foxglove/tf`` (``foxglove.FrameTransforms``)
    ``world`` → ``<arm>_rcm``: each arm's base frame, which is its remote centre
    of motion (the dVRK convention; axis-aligned with the world), and
    ``world`` → ``<camera>``: the endoscope, OpenCV axes (x right, y down, z the
    view), both from the scene layout, sent again every second so a viewer that
    joins late has them; ``<arm>_rcm`` → ``<arm>_tip`` (measured) and
    ``<arm>_setpoint``; ``<arm>_tip`` → ``<arm>_jaw_pos`` / ``<arm>_jaw_neg``:
    each jaw turned by half the opening about the hinge (the tip's x axis).
``<prefix>/foxglove/scene`` (``foxglove.SceneUpdate``)
    the board and its pegs (every second) and, per arm, the instrument as a line
    from its RCM to its tip and the force at the tip as an arrow, ``ARROW_M_PER_N``
    [m/N] long, in the base frame the force is measured in.
``<prefix>/<camera>/calibration`` (``foxglove.CameraCalibration``)
    the endoscope's pinhole model, with every video frame (same ``frame_id`` and
    timestamp), so the image panel can overlay: the intrinsics the patient's status
    publishes, or, until one has come, the layout camera's at the frame's size.

Frames and scene follow the arms' state at ``rate_hz`` (50 Hz by default, a tenth of
the state rate: enough for the eye, small beside the rest of the recording).
Timestamps are the sender's ``sent_ns`` (the video's capture time), the clock the rest
of the recording is stamped with. The rings move in the simulation but their poses are
not on the wire, so the scene does not show them.

``layouts/foxglove.json`` beside this module is a Foxglove layout for session ``or1``
(3D scene, endoscope image with its calibration, tip forces, safety events);
``layout_for`` gives it for another session.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.errors import RecordingError
from telesurgery.geometry import Quat, Vec3
from telesurgery.messages import MeasuredCP, Message, StateBundle, Status, VideoFrame
from telesurgery.record.schema import JsonObject
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, PegTransferLayout
from telesurgery.transport.keys import Keys
from telesurgery.types import Pose

WORLD_FRAME = "world"
FRAME_TRANSFORMS = "foxglove.FrameTransforms"
SCENE_UPDATE = "foxglove.SceneUpdate"
CAMERA_CALIBRATION = "foxglove.CameraCalibration"
ARROW_M_PER_N = 0.005
"""Length [m] of the force arrow per newton: the 8 N cap is 4 cm, about a peg's spacing."""
_MIN_FORCE_N = 0.05
_STATIC_PERIOD_NS = 1_000_000_000
_BOARD_THICKNESS_M = 0.002

_XYZ = {"type": "object", "properties": {n: {"type": "number"} for n in "xyz"}}
_QUAT = {"type": "object", "properties": {n: {"type": "number"} for n in "xyzw"}}
_TIME = {"type": "object", "properties": {"sec": {"type": "integer"},
                                          "nsec": {"type": "integer"}}}


def _schema(name: str, description: str, properties: JsonObject) -> JsonObject:
    return {"title": name, "description": description, "type": "object",
            "properties": properties}


_TRANSFORM = {"type": "object", "properties": {
    "timestamp": _TIME, "parent_frame_id": {"type": "string"},
    "child_frame_id": {"type": "string"}, "translation": _XYZ, "rotation": _QUAT}}
SCHEMAS: dict[str, JsonObject] = {
    FRAME_TRANSFORMS: _schema(FRAME_TRANSFORMS, "A list of transforms between frames",
                              {"transforms": {"type": "array", "items": _TRANSFORM}}),
    SCENE_UPDATE: _schema(SCENE_UPDATE, "An update to the entities of a 3D scene", {
        "deletions": {"type": "array"}, "entities": {"type": "array"}}),
    CAMERA_CALIBRATION: _schema(CAMERA_CALIBRATION, "Camera calibration parameters", {
        "timestamp": _TIME, "frame_id": {"type": "string"}, "width": {"type": "integer"},
        "height": {"type": "integer"}, "distortion_model": {"type": "string"},
        **{m: {"type": "array", "items": {"type": "number"}} for m in ("D", "K", "R", "P")}}),
}
"""JSON Schemas of the well-known messages written here, by schema name."""


@dataclass(frozen=True, slots=True)
class Derived:
    """One derived message: its topic, schema name and JSON object, stamped ``stamp_ns`` [ns]."""

    topic: str
    schema_name: str
    obj: JsonObject
    stamp_ns: int

    @property
    def schema(self) -> JsonObject:
        """The JSON Schema of ``schema_name``."""
        return SCHEMAS[self.schema_name]


def _time(ns: int) -> JsonObject:
    sec, nsec = divmod(ns, 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def _vec(v: Vec3) -> JsonObject:
    return {"x": v[0], "y": v[1], "z": v[2]}


def _quat(q: Quat) -> JsonObject:
    w, x, y, z = q
    return {"x": x, "y": y, "z": z, "w": w}


def _pose(p: Pose) -> JsonObject:
    return {"position": _vec(p.position), "orientation": _quat(p.orientation)}


def _transform(ns: int, parent: str, child: str, pose: Pose) -> JsonObject:
    return {"timestamp": _time(ns), "parent_frame_id": parent, "child_frame_id": child,
            "translation": _vec(pose.position), "rotation": _quat(pose.orientation)}


def _color(r: float, g: float, b: float, a: float = 1.0) -> JsonObject:
    return {"r": r, "g": g, "b": b, "a": a}


def _entity(ns: int, frame: str, ident: str, **primitives: list[JsonObject]) -> JsonObject:
    out: JsonObject = {"timestamp": _time(ns), "frame_id": frame, "id": ident,
                       "lifetime": _time(0), "frame_locked": False, "metadata": []}
    for kind in ("arrows", "cubes", "spheres", "cylinders", "lines", "triangles", "texts",
                 "models"):
        out[kind] = primitives.get(kind, [])
    return out


def _about_x(angle: float) -> Quat:
    """Rotation by ``angle`` [rad] about x."""
    return (math.cos(angle / 2.0), math.sin(angle / 2.0), 0.0, 0.0)


def _x_onto(v: Vec3) -> Quat:
    """The shortest rotation taking the x axis onto the direction of ``v`` (non-zero)."""
    n = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    x, y, z = v[0] / n, v[1] / n, v[2] / n
    if x < -1.0 + 1e-9:
        return (0.0, 0.0, 0.0, 1.0)
    # Half-way quaternion: (1 + x·v, x × v) normalised, with x × v = (0, -z, y).
    w = 1.0 + x
    s = math.sqrt(w * w + z * z + y * y)
    return (w / s, 0.0, -z / s, y / s)


def jaw_poses(jaw: float) -> tuple[Pose, Pose]:
    """The two jaws in the tip frame for an opening of ``jaw`` [rad]: each turned by half
    of it, either way, about the hinge (the tip's x axis)."""
    return Pose((0.0, 0.0, 0.0), _about_x(jaw / 2.0)), Pose((0.0, 0.0, 0.0), _about_x(-jaw / 2.0))


def camera_calibration(ns: int, frame_id: str, k: Intrinsics) -> JsonObject:
    """The ``foxglove.CameraCalibration`` of pinhole ``k`` (no distortion: how MuJoCo renders)
    at ``ns`` [ns]."""
    return {"timestamp": _time(ns), "frame_id": frame_id, "width": k.width,
            "height": k.height, "distortion_model": "", "D": [],
            "K": [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
            "R": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            "P": [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]}


class FoxgloveView:
    """Derives the Foxglove messages of session ``prefix`` (``telesurgery/<session>``) from
    its wire messages, over the scene ``layout``; ``rate_hz`` [Hz]: how often the arms'
    frames and scene follow their state. Not thread-safe: one writer feeds it."""

    def __init__(self, prefix: str, layout: PegTransferLayout = DEFAULT_LAYOUT,
                 rate_hz: float = 50.0) -> None:
        self.layout = layout
        self.tf_topic = f"{prefix}/foxglove/tf"
        self.scene_topic = f"{prefix}/foxglove/scene"
        self.calibration_topic = f"{prefix}/{layout.camera.name}/calibration"
        self._period_ns = round(1e9 / rate_hz)
        self._next_state: int | None = None
        self._next_static: int | None = None
        self._intrinsics: Intrinsics | None = None

    def derive(self, msg: Message) -> Iterator[Derived]:
        """The Foxglove messages ``msg`` gives (none for most)."""
        body = msg.body
        if isinstance(body, StateBundle):
            yield from self._state(msg.sent_ns, body.states)
        elif isinstance(body, Status):
            video = body.data.get("video")
            seen = Intrinsics.parse(video.get("intrinsics")) if isinstance(video, dict) else None
            self._intrinsics = seen or self._intrinsics
        elif isinstance(body, VideoFrame):
            k = self._intrinsics
            if k is None or (k.width, k.height) != (body.width, body.height):
                k = Intrinsics.from_fovy(body.width, body.height, self.layout.camera.fovy_deg)
            yield Derived(self.calibration_topic, CAMERA_CALIBRATION,
                          camera_calibration(body.capture_ns, body.camera, k), body.capture_ns)

    def _due(self, due: int | None, ns: int) -> bool:
        # Sent times of a restarted sender may go back: start the pacing again from it.
        return due is None or ns >= due or ns < due - 2 * _STATIC_PERIOD_NS

    def _state(self, ns: int, states: tuple[MeasuredCP, ...]) -> Iterator[Derived]:
        if self._due(self._next_static, ns):
            self._next_static = ns + _STATIC_PERIOD_NS
            yield from self.static(ns)
        if not self._due(self._next_state, ns):
            return
        self._next_state = ns + self._period_ns
        transforms: list[JsonObject] = []
        entities: list[JsonObject] = []
        for s in states:
            rcm, tip = f"{s.arm}_rcm", f"{s.arm}_tip"
            pos, neg = jaw_poses(s.jaw)
            transforms += [_transform(ns, rcm, tip, s.measured),
                           _transform(ns, rcm, f"{s.arm}_setpoint", s.setpoint),
                           _transform(ns, tip, f"{s.arm}_jaw_pos", pos),
                           _transform(ns, tip, f"{s.arm}_jaw_neg", neg)]
            entities.append(self._instrument(ns, rcm, s))
        yield Derived(self.tf_topic, FRAME_TRANSFORMS, {"transforms": transforms}, ns)
        yield Derived(self.scene_topic, SCENE_UPDATE, {"deletions": [], "entities": entities}, ns)

    def _instrument(self, ns: int, rcm: str, s: MeasuredCP) -> JsonObject:
        shaft = {"type": 0, "pose": _pose(Pose((0.0, 0.0, 0.0))), "thickness": 0.003,
                 "scale_invariant": False, "points": [_vec((0.0, 0.0, 0.0)),
                                                      _vec(s.measured.position)],
                 "color": _color(0.75, 0.75, 0.8), "colors": [], "indices": []}
        arrows = []
        magnitude = math.sqrt(sum(f * f for f in s.force))
        if magnitude >= _MIN_FORCE_N:
            length = magnitude * ARROW_M_PER_N
            arrows.append({"pose": _pose(Pose(s.measured.position, _x_onto(s.force))),
                           "shaft_length": 0.7 * length, "shaft_diameter": 0.0015,
                           "head_length": 0.3 * length, "head_diameter": 0.004,
                           "color": _color(1.0, 0.35, 0.1)})
        return _entity(ns, rcm, f"{s.arm}/instrument", lines=[shaft], arrows=arrows)

    def static(self, ns: int) -> Iterator[Derived]:
        """The frames and objects that do not move, stamped ``ns`` [ns]."""
        lay = self.layout
        transforms = [_transform(ns, WORLD_FRAME, f"{arm}_rcm", lay.base_pose(arm))
                      for arm in lay.arms]
        transforms.append(_transform(ns, WORLD_FRAME, lay.camera.name,
                                     lay.camera.pose_opencv()))
        yield Derived(self.tf_topic, FRAME_TRANSFORMS, {"transforms": transforms}, ns)
        hx, hy = lay.board_half
        board = {"pose": _pose(Pose((0.0, 0.0, -_BOARD_THICKNESS_M / 2.0))),
                 "size": _vec((2.0 * hx, 2.0 * hy, _BOARD_THICKNESS_M)),
                 "color": _color(0.25, 0.45, 0.3)}
        cubes = [board]
        if lay.tissue is not None:
            pad = lay.tissue
            cubes.append({"pose": _pose(Pose((*pad.centre, pad.height / 2.0))),
                          "size": _vec((2.0 * pad.half[0], 2.0 * pad.half[1], pad.height)),
                          "color": _color(0.8, 0.45, 0.45)})
        d = 2.0 * lay.peg_radius
        pegs = [{"pose": _pose(Pose((x, y, z + lay.peg_height / 2.0))),
                 "size": _vec((d, d, lay.peg_height)), "bottom_scale": 1.0, "top_scale": 1.0,
                 "color": _color(0.85, 0.85, 0.85)} for x, y, z in lay.pegs]
        yield Derived(self.scene_topic, SCENE_UPDATE, {"deletions": [], "entities": [
            _entity(ns, WORLD_FRAME, "board", cubes=cubes, cylinders=pegs)]}, ns)


LAYOUT_SESSION = "or1"
"""The session whose topics the shipped layout names."""


def layout_for(session: str) -> str:
    """The shipped Foxglove layout (JSON text) with its topics in session ``session``."""
    try:
        text = resources.files("telesurgery.record").joinpath(
            "layouts", "foxglove.json").read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"the Foxglove layout is missing from the package ({exc}); "
                             "reinstall telesurgery") from exc
    return text.replace(f'"{Keys(LAYOUT_SESSION).prefix}/', f'"{Keys(session).prefix}/')


__all__ = [
    "ARROW_M_PER_N",
    "CAMERA_CALIBRATION",
    "FRAME_TRANSFORMS",
    "LAYOUT_SESSION",
    "SCENE_UPDATE",
    "SCHEMAS",
    "WORLD_FRAME",
    "Derived",
    "FoxgloveView",
    "camera_calibration",
    "jaw_poses",
    "layout_for",
]
