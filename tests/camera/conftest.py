"""A tiny scene to check what the camera sees: red left, green right, a blue floor below."""

from __future__ import annotations

from typing import Any

import mujoco
import pytest

SCENE = """
<mujoco>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" diffuse="1 1 1"/>
    <geom type="plane" size="2 2 .1" pos="0 0 -.3" rgba=".1 .1 .9 1"/>
    <geom name="left" type="box" size=".2 .05 .2" pos="-.3 0 0" rgba=".9 .1 .1 1"/>
    <body name="right" pos=".3 0 0">
      <joint name="slide" type="slide" axis="0 0 1"/>
      <geom type="box" size=".2 .05 .2" rgba=".1 .9 .1 1"/>
    </body>
    <camera name="front" pos="0 -1.5 0" xyaxes="1 0 0 0 0 1" fovy="60"/>
    <camera name="side" pos="-1.5 0 0" xyaxes="0 -1 0 0 0 1"/>
  </worldbody>
</mujoco>
"""


@pytest.fixture
def scene() -> tuple[Any, Any]:
    """(model, data) of the scene, forward kinematics done; its body slides along z [m]."""
    model = mujoco.MjModel.from_xml_string(SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data
