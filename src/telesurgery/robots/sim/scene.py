"""The peg-transfer scene as plain values: board, pegs, rings, arm RCMs, endoscope camera.

One layout feeds both the MuJoCo model (``model.py``) and whoever must know
the board without seeing the simulator (the autopilot). World frame: z up,
origin at the centre of the board's top surface; x to the right and y away
from the endoscope, as seen through it. Lengths [m], angles [rad].

The board is a small version of the FLS peg transfer: six pegs in two columns
of three; a ring around each peg of the left column. A ring is an octagon of
capsules with an upright tab on its left side (toward -x), which is what the
jaws grasp: the jaws open along x and their hinge runs along y.

Each training task (``telesurgery.tasks``) has its layout here (``task_layout``): the
peg transfer's; the handover's, whose rings carry a second tab on their right (+x) so
that the right arm can take a ring the left one holds; the precision task's, no rings and
a circle of marks to trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from telesurgery.errors import ConfigError
from telesurgery.geometry import Vec3, matrix_to_quat
from telesurgery.types import Pose

JAWS_DOWN: Final = matrix_to_quat(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]))
"""Tool orientation (world and base axes) for grasping a ring's tab: jaws pointing down,
hinge along y, opening along x. It is the PSM's orientation at q = 0."""


@dataclass(frozen=True, slots=True)
class RingGeometry:
    """A ring of ``segments`` capsules of ``tube_radius`` on a circle of ``radius``, with a
    grasping tab: ``tab_half`` half sizes (radial, tangential, vertical) [m], its centre
    ``tab_height`` above the ring's mid-plane, ``mass`` [kg]."""

    radius: float = 0.010
    tube_radius: float = 0.0015
    segments: int = 8
    tab_half: Vec3 = (0.001, 0.0025, 0.0055)
    tab_height: float = 0.0055
    mass: float = 0.005
    tabs: int = 1
    """1: the tab at -x; 2: a second one at +x (the handover's rings)."""

    @property
    def tab_radius(self) -> float:
        """Distance [m] of the tab's centre from the ring's axis: on the middle of a segment."""
        return self.radius * math.cos(math.pi / self.segments)

    @property
    def rest_height(self) -> float:
        """Height [m] of the ring's mid-plane above the board when it lies flat."""
        return self.tube_radius

    def tab_offset(self, side: int = -1) -> Vec3:
        """Tab centre [m] relative to the ring centre, ring lying flat: its first tab at -x
        (``side`` -1), its second at +x (``side`` 1)."""
        return (side * self.tab_radius, 0.0, self.tab_height)


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """The fixed endoscope: ``position`` [m] looking at ``target`` [m], vertical field of
    view ``fovy_deg`` [deg]."""

    name: str = "ecm"
    position: Vec3 = (0.0, -0.12, 0.16)
    target: Vec3 = (0.0, 0.02, 0.01)
    fovy_deg: float = 50.0

    def pose_opencv(self) -> Pose:
        """Camera frame in the world, OpenCV axes: x right, y down, z forward (the view).

        MuJoCo's camera frame has the same x but looks down its -z with y up:
        ``R_opencv = R_mujoco @ diag(1, -1, -1)``, a half turn about x.
        """
        forward = np.subtract(self.target, self.position)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.column_stack((right, down, forward))
        return Pose(self.position, matrix_to_quat(rot))

    def pose_mujoco(self) -> Pose:
        """Camera frame in the world, MuJoCo axes: x right, y up, looking along -z."""
        cv = self.pose_opencv()
        return Pose(cv.position, matrix_to_quat(cv.matrix()[:3, :3] @ np.diag([1.0, -1.0, -1.0])))


@dataclass(frozen=True, slots=True)
class TissuePad:
    """A block of tissue of known stiffness on the board: a rigid plate on a vertical spring
    of ``stiffness_n_m`` [N/m] and ``damping_n_s_m`` [N s/m], its top ``height`` [m]
    above the board at rest, centred at ``centre`` (x, y) [m] with ``half`` (x, y) half
    sizes [m], travelling down at most ``travel`` [m]. Pressed ``d`` [m] below its
    rest height it pushes back ``stiffness_n_m * d``: the ground truth the force
    sensor is checked against.

    Defaults: 400 N/m, within the hundreds of newtons per metre that indentation of
    soft abdominal organs shows at a few millimetres (our choice of one figure)."""

    centre: tuple[float, float] = (0.0, -0.05)
    half: tuple[float, float] = (0.012, 0.01)
    height: float = 0.012
    stiffness_n_m: float = 400.0
    damping_n_s_m: float = 2.0
    travel: float = 0.01


