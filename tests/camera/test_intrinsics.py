"""The endoscope's intrinsics put a point where the renderer draws it, and where MuJoCo's own
camera puts the instruments' tips."""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
import pytest

from telesurgery.camera import CameraRenderer
from telesurgery.camera.camera import EndoscopeCamera
from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.errors import ConfigError
from telesurgery.robots.sim.robot import SimRobot


def test_the_green_face_is_drawn_where_the_intrinsics_project_it(
        scene: tuple[Any, Any]) -> None:
    model, data = scene
    width, height = 320, 240
    with CameraRenderer(model, "front", width, height) as r:
        r.update_scene(data)
        image = r.render().astype(np.int32)
    green = image[:, :, 1] > image[:, :, 0] + 60  # lit or shaded, green dominates
    rows, cols = np.nonzero(green)
    k = Intrinsics.from_fovy(width, height, float(model.cam("front").fovy[0]))
    # The green box's front face, from x 0.1 to 0.5 m and z -0.2 to 0.2 m at y = -0.05 m in
    # the world, seen by a camera at (0, -1.5, 0) looking along +y: at depth 1.45 m in the
    # camera's OpenCV frame. Its right, top and bottom edges bound the green (its left side
    # face shows too, beyond its left edge).
    _, top = k.project((0.1, -0.2, 1.45)) or (0.0, 0.0)
    right, bottom = k.project((0.5, 0.2, 1.45)) or (0.0, 0.0)
    assert cols.max() + 1 == pytest.approx(right, abs=1.0)
    assert rows.min() == pytest.approx(top, abs=1.0)
    assert rows.max() + 1 == pytest.approx(bottom, abs=1.0)


def test_registration_and_intrinsics_agree_with_mujocos_camera_on_the_tips() -> None:
    robot = SimRobot()
    try:
        camera = EndoscopeCamera(robot.model, robot.data, width=640, height=480)
        k = camera.intrinsics
        mujoco.mj_forward(robot.model, robot.data)
        cam = robot.model.cam("ecm").id
        position = robot.data.cam_xpos[cam]
        axes = robot.data.cam_xmat[cam].reshape(3, 3)  # columns: x right, y up, -z forward
        f = 240.0 / math.tan(math.radians(float(robot.model.cam_fovy[cam])) / 2.0)
        for name, arm in robot.arms.items():
            tip = arm.measured_cp()
            world = robot.layout.base_pose(name).compose(tip).position
            x, y, z = axes.T @ (np.asarray(world) - position)
            expected = (320.0 + f * x / -z, 240.0 - f * y / -z)
            ours = k.project(arm.registration().compose(tip).position)
            assert ours is not None
            assert ours == pytest.approx(expected, abs=0.05), name
            assert 0.0 < ours[0] < 640.0, name  # in view
            assert 0.0 < ours[1] < 480.0, name
    finally:
        robot.close()


def test_behind_the_camera_is_nowhere_and_bad_input_is_refused() -> None:
    k = Intrinsics.from_fovy(640, 480, 50.0)
    assert k.project((0.0, 0.0, -0.1)) is None
    assert k.project((0.0, 0.0, 0.2)) == (320.0, 240.0)
    assert Intrinsics.parse(k.as_dict()) == k
    for bad in (None, {"width": 640}, {**k.as_dict(), "fx": "wide"},
                {**k.as_dict(), "fy": math.inf}, {**k.as_dict(), "height": 0}):
        assert Intrinsics.parse(bad) is None
    with pytest.raises(ConfigError, match="field of view"):
        Intrinsics.from_fovy(640, 480, 180.0)
