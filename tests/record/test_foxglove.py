"""Foxglove's well-known schemas derived from the session: frames, scene, calibration; and the
live server answering a real WebSocket client that speaks the Foxglove protocol."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.clock import now_ns
from telesurgery.config import ZenohConfig
from telesurgery.errors import ConfigError
from telesurgery.geometry import quat_to_rotation, rotate
from telesurgery.messages import MeasuredCP, Message, StateBundle, Status, VideoFrame
from telesurgery.record.foxglove import (
    ARROW_M_PER_N,
    CAMERA_CALIBRATION,
    FRAME_TRANSFORMS,
    SCENE_UPDATE,
    FoxgloveView,
    camera_calibration,
    layout_for,
)
from telesurgery.record.live import LiveServer
from telesurgery.record.recorder import Recorder
from telesurgery.robots.sim.kinematics import fk
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT
from telesurgery.transport.codec import encode
from telesurgery.transport.keys import Keys
from telesurgery.types import ArmMode, OperatingState

from ..foxglove_client import first_frames
from ..waiting import wait_until

TIMEOUT_S = 20.0  # generous: a loaded 2-core machine


def state(arm: str, q: tuple[float, ...], jaw: float, force: tuple[float, float, float]
          ) -> MeasuredCP:
    """An arm's state at joints ``q``, as the patient publishes it."""
    tip = fk(q)
    return MeasuredCP(arm, tip, tip, jaw, 1, 0, OperatingState.ENABLED, ArmMode.FOLLOWING, force)


