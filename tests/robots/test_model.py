"""The MuJoCo scene: what is in it, and the settings that keep it cheap to step and render."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from telesurgery.errors import ConfigError
from telesurgery.robots.sim.model import (
    TIMESTEP_S,
    build_mjcf,
    finger_joint_names,
    joint_names,
    load_model,
    ring_body_name,
    tip_site_name,
)
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, CameraSpec, PegTransferLayout


def test_the_scene_holds_two_psms_six_pegs_three_rings_and_the_endoscope() -> None:
    model = load_model()
    for arm in ("psm1", "psm2"):
        for name in (*joint_names(arm), *finger_joint_names(arm)):
            joint = model.joint(name)
            actuator = model.actuator(name)
            assert actuator.trntype == mujoco.mjtTrn.mjTRN_JOINT
            assert actuator.trnid[0] == joint.id
        model.site(tip_site_name(arm))
    pegs = [model.geom(i) for i in range(model.ngeom)
            if model.geom(i).type == mujoco.mjtGeom.mjGEOM_CAPSULE
            and model.geom(i).bodyid == 0]
    assert len(pegs) == 6
    for i in range(3):
        body = model.body(ring_body_name(i))
        assert model.jnt_type[body.jntadr[0]] == mujoco.mjtJoint.mjJNT_FREE
    assert model.camera("ecm").fovy[0] == pytest.approx(DEFAULT_LAYOUT.camera.fovy_deg)
    assert model.opt.timestep == TIMESTEP_S == 0.001


def test_shadows_and_reflections_are_off() -> None:
    model = load_model()
    assert model.vis.quality.shadowsize == 0
    assert not model.light_castshadow.any()
    assert not model.mat_reflectance.any()


def test_the_instruments_do_not_touch_each_other_but_touch_the_board() -> None:
    model = load_model()

    def collide(a: int, b: int) -> bool:
        return bool(model.geom_contype[a] & model.geom_conaffinity[b]
                    or model.geom_contype[b] & model.geom_conaffinity[a])

    def jaw(arm: str) -> int:
        return int(np.flatnonzero(model.geom_bodyid == model.body(f"{arm}_jaw_a").id)[0])

    board = model.geom("board").id
    ring_tab = int(np.flatnonzero(model.geom_bodyid == model.body("ring0").id)[-1])
    assert not collide(jaw("psm1"), jaw("psm2"))
    assert collide(jaw("psm1"), board)
    assert collide(jaw("psm1"), ring_tab)


def test_the_camera_frame_conventions() -> None:
    cam = CameraSpec(position=(0.0, -0.1, 0.1), target=(0.0, 0.0, 0.0))
    cv = cam.pose_opencv().matrix()[:3, :3]
    mj = cam.pose_mujoco().matrix()[:3, :3]
    look = np.array([0.0, 1.0, -1.0]) / math.sqrt(2.0)
    np.testing.assert_allclose(cv[:, 2], look, atol=1e-12)   # OpenCV z: forward
    np.testing.assert_allclose(mj[:, 2], -look, atol=1e-12)  # MuJoCo looks down its -z
    np.testing.assert_allclose(cv[:, 0], (1.0, 0.0, 0.0), atol=1e-12)  # same x: right
    assert cv[2, 1] < 0.0  # OpenCV y points down the image, toward the board


def test_a_layout_without_an_arm_name_says_which_arms_exist() -> None:
    with pytest.raises(ConfigError, match="no arm 'psm3'; its arms are psm1, psm2"):
        DEFAULT_LAYOUT.base_pose("psm3")


def test_a_one_arm_layout_builds() -> None:
    layout = PegTransferLayout(rcm=(("psm1", (0.05, -0.02, 0.19)),))
    model = mujoco.MjModel.from_xml_string(build_mjcf(layout))
    assert model.nu == 8