@dataclass(frozen=True, slots=True)
class PegTransferLayout:
    """Where everything is, in the world frame [m].

    ``rcm``: each arm's name and remote centre of motion (psm1 enters on the right of
    the endoscope view, psm2 on the left); arm base frames are axis-aligned
    with the world (their z up, so the shaft at q = 0 points down). ``pegs``:
    base centres of the pegs (``peg_radius``, ``peg_height``). ``start_pegs[i]``
    is where ring ``i`` starts; ``target_pegs[i]`` where it must go.
    """

    rcm: tuple[tuple[str, Vec3], ...] = (("psm1", (0.05, -0.02, 0.19)),
                                         ("psm2", (-0.05, -0.02, 0.19)))
    pegs: tuple[Vec3, ...] = ((-0.035, 0.03, 0.0), (-0.035, 0.0, 0.0), (-0.035, -0.03, 0.0),
                              (0.035, 0.03, 0.0), (0.035, 0.0, 0.0), (0.035, -0.03, 0.0))
    peg_radius: float = 0.002
    peg_height: float = 0.020
    start_pegs: tuple[int, ...] = (0, 1, 2)
    target_pegs: tuple[int, ...] = (3, 4, 5)
    ring: RingGeometry = RingGeometry()
    board_half: tuple[float, float] = (0.09, 0.07)
    camera: CameraSpec = CameraSpec()
    home_depth: float = 0.13
    """Depth [m] below its RCM at which each tool starts, jaws down, above the pegs."""
    tissue: TissuePad | None = None
    """A pad of known stiffness on the board (none in the peg transfer)."""
    task: str = "peg_transfer"
    """The training task this board is set up for (``telesurgery.tasks``)."""
    marks: tuple[Vec3, ...] = ()
    """Points [m, world] to trace in order, at the height the tip traces them (the
    precision task); drawn on the board below them."""
    mark_tolerance_m: float = 0.002
    """How far [m] the tip may stray from the line between two marks."""

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms of the scene, in model order."""
        return tuple(name for name, _ in self.rcm)

    def base_pose(self, arm: str) -> Pose:
        """The base (RCM) frame of ``arm`` in the world; ConfigError for an unknown arm."""
        for name, position in self.rcm:
            if name == arm:
                return Pose(position)
        raise self._unknown(arm)

    def _unknown(self, arm: str) -> ConfigError:
        return ConfigError(f"the peg-transfer scene has no arm {arm!r}; its arms are "
                           f"{', '.join(self.arms)}")

    def ring_on_peg(self, peg: int) -> Vec3:
        """Centre [m] of a ring lying flat on the board around peg ``peg``."""
        x, y, _ = self.pegs[peg]
        return (x, y, self.ring.rest_height)

    def home_tip(self, arm: str) -> Pose:
        """The start pose of ``arm``'s tool tip in its base frame: straight below the RCM,
        jaws down (``JAWS_DOWN``); ConfigError for an unknown arm."""
        if arm not in self.arms:
            raise self._unknown(arm)
        return Pose((0.0, 0.0, -self.home_depth), JAWS_DOWN)

    @property
    def rings(self) -> int:
        """Number of rings."""
        return len(self.start_pegs)


DEFAULT_LAYOUT: Final = PegTransferLayout()


def _circle(centre: Vec3, radius_m: float, points: int) -> tuple[Vec3, ...]:
    """``points`` marks on a circle, clockwise as the endoscope sees it, starting nearest
    the camera, and the first again to close it."""
    x, y, z = centre
    ring = [(x + radius_m * math.sin(-2.0 * math.pi * k / points),
             y - radius_m * math.cos(2.0 * math.pi * k / points), z) for k in range(points)]
    return (*ring, ring[0])


TASK_LAYOUTS: Final = {
    "peg_transfer": DEFAULT_LAYOUT,
    "handover": PegTransferLayout(ring=RingGeometry(tabs=2), task="handover"),
    # The tip (the wrist's end, whose pose the teleoperation drives) 14 mm above the
    # board: the 10 mm jaws closed below it clear the board by 4 mm.
    "precision": PegTransferLayout(start_pegs=(), target_pegs=(), task="precision",
                                   marks=_circle((0.0, 0.0, 0.014), 0.02, 12)),
}
"""Each training task's board."""


def task_layout(task: str) -> PegTransferLayout:
    """The board of training task ``task``; ConfigError listing the tasks."""
    try:
        return TASK_LAYOUTS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; choose one of "
                          f"{', '.join(sorted(TASK_LAYOUTS))}") from None


__all__ = ["DEFAULT_LAYOUT", "JAWS_DOWN", "TASK_LAYOUTS", "CameraSpec", "PegTransferLayout",
           "RingGeometry", "TissuePad", "task_layout"]