def bundle(ns: int, force: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Message:
    return Message(1, 1, ns, StateBundle((
        state("psm1", (0.1, -0.2, 0.12, 0.3, 0.2, -0.1), 0.4, force),
        state("psm2", (0.0, 0.0, 0.1, 0.0, 0.0, 0.0), 0.0, (0.0, 0.0, 0.0)))))


def by_name(view: FoxgloveView, msg: Message) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in view.derive(msg):
        # What Foxglove receives is JSON text: check it survives the trip.
        out.setdefault(d.schema_name, []).append(json.loads(json.dumps(d.obj, allow_nan=False)))
        assert d.schema["title"] == d.schema_name
    return out


def transforms(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["child_frame_id"]: t for o in objs for t in o["transforms"]}


def test_frames_place_the_tool_tip_where_the_kinematics_put_it() -> None:
    view = FoxgloveView("telesurgery/or1")
    got = by_name(view, bundle(5_000_000_123))
    tf = transforms(got[FRAME_TRANSFORMS])
    rcm = tf["psm1_rcm"]
    assert rcm["parent_frame_id"] == "world"
    assert [rcm["translation"][k] for k in "xyz"] == list(DEFAULT_LAYOUT.base_pose("psm1").position)
    tip = tf["psm1_tip"]
    assert tip["parent_frame_id"] == "psm1_rcm"
    assert tip["timestamp"] == {"sec": 5, "nsec": 123}
    expected = fk((0.1, -0.2, 0.12, 0.3, 0.2, -0.1))
    assert [tip["translation"][k] for k in "xyz"] == pytest.approx(expected.position)
    w, x, y, z = expected.orientation
    assert [tip["rotation"][k] for k in "xyzw"] == pytest.approx([x, y, z, w])
    # The jaws open by 0.4 rad about the hinge (the tip's x axis), half each way.
    for child, sign in (("psm1_jaw_pos", 1.0), ("psm1_jaw_neg", -1.0)):
        jaw = tf[child]
        assert jaw["parent_frame_id"] == "psm1_tip"
        q = jaw["rotation"]
        along = rotate((q["w"], q["x"], q["y"], q["z"]), (0.0, 0.0, 1.0))
        assert along == pytest.approx((0.0, -sign * math.sin(0.2), math.cos(0.2)))
    cam = tf["ecm"]
    assert [cam["translation"][k] for k in "xyz"] == list(DEFAULT_LAYOUT.camera.position)
    # OpenCV axes: the camera's z looks at the target.
    r = np.reshape(quat_to_rotation(DEFAULT_LAYOUT.camera.pose_opencv().orientation), (3, 3))
    view_dir = np.subtract(DEFAULT_LAYOUT.camera.target, DEFAULT_LAYOUT.camera.position)
    assert r[:, 2] == pytest.approx(view_dir / np.linalg.norm(view_dir))


def test_the_scene_has_the_board_pegs_instruments_and_a_force_arrow() -> None:
    view = FoxgloveView("telesurgery/or1")
    got = by_name(view, bundle(1_000, force=(0.0, 3.0, 4.0)))
    entities = {e["id"]: e for o in got[SCENE_UPDATE] for e in o["entities"]}
    assert len(entities["board"]["cylinders"]) == len(DEFAULT_LAYOUT.pegs)
    tool = entities["psm1/instrument"]
    assert tool["frame_id"] == "psm1_rcm"
    tip = fk((0.1, -0.2, 0.12, 0.3, 0.2, -0.1)).position
    end = tool["lines"][0]["points"][-1]
    assert [end[k] for k in "xyz"] == pytest.approx(tip)
    (arrow,) = tool["arrows"]
    assert arrow["shaft_length"] + arrow["head_length"] == pytest.approx(5.0 * ARROW_M_PER_N)
    q = arrow["pose"]["orientation"]
    assert rotate((q["w"], q["x"], q["y"], q["z"]), (1.0, 0.0, 0.0)) == \
        pytest.approx((0.0, 0.6, 0.8))
    assert entities["psm2/instrument"]["arrows"] == []  # no force, no arrow


def test_frames_follow_at_their_rate_and_the_static_ones_every_second() -> None:
    view = FoxgloveView("telesurgery/or1", rate_hz=50.0)
    t0 = 10_000_000_000
    counts = {FRAME_TRANSFORMS: 0, SCENE_UPDATE: 0}
    for i in range(1000):  # 2 s of state at 500 Hz
        for name, objs in by_name(view, bundle(t0 + i * 2_000_000)).items():
            counts[name] += len(objs)
    # 100 updates of the arms, and the world's frames and board twice.
    assert counts == {FRAME_TRANSFORMS: 102, SCENE_UPDATE: 102}


def test_the_calibration_matches_the_video_frame_and_the_published_intrinsics() -> None:
    view = FoxgloveView("telesurgery/or1")
    frame = Message(1, 1, 7, VideoFrame("ecm", 640, 480, True, 0, 123, 0, 0, b"\x00"))
    (d,) = view.derive(frame)
    assert (d.topic, d.schema_name) == ("telesurgery/or1/ecm/calibration", CAMERA_CALIBRATION)
    assert (d.obj["frame_id"], d.obj["width"], d.obj["height"]) == ("ecm", 640, 480)
    k = d.obj["K"]
    # Before the patient said otherwise: the layout's camera, whose top edge of the view is
    # at half the vertical field of view.
    half = math.radians(DEFAULT_LAYOUT.camera.fovy_deg) / 2.0
    assert k[5] - k[4] * math.tan(half) == pytest.approx(0.0, abs=1e-9)
    published = Intrinsics(640, 480, 500.0, 501.0, 320.5, 239.5)
    assert not list(view.derive(Message(1, 2, 8, Status(
        {"video": {"intrinsics": published.as_dict()}}))))
    (d,) = view.derive(frame)
    assert d.obj == camera_calibration(123, "ecm", published)
    assert (d.obj["K"][0], d.obj["K"][4], d.obj["K"][2], d.obj["K"][5]) == \
        (500.0, 501.0, 320.5, 239.5)


def test_the_live_server_answers_a_subscription_with_frames(
        free_port: int, zenoh_sessions: Callable[[ZenohConfig], Any]) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port}"
    nodes = zenoh_sessions(ZenohConfig(mode="peer", listen=[endpoint]))
    rec_z = zenoh_sessions(ZenohConfig(mode="client", connect=[endpoint]))
    with LiveServer(0) as live:
        recorder = Recorder(rec_z, "or1", None, live=live)
        recorder.start()
        try:
            pub = nodes.declare_publisher("telesurgery/or1/state")
            wait_until(lambda: bool(pub.matching_status.matching), "the recorder", TIMEOUT_S)
            lock = threading.Lock()

            def publish() -> None:
                with lock:
                    pub.put(encode(bundle(now_ns())))

            tf, state_topic = "telesurgery/or1/foxglove/tf", "telesurgery/or1/state"
            got = asyncio.run(first_frames(live.url, {tf, state_topic}, publish, TIMEOUT_S))
        finally:
            recorder.stop()
    assert got[tf]["channel"]["schemaName"] == FRAME_TRANSFORMS
    assert got[tf]["channel"]["encoding"] == "json"
    # The first frame is the world's frames or the arms', whichever the recorder sent first.
    children = {t["child_frame_id"] for t in got[tf]["message"]["transforms"]}
    assert children in ({"psm1_rcm", "psm2_rcm", "ecm"},
                        {f"{a}_{f}" for a in ("psm1", "psm2")
                         for f in ("tip", "setpoint", "jaw_pos", "jaw_neg")})
    state_msg = got[state_topic]["message"]
    assert state_msg["type"] == "STATE_BUNDLE"
    assert state_msg["states"][0]["measured"]["position"]["x"] == \
        pytest.approx(fk((0.1, -0.2, 0.12, 0.3, 0.2, -0.1)).position[0])


def test_a_port_in_use_is_one_clear_error() -> None:
    with LiveServer(0) as live, pytest.raises(ConfigError, match="--foxglove PORT"):
        LiveServer(live.port)


def test_a_recorder_with_nowhere_to_write_is_refused(
        zenoh_sessions: Callable[[ZenohConfig], Any]) -> None:
    z = zenoh_sessions(ZenohConfig(mode="peer", listen=["tcp/127.0.0.1:0"]))
    with pytest.raises(ConfigError, match="nothing to record to"):
        Recorder(z, "or1", None)



def test_the_shipped_layout_names_the_topics_of_the_session_asked_for() -> None:
    text = layout_for("or7")
    layout = json.loads(text)
    assert "telesurgery/or1/" not in text
    view = FoxgloveView(Keys("or7").prefix)
    keys = Keys("or7")
    known = {view.tf_topic, view.scene_topic, view.calibration_topic, keys.video,
             keys.safety_state, *(keys.measured_cf(a) for a in DEFAULT_LAYOUT.arms)}
    named = set(re.findall(r'"(telesurgery/[^".]+)', text))
    assert named
    assert named <= known
    assert set(layout["configById"]) == {"3D!scene", "Image!endoscope", "Plot!forces",
                                         "RawMessages!safety"}
