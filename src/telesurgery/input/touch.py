"""``touch``: the autopilot surgeon's hands on two simulated haptic devices that display the
force at the instruments' tips, through the master side's passivity controller.

One ``SimulatedTouch`` per arm, held by a simulated hand: the hand is a spring
(``HAND_N_M``) and a damper (``HAND_N_S_M``) between where the autopilot's hand wants to be
and the stylus. The devices are stepped at their 1 kHz servo rate inside ``read``, which
catches up the whole periods of the console's clock since the last call; the pose the
console gets is the device's stylus (as its encoders read it) mapped back into the view
frame, so the commands the robot follows come from the devices, and what the devices
display pushes back on the hands. Orientation, grip and clutch are the autopilot's (the
Touch renders no torque, and its gimbal and buttons are not simulated).

Frames and scales:

- the view frame (the camera's: x right, y down, z into the scene) and the device frame
  (OpenHaptics': x right, y up, z towards the user) differ by a half turn about x:
  ``device = diag(1, -1, -1) view``;
- the hand's motion about its neutral position is scaled by ``DEVICE_PER_HAND`` (0.3)
  into the device's workspace, centred: the autopilot re-indexes once its hand is 0.1 m
  from neutral, which is 30 mm on the device, within the 70 mm depth's 35 mm;
- forces: the force at the tip [N], in the view frame, is displayed times
  ``FORCE_SCALE`` (0.1, as ``bench haptics``), within the device's 3.3 N peak and 0.88 N
  continuous force.

Passivity, per device axis (``haptics.passivity``), in tip units as ``bench haptics``
counts them (forces at the tip, velocities of the tool: the device's times ``scale /
DEVICE_PER_HAND``): the slave port's energy is observed here from the received states,
the work of the force on the tool over each step of the tip's measured position
(``render_force``); the master port's ``PassivityObserver`` counts what the displayed
force does on the stylus; ``impedance_pc`` damps the displayed force so that the master
port never lets out more than the slave port has put in. The slave side's admittance
controller is not on the patient (it would change the wire format): there the
supervisor's force cap bounds what the tool puts into tissue.

Positions [m], velocities [m/s], forces [N], energies [J], times [ns].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from telesurgery.geometry import FloatArray, Vec3
from telesurgery.haptics import PassivityObserver, PortEnergy, impedance_pc
from telesurgery.input.autopilot import Autopilot
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.input.haptic import TOUCH_LIMITS, TOUCH_MASS_KG, SimulatedTouch
from telesurgery.types import Pose

HAND_N_M: Final = 200.0
"""Stiffness [N/m] of the hand holding the stylus (our choice: a firm grip; a human arm's
endpoint stiffness is a few hundred N/m)."""
HAND_N_S_M: Final = 2.0 * math.sqrt(HAND_N_M * TOUCH_MASS_KG)
"""Damping [N s/m] of the hand: critically damped with the stylus's 45 g (6 N s/m)."""
DEVICE_PER_HAND: Final = 0.3
"""Device displacement [m] per displacement of the autopilot's hand [m] (our choice: its
0.1 m reach fits the Touch's 70 mm depth)."""
FORCE_SCALE: Final = 0.1
"""Force displayed per force at the tip, as ``bench haptics``: 3.3 N shows 33 N."""
FORCE_STALE_S: Final = 0.1
"""A force not refreshed for this long [s] is displayed as none (the state comes every
2 ms)."""
MAX_CATCH_UP_S: Final = 0.05
"""At most this much time [s] is caught up in one ``read``; a longer stall is skipped."""
_VIEW_TO_DEVICE: Final = np.array([1.0, -1.0, -1.0])
"""The diagonal of the rotation from the view frame to the device frame (its own
inverse)."""


