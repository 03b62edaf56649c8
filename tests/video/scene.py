"""A small surgical-looking scene (board, pegs, two movable instruments, an endoscope camera)."""

from __future__ import annotations

from typing import Any

import mujoco

from telesurgery.camera import CameraRenderer, RGBImage

SCENE = """
<mujoco>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".85 .8 .7" rgb2=".6 .55 .5"
             width="256" height="256"/>
    <material name="board" texture="grid" texrepeat="6 6"/>
  </asset>
  <worldbody>
    <light pos="0 0 0.6" dir="0 0 -1" diffuse=".8 .8 .8"/>
    <geom name="board" type="box" size=".12 .09 .005" material="board"/>
    <geom type="cylinder" size=".006 .02" pos="-.05 -.03 .02" rgba=".9 .2 .2 1"/>
    <geom type="cylinder" size=".006 .02" pos="0 -.03 .02" rgba=".2 .8 .2 1"/>
    <geom type="cylinder" size=".006 .02" pos=".05 -.03 .02" rgba=".2 .3 .9 1"/>
    <geom type="cylinder" size=".006 .02" pos="-.05 .03 .02" rgba=".9 .8 .1 1"/>
    <geom type="cylinder" size=".006 .02" pos="0 .03 .02" rgba=".8 .2 .8 1"/>
    <geom type="cylinder" size=".006 .02" pos=".05 .03 .02" rgba=".1 .8 .8 1"/>
    <body name="tool1" pos="-.04 0 .06">
      <joint name="tool1_x" type="slide" axis="1 0 0" range="-.05 .05"/>
      <geom type="capsule" size=".004" fromto="0 0 0 -.06 0 .08" rgba=".75 .75 .78 1"/>
    </body>
    <body name="tool2" pos=".04 0 .06">
      <joint name="tool2_x" type="slide" axis="1 0 0" range="-.05 .05"/>
      <geom type="capsule" size=".004" fromto="0 0 0 .06 0 .08" rgba=".75 .75 .78 1"/>
    </body>
    <camera name="ecm" pos="0 -.16 .17" xyaxes="1 0 0 0 .72 .69" fovy="60"/>
  </worldbody>
</mujoco>
"""


def move_tools(data: Any, step: int) -> None:
    """Slide both instruments to the position of ``step`` (2 mm a step, back and forth)."""
    x = ((step % 40) - 20) * 0.002
    data.qpos[0] = x
    data.qpos[1] = -x


def frames(scene: tuple[Any, Any], renderer: CameraRenderer, n: int) -> list[RGBImage]:
    """``n`` rendered frames with the instruments moving."""
    model, data = scene
    out = []
    for step in range(n):
        move_tools(data, step)
        mujoco.mj_forward(model, data)
        renderer.update_scene(data)
        out.append(renderer.render())
    return out
