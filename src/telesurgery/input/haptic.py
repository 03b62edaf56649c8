"""Haptic devices: position in, force out, within the device's force limits, at its servo rate.

A ``HapticDevice`` reads the stylus tip's position [m] and velocity [m/s] in the device
frame and displays a force [N] in the same frame, clipped to the device's peak force and,
when the force has been held long, to its continuous force (a thermal model of the motors).

``SimulatedTouch`` behaves like a 3D Systems Touch (formerly SensAble Phantom Omni, then
Geomagic Touch) held by a hand, so that everything runs without hardware: a point mass with
Coulomb and viscous friction, integrated at the device's 1 kHz servo rate, inside the
device's workspace, read out through its encoder resolution. Its figures are the
manufacturer's data sheet as commonly quoted
(https://www.3dsystems.com/haptics-devices/touch/specifications); our search of stored
pages did not reach the sheet itself, so each figure below says whether it is the sheet's
(as commonly quoted) or our choice.

``OpenHapticsDevice`` drives a real Touch / Touch X through 3D Systems' OpenHaptics SDK with
the ``pyOpenHaptics`` wrapper (https://pypi.org/project/pyOpenHaptics/), installed by the
optional extra ``haptics``; it is imported only when the adapter is opened.

Device frame (OpenHaptics'): origin at the workspace centre, x to the user's right, y up,
z towards the user.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from telesurgery.errors import ConfigError

Vec3 = tuple[float, float, float]
ZERO3: Final[Vec3] = (0.0, 0.0, 0.0)

TOUCH_SPEC_URL: Final = "https://www.3dsystems.com/haptics-devices/touch/specifications"
THERMAL_TAU_S: Final = 1.0
"""Time constant [s] of the motors' heating: the mean square force over about this long must
stay within the continuous force (our choice; the data sheet gives no time constant)."""


@dataclass(frozen=True, slots=True)
class HapticLimits:
    """What a haptic device can do.

    ``peak_force_n`` [N] at any instant, ``continuous_force_n`` [N] held (as a mean square
    over ``THERMAL_TAU_S``), ``workspace_m`` [m] the full extent of the reachable box along x,
    y and z (centred on the origin), ``stiffness_n_m`` [N/m] the stiffest spring the device
    renders stably per axis, ``resolution_m`` [m] one encoder step at the tip, ``rate_hz``
    [Hz] the servo loop's rate.
    """

    peak_force_n: float
    continuous_force_n: float
    workspace_m: Vec3
    stiffness_n_m: Vec3
    resolution_m: float
    rate_hz: float


TOUCH_LIMITS: Final = HapticLimits(
    peak_force_n=3.3,  # data sheet, as commonly quoted (TOUCH_SPEC_URL)
    continuous_force_n=0.88,  # data sheet, as commonly quoted (24 h at the nominal position)
    workspace_m=(0.160, 0.120, 0.070),  # 160 W x 120 H x 70 D mm, data sheet as commonly quoted
    stiffness_n_m=(1260.0, 2310.0, 1020.0),  # X 1.26, Y 2.31, Z 1.02 N/mm, as commonly quoted
    resolution_m=0.055e-3,  # > 450 dpi, ~0.055 mm, data sheet as commonly quoted
    rate_hz=1000.0,  # OpenHaptics' servo loop, 1 kHz
)
TOUCH_MASS_KG: Final = 0.045
"""Apparent mass [kg] at the tip, ~45 g (data sheet's apparent tip inertia, as commonly
quoted)."""
TOUCH_FRICTION_N: Final = 0.26
"""Backdrive (Coulomb) friction [N] at the tip (data sheet, as commonly quoted)."""
TOUCH_VISCOUS_N_S_M: Final = 0.05
"""Viscous friction [N s/m] of the motors and cables (our choice: the sheet gives none)."""


@dataclass(frozen=True, slots=True)
class HapticState:
    """One reading: ``t_ns`` [ns, device time], tip ``position_m`` [m] and ``velocity_m_s``
    [m/s] in the device frame, and the ``force_n`` [N] being applied."""

    t_ns: int
    position_m: Vec3
    velocity_m_s: Vec3
    force_n: Vec3


class HapticDevice(ABC):
    """A device that reads a tip position and displays a force, at ``limits.rate_hz``."""

    def __init__(self, limits: HapticLimits) -> None:
        self.limits = limits
        self._heat_n2 = 0.0  # running mean square of the applied force [N^2]

    @property
    def rate_hz(self) -> float:
        """The device's update (servo) rate [Hz]."""
        return self.limits.rate_hz

    def command_force(self, force_n: Vec3) -> Vec3:
        """Display ``force_n`` [N] in the device frame from now until the next command, one
        command per servo period (the thermal model counts periods by commands); returns
        the force actually applied, after the peak and continuous limits."""
        applied = self._limit(np.asarray(force_n, dtype=float))
        self._apply(applied)
        return _vec(applied)

    def _limit(self, force: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        mag = float(np.linalg.norm(force))
        cap = self.limits.peak_force_n
        a = 1.0 / (self.limits.rate_hz * THERMAL_TAU_S)
        # A force held above the continuous figure heats the motors: once the running mean
        # square reaches the continuous force's square, the device allows no more than it.
        if self._heat_n2 + (min(mag, cap) ** 2 - self._heat_n2) * a > \
                self.limits.continuous_force_n ** 2:
            cap = self.limits.continuous_force_n
        scale = cap / mag if mag > cap else 1.0
        self._heat_n2 += ((mag * scale) ** 2 - self._heat_n2) * a
        return force * scale

    @abstractmethod
    def _apply(self, force: npt.NDArray[np.float64]) -> None:
        """Send the already limited ``force`` [N] to the device."""

    @abstractmethod
    def read(self) -> HapticState:
        """The tip's latest position and velocity, and the force being applied."""

    def close(self) -> None:  # noqa: B027 - a simulated device holds nothing
        """Release the device (its force goes to zero)."""


class SimulatedTouch(HapticDevice):
    """A simulated 3D Systems Touch moved by a hand: ``step(hand_force_n)`` advances one servo
    period (1 ms) of simulated time.

    The tip is a point mass (``TOUCH_MASS_KG``) pushed by the hand and by the displayed force,
    held back by Coulomb friction (``TOUCH_FRICTION_N``, which also holds it still against
    any smaller force) and viscous friction; it stops at the workspace's walls. ``read``
    gives the position through the encoders' resolution and the velocity as the difference
    of two readings over one period, as the device's driver computes it.
    """

    def __init__(self, start_m: Vec3 = ZERO3, limits: HapticLimits = TOUCH_LIMITS,
                 mass_kg: float = TOUCH_MASS_KG, friction_n: float = TOUCH_FRICTION_N,
                 viscous_n_s_m: float = TOUCH_VISCOUS_N_S_M) -> None:
        super().__init__(limits)
        self._half = np.asarray(limits.workspace_m, dtype=float) / 2.0
        self._x = np.clip(np.asarray(start_m, dtype=float), -self._half, self._half)
        self._v = np.zeros(3)
        self._force = np.zeros(3)
        self._mass = mass_kg
        self._friction = friction_n
        self._viscous = viscous_n_s_m
        self._dt = 1.0 / limits.rate_hz
        self._period_ns = round(1e9 / limits.rate_hz)
        self._t_ns = 0
        self._read = self._quantise(self._x)
        self._read_before = self._read

    def _apply(self, force: npt.NDArray[np.float64]) -> None:
        self._force = force

    def step(self, hand_force_n: Vec3) -> None:
        """Advance one servo period under the hand's force [N] and the displayed force."""
        dt = self._dt
        v = self._v + (np.asarray(hand_force_n) + self._force - self._viscous * self._v) \
            * (dt / self._mass)
        # Coulomb friction as an impulse of at most friction * dt against the motion: a tip
        # whose momentum it can cancel sticks (static friction), otherwise it slides.
        momentum = self._mass * float(np.linalg.norm(v))
        stop = self._friction * dt
        v = np.zeros(3) if momentum <= stop else v * (1.0 - stop / momentum)
        x = self._x + v * dt
        # The mechanical stops: the tip stays inside the box and loses its speed into a wall.
        hit = np.abs(x) > self._half
        x = np.clip(x, -self._half, self._half)
        v[hit] = 0.0
        self._x, self._v = x, v
        self._t_ns += self._period_ns
        self._read_before, self._read = self._read, self._quantise(x)

    def _quantise(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        res = self.limits.resolution_m
        return np.asarray(np.round(x / res) * res, dtype=float)

    def read(self) -> HapticState:
        v = (self._read - self._read_before) / self._dt
        return HapticState(self._t_ns, _vec(self._read), _vec(v), _vec(self._force))

    def exact(self) -> HapticState:
        """The tip's exact simulated state (what no encoder reads): what the hand holds."""
        return HapticState(self._t_ns, _vec(self._x), _vec(self._v), _vec(self._force))


class OpenHapticsDevice(HapticDevice):
    """A real Touch / Touch X through OpenHaptics and ``pyOpenHaptics`` (extra ``haptics``).

    OpenHaptics' scheduler calls this adapter at 1 kHz in its own thread: each call reads the
    tip and applies the latest commanded force. Positions come from the SDK in mm.
    """

    def __init__(self, name: str = "Default Device", limits: HapticLimits = TOUCH_LIMITS
                 ) -> None:
        super().__init__(limits)
        try:
            hd = importlib.import_module("pyOpenHaptics.hd")
            callbacks = importlib.import_module("pyOpenHaptics.hd_callback")
            device = importlib.import_module("pyOpenHaptics.hd_device")
        except (ImportError, OSError) as exc:  # OSError: the SDK's libHD is not installed
            raise ConfigError(
                "the real haptic device needs 3D Systems' OpenHaptics SDK and its Python "
                "wrapper: install OpenHaptics and the Touch driver, then "
                "pip install 'telesurgery[haptics]'") from exc
        self._hd: Any = hd
        self._lock = threading.Lock()
        self._force: Vec3 = ZERO3
        self._position: Vec3 = ZERO3
        self._velocity: Vec3 = ZERO3
        self._ticks = 0
        self._callback: Any = callbacks.hd_callback(self._servo)  # kept: the C side holds it
        self._device: Any = device.HapticDevice(callback=self._callback, device_name=name)

    def _servo(self) -> None:
        t = self._hd.get_transform()
        x = (t[3][0] / 1000.0, t[3][1] / 1000.0, t[3][2] / 1000.0)
        with self._lock:
            rate = self.limits.rate_hz
            self._velocity = _vec((np.asarray(x) - np.asarray(self._position)) * rate)
            self._position = x
            self._ticks += 1
            force = self._force
        self._hd.set_force(list(force))

    def _apply(self, force: npt.NDArray[np.float64]) -> None:
        with self._lock:
            self._force = _vec(force)

    def read(self) -> HapticState:
        with self._lock:
            t_ns = round(self._ticks * 1e9 / self.limits.rate_hz)
            return HapticState(t_ns, self._position, self._velocity, self._force)

    def close(self) -> None:
        self._apply(np.zeros(3))
        self._device.close()


def _vec(a: npt.NDArray[np.float64]) -> Vec3:
    return (float(a[0]), float(a[1]), float(a[2]))