class _Arm:
    """One arm's device, its hand, and the two ports' energies (per device axis)."""

    def __init__(self) -> None:
        self.device = SimulatedTouch()
        self.centre: FloatArray | None = None
        """The autopilot hand's neutral position [m, view]: the workspace's centre."""
        self.hand_at: FloatArray | None = None
        """Where the hand wants the stylus [m, device frame]."""
        self.master = [PassivityObserver(1.0 / TOUCH_LIMITS.rate_hz) for _ in range(3)]
        self.slave = [PassivityObserver(1.0 / TOUCH_LIMITS.rate_hz) for _ in range(3)]
        """The slave port's energy per axis, observed from the received states (by the work
        over each step of the measured tip: ``add``)."""
        self.force_tip = np.zeros(3)
        """The latest force at the tip [N, device axes, tip units]."""
        self.force_ns: int | None = None
        self.tip: FloatArray | None = None
        """The tip's latest measured position [m, device axes, tool units]."""
        self.felt = np.zeros(3)
        self.states = 0
        """States rendered (each new tip position)."""
        self.peak_felt_n = 0.0
        self.stylus_travel_m = 0.0
        self.tip_travel_m = 0.0
        self.dissipated_j = 0.0
        self.max_follow_m = 0.0


class HapticHands(InputDevice):
    """The autopilot's hands (``Autopilot(arms, scale)``) on a simulated Touch per arm.

    ``scale``: the console's motion scale (tool over hand displacement), which also turns
    the device's velocity into the tool's for the passivity controller.
    """

    auto_reclutch = True
    displays_force = True

    def __init__(self, arms: tuple[str, ...] = ("psm1", "psm2"), scale: float = 0.2) -> None:
        self.pilot = Autopilot(arms=arms, scale=scale)
        self.arms = self.pilot.arms
        self.rate_hz = TOUCH_LIMITS.rate_hz
        self.scale = scale
        self._tool_per_device = scale / DEVICE_PER_HAND
        self._period_ns = round(1e9 / TOUCH_LIMITS.rate_hz)
        self._dt = 1.0 / TOUCH_LIMITS.rate_hz
        self._arms = {a: _Arm() for a in self.arms}
        self._last_ns: int | None = None
        self._wanted: Mapping[str, HandSample] = {}

    # -- the device interface ----------------------------------------------------------

    def feedback(self, arm: str, tip_in_view: Pose, jaw: float) -> None:
        self.pilot.feedback(arm, tip_in_view, jaw)

    def render_force(self, arm: str, force_view_n: Vec3, tip_view_m: Vec3,
                     t_ns: int) -> None:
        a = self._arms.get(arm)
        if a is None:
            return
        force = np.asarray(force_view_n, dtype=float) * _VIEW_TO_DEVICE
        tip = np.asarray(tip_view_m, dtype=float) * _VIEW_TO_DEVICE
        if not (np.all(np.isfinite(force)) and np.all(np.isfinite(tip))):
            return
        if a.tip is not None:
            # The slave port's power out of the network is the force the tool exerts
            # (minus the force on it) times the tip's velocity; over one step of the
            # measured tip it is that force's work (trapezoidal), zero while no new state
            # came. Energy flows in where the tissue pushes the tool along its motion.
            step = tip - a.tip
            a.states += bool(np.any(step != 0.0))
            a.tip_travel_m += float(np.linalg.norm(step))
            work = -(force + a.force_tip) * 0.5 * step
            for i in range(3):
                a.slave[i].add(float(work[i]))
        a.tip = tip
        a.force_tip = force
        a.force_ns = t_ns

    def read(self, now_ns: int) -> Mapping[str, HandSample]:
        if self._last_ns is None:
            self._wanted = self.pilot.read(now_ns)
            for arm, s in self._wanted.items():
                a = self._arms[arm]
                a.centre = np.asarray(s.pose.position, dtype=float)
                a.hand_at = np.zeros(3)
            self._last_ns = now_ns
        else:
            self._last_ns = max(self._last_ns, now_ns - round(MAX_CATCH_UP_S * 1e9))
            while self._last_ns + self._period_ns <= now_ns:
                self._last_ns += self._period_ns
                self._servo(self._last_ns)
        return {arm: HandSample(now_ns, Pose(self._stylus_in_view(self._arms[arm]),
                                             s.pose.orientation), s.grip, s.clutch, s.buttons)
                for arm, s in self._wanted.items()}

    # -- what a test or a report may look at -------------------------------------------

    def device(self, arm: str) -> SimulatedTouch:
        """The simulated Touch ``arm``'s hand holds."""
        return self._arms[arm].device

    def wanted(self, arm: str) -> Vec3:
        """Where the autopilot's hand wants to be [m, view frame], as of the last period."""
        return self._wanted[arm].pose.position

    def energies(self, arm: str) -> tuple[tuple[PortEnergy, ...], tuple[PortEnergy, ...]]:
        """The master port's and the slave port's energies, per device axis [J]."""
        a = self._arms[arm]
        return tuple(o.energy for o in a.master), tuple(o.energy for o in a.slave)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": "touch", "force_scale": FORCE_SCALE,
                               "device_per_hand": DEVICE_PER_HAND, "hand_n_m": HAND_N_M}
        for arm, a in self._arms.items():
            out[arm] = {
                "states_rendered": a.states,
                "stylus_travel_mm": round(a.stylus_travel_m * 1e3, 1),
                "tip_travel_mm": round(a.tip_travel_m * 1e3, 1),
                "max_stylus_lag_mm": round(a.max_follow_m * 1e3, 2),
                "peak_felt_n": round(a.peak_felt_n, 3),
                "master_energy_j": {"in": round(sum(o.energy.e_in_j for o in a.master), 6),
                                    "out": round(sum(o.energy.e_out_j for o in a.master), 6)},
                "slave_energy_j": {"in": round(sum(o.energy.e_in_j for o in a.slave), 6),
                                   "out": round(sum(o.energy.e_out_j for o in a.slave), 6)},
                "dissipated_j": round(a.dissipated_j, 6),
            }
        return out

    # -- one servo period --------------------------------------------------------------

    def _stylus_in_view(self, a: _Arm) -> Vec3:
        assert a.centre is not None
        x = np.asarray(a.device.read().position_m) * _VIEW_TO_DEVICE / DEVICE_PER_HAND
        p = a.centre + x
        return (float(p[0]), float(p[1]), float(p[2]))

    def _servo(self, t_ns: int) -> None:
        self._wanted = self.pilot.read(t_ns)
        for arm, s in self._wanted.items():
            a = self._arms[arm]
            assert a.centre is not None
            assert a.hand_at is not None
            self._display(a, t_ns)
            target = (np.asarray(s.pose.position) - a.centre) * _VIEW_TO_DEVICE \
                * DEVICE_PER_HAND
            hand_v = (target - a.hand_at) / self._dt
            a.hand_at = target
            held = a.device.exact()
            x, v = np.asarray(held.position_m), np.asarray(held.velocity_m_s)
            a.max_follow_m = max(a.max_follow_m, float(np.linalg.norm(target - x)))
            a.device.step(_vec(HAND_N_M * (target - x) + HAND_N_S_M * (hand_v - v)))
            a.stylus_travel_m += float(np.linalg.norm(
                np.asarray(a.device.exact().position_m) - x))

    def _display(self, a: _Arm, t_ns: int) -> None:
        """Command this period's force: the tip's, damped per axis by the impedance PC."""
        state = a.device.read()
        fresh = a.force_ns is not None and t_ns - a.force_ns <= FORCE_STALE_S * 1e9
        v_tool = np.asarray(state.velocity_m_s) * self._tool_per_device
        force = np.zeros(3)
        if fresh:
            for i in range(3):
                c = impedance_pc(float(a.force_tip[i]), float(v_tool[i]),
                                 a.master[i].energy, a.slave[i].energy.e_in_j, self._dt)
                force[i] = c.value
                a.dissipated_j += c.dissipated_j
        applied = np.asarray(a.device.command_force(_vec(force * FORCE_SCALE)))
        a.felt = applied
        a.peak_felt_n = max(a.peak_felt_n, float(np.linalg.norm(applied)))
        for i in range(3):
            a.master[i].observe(float(applied[i]) / FORCE_SCALE * float(v_tool[i]))


def _vec(a: FloatArray) -> Vec3:
    return (float(a[0]), float(a[1]), float(a[2]))


__all__ = ["DEVICE_PER_HAND", "FORCE_SCALE", "HAND_N_M", "HAND_N_S_M", "HapticHands"]
