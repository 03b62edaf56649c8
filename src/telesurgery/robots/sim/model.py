"""The MuJoCo model of the peg-transfer scene, generated as MJCF from the scene layout.

Each arm is the PSM's modified-DH chain (``kinematics.PSM_DH``) written as
nested bodies: a body's fixed frame is ``Rx(alpha) Tx(a) Rz(theta0) Tz(d0)``
(with the joint offset folded into theta0 or d0) and its joint turns about or
slides along the body's z, so MuJoCo's kinematics equal ``kinematics.fk``.
The two jaw fingers hinge on the wrist-yaw axis, each by half the jaw opening.

Physics: 1 ms timestep (one step per servo tick), implicit-in-velocity
integration so stiff position actuators with damping stay stable, arm bodies
gravity-compensated (the real arm's controller does it), free rings. Contacts
are filtered by bit masks: the board and pegs touch rings and tools (the board
touches a ring through four feet); rings touch each other; the two instruments
do not touch each other. Shadows
and reflections are off, for cheap offscreen rendering.
"""

from __future__ import annotations

import math
from typing import Final
from xml.sax.saxutils import quoteattr

import mujoco
import numpy as np

from telesurgery.geometry import FloatArray, Quat, Vec3, matrix_to_quat
from telesurgery.robots.sim.kinematics import (
    JAW_LOWER,
    JAW_UPPER,
    PSM_DH,
    TOOLTIP_OFFSET,
    DHLink,
)
from telesurgery.robots.sim.scene import DEFAULT_LAYOUT, PegTransferLayout

TIMESTEP_S: Final = 0.001
"""Physics timestep [s]: one step per 1 kHz servo tick."""

JAW_FINGER_LENGTH_M: Final = 0.010
"""Length [m] of each jaw finger beyond the wrist-yaw axis (the tool tip)."""
JAW_GRASP_DEPTH_M: Final = 0.0055
"""Depth [m] along the jaws, from the tool tip, of the middle of what a closed jaw holds."""
_JAW_GAP_M: Final = 0.0008
_JAW_HALF_THICKNESS_M: Final = 0.0007
_JAW_HALF_WIDTH_M: Final = 0.0015

# Contact bit masks: a pair collides when (type1 & affinity2) or (type2 & affinity1).
# A ring touches the board only through a few feet: resting on all its capsules it
# would make 16 contacts and triple the cost of a physics step.
_BOARD, _PEG, _RING, _FOOT, _TOOL = 1, 2, 4, 8, 16
_RING_FEET: Final = 4

# Natural frequencies [rad/s] of the joint servos, from which kp = armature * w^2.
_OUTER_ARMATURE: Final = (0.05, 0.05, 0.5)
_WRIST_ARMATURE: Final = 1e-3
_FINGER_ARMATURE: Final = 1e-5
_ARM_OMEGA: Final = 150.0
_FINGER_OMEGA: Final = 100.0
_FINGER_TORQUE_NM: Final = 0.01


def joint_names(arm: str) -> tuple[str, ...]:
    """MuJoCo names of ``arm``'s six PSM joints, in DH order."""
    return tuple(f"{arm}_{link.name}" for link in PSM_DH)


def finger_joint_names(arm: str) -> tuple[str, str]:
    """MuJoCo names of ``arm``'s two jaw-finger hinges; the jaw opening is their sum."""
    return (f"{arm}_jaw_a", f"{arm}_jaw_b")


def tip_site_name(arm: str) -> str:
    """MuJoCo name of the site on ``arm``'s tool tip (the ``kinematics.fk`` frame)."""
    return f"{arm}_tip"


def tool_body_names(arm: str) -> tuple[str, ...]:
    """Bodies of ``arm``'s instrument whose contacts make the tool-tip wrench."""
    return (f"{arm}_{PSM_DH[3].name}", f"{arm}_{PSM_DH[4].name}", f"{arm}_{PSM_DH[5].name}",
            f"{arm}_jaw_a", f"{arm}_jaw_b")


def ring_body_name(index: int) -> str:
    """MuJoCo name of ring ``index``'s free body."""
    return f"ring{index}"


def _fmt(values: tuple[float, ...] | list[float] | FloatArray) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


