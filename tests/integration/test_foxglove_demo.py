"""A real ``demo --record --foxglove`` run: watched live by a Foxglove protocol client while
it runs, and its recording read back with the ``mcap`` reader, the well-known messages
checked against the robot's kinematics and the scene."""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader

from telesurgery.demo.processes import free_port
from telesurgery.geometry import rotate
from telesurgery.record.foxglove import CAMERA_CALIBRATION, FRAME_TRANSFORMS, SCENE_UPDATE, SCHEMAS
from telesurgery.record.layout import recording_paths
from telesurgery.robots.sim.kinematics import fk
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT

from ..foxglove_client import first_frames

pytestmark = pytest.mark.integration

DEMO_S = 6.0
TIMEOUT_S = 300.0  # generous: a loaded 2-core machine
PREFIX = "telesurgery/or1"
ARMS = ("psm1", "psm2")
MIN_TIP_RCM_M = 0.045
SAME_TICK_NS = 500_000
"""A state bundle is sent within this [ns] of its tick's measured_js (a tick is 1 ms)."""


@dataclass(frozen=True)
class Run:
    """What the run left: the recording, the summary and the frames the live client got."""

    recording: Path
    summary: dict[str, Any]
    url: str
    live: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("foxglove-demo")
    url = f"ws://127.0.0.1:{free_port()}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "telesurgery", "demo", "--headless", "--duration", str(DEMO_S),
         "--record", str(base / "session"), "--foxglove", url.rsplit(":", 1)[1], "--workdir",
         str(base / "work"), "--summary", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        topics = {f"{PREFIX}/foxglove/tf", f"{PREFIX}/foxglove/scene", f"{PREFIX}/ecm/video"}
        live = asyncio.run(first_frames(url, topics, lambda: None,
                                        TIMEOUT_S))
        out, err = demo.communicate(timeout=TIMEOUT_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, err[-3000:]
    (recording,) = recording_paths(base / "session")
    return Run(recording, json.loads(out), url, live)


def test_the_live_server_sends_a_subscriber_frames_of_the_running_session(run: Run) -> None:
    video = run.live[f"{PREFIX}/ecm/video"]
    assert video["channel"]["schemaName"] == "foxglove.CompressedVideo"
    assert video["message"]["format"] == "h264"
    assert video["message"]["data"]
    assert run.live[f"{PREFIX}/foxglove/tf"]["channel"]["schemaName"] == FRAME_TRANSFORMS
    assert run.live[f"{PREFIX}/foxglove/scene"]["channel"]["schemaName"] == SCENE_UPDATE
    assert run.summary["record"]["foxglove"] == run.url


def _read(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every message of the recording decoded, by schema name, with ``topic`` added."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with path.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            assert schema is not None
            obj = json.loads(message.data)
            if schema.name in SCHEMAS:
                spec = json.loads(schema.data)
                assert spec == SCHEMAS[schema.name]
                assert set(obj) >= set(spec["properties"]), f"{channel.topic}: {schema.name}"
            out[schema.name].append({"topic": channel.topic, **obj})
    return out


@pytest.fixture(scope="module")
def recorded(run: Run) -> dict[str, list[dict[str, Any]]]:
    return _read(run.recording)


def _ns(stamp: dict[str, int]) -> int:
    return stamp["sec"] * 1_000_000_000 + stamp["nsec"]


def test_the_tip_frames_are_the_kinematics_of_the_measured_joints(
        recorded: dict[str, list[dict[str, Any]]]) -> None:
    joints: dict[str, list[tuple[int, list[float]]]] = defaultdict(list)
    for js in recorded["telesurgery.MeasuredJS"]:
        joints[js["arm"]].append((js["sent_ns"], js["position"]))
    checked = 0
    for tfs in recorded[FRAME_TRANSFORMS]:
        frames = {t["child_frame_id"]: t for t in tfs["transforms"]}
        for arm in ARMS:
            tip = frames.get(f"{arm}_tip")
            if tip is None:
                continue
            stamp = _ns(tip["timestamp"])
            # The state bundle is published right after the same tick's measured_js, when
            # the recorder has that one (it may drop some on a busy machine).
            times = [t for t, _ in joints[arm]]
            i = bisect.bisect_right(times, stamp) - 1
            if i < 0 or stamp - times[i] > SAME_TICK_NS:
                continue
            q = joints[arm][i][1]
            expected = fk(q[:6])
            got = [tip["translation"][k] for k in "xyz"]
            assert got == pytest.approx(expected.position, abs=1e-9)
            w, x, y, z = expected.orientation
            assert [tip["rotation"][k] for k in "xyzw"] == pytest.approx([x, y, z, w], abs=1e-9)
            assert math.dist(got, (0.0, 0.0, 0.0)) >= MIN_TIP_RCM_M
            # The jaws open by the measured jaw angle, half each way about the hinge.
            a, b = (frames[f"{arm}_jaw_{s}"]["rotation"] for s in ("pos", "neg"))
            za = rotate((a["w"], a["x"], a["y"], a["z"]), (0.0, 0.0, 1.0))
            zb = rotate((b["w"], b["x"], b["y"], b["z"]), (0.0, 0.0, 1.0))
            opening = math.acos(max(-1.0, min(1.0, sum(u * v for u, v in zip(za, zb,
                                                                               strict=True)))))
            assert opening == pytest.approx(abs(q[6]), abs=1e-6)
            checked += 1
    # Frames follow at 50 Hz for each arm: most of them have their tick's joints.
    assert checked >= DEMO_S * 10 * len(ARMS), f"only {checked} tip frames checked"


def test_the_world_frames_scene_and_calibration_match_the_layout(
        recorded: dict[str, list[dict[str, Any]]]) -> None:
    world = {t["child_frame_id"]: t for tfs in recorded[FRAME_TRANSFORMS]
             for t in tfs["transforms"] if t["parent_frame_id"] == "world"}
    for arm in ARMS:
        assert [world[f"{arm}_rcm"]["translation"][k] for k in "xyz"] == \
            pytest.approx(DEFAULT_LAYOUT.base_pose(arm).position)
    assert [world["ecm"]["translation"][k] for k in "xyz"] == \
        pytest.approx(DEFAULT_LAYOUT.camera.position)
    entities = {e["id"]: e for s in recorded[SCENE_UPDATE] for e in s["entities"]}
    assert len(entities["board"]["cylinders"]) == len(DEFAULT_LAYOUT.pegs)
    assert {f"{arm}/instrument" for arm in ARMS} <= set(entities)
    frames = recorded["foxglove.CompressedVideo"]
    calibrations = recorded[CAMERA_CALIBRATION]
    assert frames
    assert len(calibrations) == len(frames)
    # One calibration per frame, same frame id, size and time: the image panel pairs them.
    # Once the patient's status has published its camera's intrinsics, they are the ones.
    published = [st["data"]["video"]["intrinsics"] for st in recorded["telesurgery.Status"]
                 if "intrinsics" in st["data"].get("video", {})]
    assert published
    k = published[-1]
    assert calibrations[-1]["K"] == [k["fx"], 0.0, k["cx"], 0.0, k["fy"], k["cy"], 0.0, 0.0, 1.0]
    by_time = {_ns(c["timestamp"]): c for c in calibrations}
    for frame in frames:
        cal = by_time[_ns(frame["timestamp"])]
        assert (cal["frame_id"], cal["width"], cal["height"]) == \
            (frame["frame_id"], frame["width"], frame["height"])