def _quat(rot: FloatArray) -> str:
    q: Quat = matrix_to_quat(rot)
    return _fmt(q)


def _link_frame(link: DHLink) -> tuple[Vec3, FloatArray]:
    """Fixed part of a modified-DH link transform, joint offset folded in: (pos, rot)."""
    ca, sa = math.cos(link.alpha), math.sin(link.alpha)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]])
    theta0 = 0.0 if link.prismatic else link.offset
    d0 = link.d + (link.offset if link.prismatic else 0.0)
    ct, st = math.cos(theta0), math.sin(theta0)
    rz = np.array([[ct, -st, 0.0], [st, ct, 0.0], [0.0, 0.0, 1.0]])
    rot = rx @ rz
    pos = rx @ np.array([link.a, 0.0, 0.0]) + rot @ np.array([0.0, 0.0, d0])
    return (float(pos[0]), float(pos[1]), float(pos[2])), rot


def _finger(arm: str, side: str, sign: float) -> str:
    # Finger "a" sits on +x of the yaw frame and opens toward +x: it turns about -z.
    x = sign * (_JAW_GAP_M + _JAW_HALF_THICKNESS_M)
    return (
        f'<body name="{arm}_jaw_{side}" gravcomp="1">'
        f'<inertial pos="0 0.005 0" mass="0.002" diaginertia="2e-8 2e-8 2e-8"/>'
        f'<joint name="{arm}_jaw_{side}" type="hinge" axis="0 0 {-sign:g}" '
        f'range="{JAW_LOWER / 2:.6g} {JAW_UPPER / 2:.6g}" armature="{_FINGER_ARMATURE:g}" '
        f'damping="1e-5"/>'
        f'<geom class="jaw" pos="{x:.6g} {JAW_FINGER_LENGTH_M / 2:.6g} 0" '
        f'size="{_JAW_HALF_THICKNESS_M:g} {JAW_FINGER_LENGTH_M / 2:.6g} {_JAW_HALF_WIDTH_M:g}"/>'
        f"</body>"
    )


def _arm(arm: str, layout: PegTransferLayout) -> str:
    base = layout.base_pose(arm)
    names = joint_names(arm)
    parts = [f'<body name="{arm}_base" pos="{_fmt(base.position)}" '
             f'quat="{_fmt(base.orientation)}">',
             f'<site name="{arm}_rcm" size="0.002" rgba="1 1 0 1"/>',
             '<geom class="visual" type="sphere" size="0.006" rgba="0.3 0.3 0.35 1"/>']
    armature = (*_OUTER_ARMATURE, _WRIST_ARMATURE, _WRIST_ARMATURE, _WRIST_ARMATURE)
    for i, link in enumerate(PSM_DH):
        pos, rot = _link_frame(link)
        kind = "slide" if link.prismatic else "hinge"
        parts.append(f'<body name="{names[i]}" pos="{_fmt(pos)}" quat="{_quat(rot)}" '
                     f'gravcomp="1">')
        parts.append('<inertial pos="0 0 0" mass="0.02" diaginertia="1e-6 1e-6 1e-6"/>')
        parts.append(f'<joint name="{names[i]}" type="{kind}" axis="0 0 1" '
                     f'range="{link.lower:.6g} {link.upper:.6g}" armature="{armature[i]:g}"/>')
        if i == 2:
            # The shaft, from the instrument's back end to the wrist-pitch axis.
            parts.append(f'<geom class="tool" type="capsule" size="0.004" '
                         f'fromto="0 0 0 0 0 {PSM_DH[3].d:.6g}" rgba="0.15 0.15 0.17 1"/>')
        elif i == 4:
            parts.append(f'<geom class="tool" type="capsule" size="0.0025" '
                         f'fromto="0 0 0 {PSM_DH[5].a:.6g} 0 0" rgba="0.7 0.7 0.72 1"/>')
    parts.append(f'<site name="{tip_site_name(arm)}" size="0.0012" rgba="1 0 0 1" '
                 f'quat="{_quat(TOOLTIP_OFFSET)}"/>')
    parts.append(_finger(arm, "a", 1.0))
    parts.append(_finger(arm, "b", -1.0))
    parts.append("</body>" * (len(PSM_DH) + 1))
    return "".join(parts)


def _actuators(arm: str) -> str:
    out = []
    armature = (*_OUTER_ARMATURE, _WRIST_ARMATURE, _WRIST_ARMATURE, _WRIST_ARMATURE)
    for name, link, arm_i in zip(joint_names(arm), PSM_DH, armature, strict=True):
        kp = arm_i * _ARM_OMEGA**2
        out.append(f'<position name="{name}" joint="{name}" kp="{kp:.6g}" dampratio="1" '
                   f'ctrlrange="{link.lower:.6g} {link.upper:.6g}"/>')
    kp = _FINGER_ARMATURE * _FINGER_OMEGA**2
    for name in finger_joint_names(arm):
        out.append(f'<position name="{name}" joint="{name}" kp="{kp:.6g}" dampratio="1" '
                   f'ctrlrange="{JAW_LOWER / 2:.6g} {JAW_UPPER / 2:.6g}" '
                   f'forcerange="{-_FINGER_TORQUE_NM:g} {_FINGER_TORQUE_NM:g}"/>')
    return "".join(out)


def _ring(index: int, layout: PegTransferLayout) -> str:
    ring = layout.ring
    centre = layout.ring_on_peg(layout.start_pegs[index])
    n = ring.segments
    colour = _COLOURS[index % len(_COLOURS)]
    geoms = []
    for k in range(n):
        # Vertices between segments, so that one segment is centred on -x, under the tab.
        a0 = math.pi + (k - 0.5) * 2.0 * math.pi / n
        a1 = a0 + 2.0 * math.pi / n
        p0 = (ring.radius * math.cos(a0), ring.radius * math.sin(a0), 0.0)
        p1 = (ring.radius * math.cos(a1), ring.radius * math.sin(a1), 0.0)
        geoms.append(f'<geom class="ring" type="capsule" size="{ring.tube_radius:g}" '
                     f'fromto="{_fmt(p0)} {_fmt(p1)}" rgba="{colour}"/>')
        if k % (n // _RING_FEET) == 0:
            geoms.append(f'<geom class="foot" type="sphere" size="{ring.tube_radius:g}" '
                         f'pos="{_fmt(p0)}" rgba="{colour}"/>')
    for side in (-1, 1)[:ring.tabs]:
        geoms.append(f'<geom class="ring" type="box" pos="{_fmt(ring.tab_offset(side))}" '
                     f'size="{_fmt(ring.tab_half)}" rgba="{colour}"/>')
    i_z = ring.mass * ring.radius**2
    return (f'<body name="{ring_body_name(index)}" pos="{_fmt(centre)}">'
            f'<freejoint name="{ring_body_name(index)}"/>'
            f'<inertial pos="0 0 0" mass="{ring.mass:g}" '
            f'diaginertia="{i_z / 2:.6g} {i_z / 2:.6g} {i_z:.6g}"/>'
            + "".join(geoms) + "</body>")


_COLOURS: Final = ("0.9 0.35 0.2 1", "0.2 0.6 0.9 1", "0.95 0.8 0.2 1", "0.5 0.85 0.4 1")


TISSUE_BODY: Final = "tissue"
"""MuJoCo name of the tissue pad's body (and of its slide joint)."""


def _tissue(layout: PegTransferLayout) -> str:
    pad = layout.tissue
    if pad is None:
        return ""
    # A stiffer contact than the default, so that what the tip sinks into the plate
    # (MuJoCo's soft contact) stays well under the spring's travel.
    return (f'<body name="{TISSUE_BODY}" pos="{pad.centre[0]:g} {pad.centre[1]:g} '
            f'{pad.height / 2:g}" gravcomp="1">'
            f'<joint name="{TISSUE_BODY}" type="slide" axis="0 0 1" '
            f'stiffness="{pad.stiffness_n_m:g}" damping="{pad.damping_n_s_m:g}" '
            f'range="{-pad.travel:g} 0.001"/>'
            f'<geom class="board" type="box" size="{pad.half[0]:g} {pad.half[1]:g} '
            f'{pad.height / 2:g}" solref="0.001 1" mass="0.05" rgba="0.85 0.45 0.45 1"/>'
            f"</body>")


def _marks(layout: PegTransferLayout) -> str:
    # Drawn flat on the board, seen but never touched.
    return "".join(f'<geom class="visual" type="cylinder" size="0.0015 0.0002" '
                   f'pos="{x:.6g} {y:.6g} 0.0002" rgba="0.95 0.95 0.2 1"/>'
                   for x, y, _ in layout.marks[:len(layout.marks) - 1 or None])


def build_mjcf(layout: PegTransferLayout = DEFAULT_LAYOUT) -> str:
    """The MJCF text of the scene: board, pegs, rings, both PSMs and the endoscope."""
    cam = layout.camera.pose_mujoco()
    hx, hy = layout.board_half
    pegs = "".join(
        f'<geom class="peg" type="capsule" size="{layout.peg_radius:g}" '
        f'fromto="{_fmt((x, y, 0.0))} {_fmt((x, y, layout.peg_height - layout.peg_radius))}"/>'
        for x, y, _ in layout.pegs)
    rings = "".join(_ring(i, layout) for i in range(layout.rings))
    arms = "".join(_arm(arm, layout) for arm in layout.arms)
    actuators = "".join(_actuators(arm) for arm in layout.arms)
    # One no-slip pass: without it soft contacts creep, and a ring held in closed jaws
    # slides out of them by about a millimetre a second (a carry under delay dropped it on
    # a peg); the pass costs about 8 us a step (bench: 51 -> 59 us with idle arms).
    return f"""<mujoco model="peg_transfer">
<compiler angle="radian" autolimits="true"/>
<option timestep="{TIMESTEP_S:g}" integrator="implicitfast" cone="pyramidal" noslip_iterations="1"/>
<visual>
  <quality shadowsize="0"/>
  <global offwidth="1920" offheight="1080"/>
  <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
</visual>
<default>
  <geom contype="0" conaffinity="0" solref="0.004 1" friction="1 0.005 0.0001"/>
  <default class="visual"><geom group="1"/></default>
  <default class="board"><geom contype="{_BOARD}" conaffinity="0" rgba="0.25 0.45 0.3 1"/>
  </default>
  <default class="peg"><geom contype="{_PEG}" conaffinity="0" rgba="0.85 0.85 0.8 1"/>
  </default>
  <default class="ring"><geom contype="{_RING}" conaffinity="{_PEG | _RING | _TOOL}"/></default>
  <default class="foot"><geom contype="{_FOOT}" conaffinity="{_BOARD}"/></default>
  <default class="tool"><geom contype="{_TOOL}" conaffinity="{_BOARD | _PEG}"/></default>
  <default class="jaw"><geom type="box" contype="{_TOOL}" conaffinity="{_BOARD | _PEG}" condim="4"
    friction="1.5 0.01 0.0001" rgba="0.8 0.8 0.82 1"/></default>
</default>
<worldbody>
  <light name="top" pos="0 0 0.6" dir="0 0 -1" castshadow="false" diffuse="0.6 0.6 0.6"/>
  <geom name="board" class="board" type="plane" size="{hx:g} {hy:g} 0.01"/>
  {pegs}
  <camera name={quoteattr(layout.camera.name)} pos="{_fmt(cam.position)}"
    quat="{_fmt(cam.orientation)}" fovy="{layout.camera.fovy_deg:g}"/>
  {rings}
  {_tissue(layout)}
  {_marks(layout)}
  {arms}
</worldbody>
<actuator>{actuators}</actuator>
</mujoco>
"""


def load_model(layout: PegTransferLayout = DEFAULT_LAYOUT) -> mujoco.MjModel:
    """Compile the scene of ``layout`` into a MuJoCo model."""
    return mujoco.MjModel.from_xml_string(build_mjcf(layout))


__all__ = [
    "JAW_FINGER_LENGTH_M",
    "JAW_GRASP_DEPTH_M",
    "TIMESTEP_S",
    "TISSUE_BODY",
    "build_mjcf",
    "finger_joint_names",
    "joint_names",
    "load_model",
    "ring_body_name",
    "tip_site_name",
    "tool_body_names",
]
