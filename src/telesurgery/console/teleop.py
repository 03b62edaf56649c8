"""The console's per-tick teleoperation pipeline for every arm an input device drives.

Pure apart from the device's ``feedback`` call: it turns hand samples, the
latest measured tool poses and the registrations into the bodies to publish
this tick; the console node owns the loop and the Zenoh publishers. ``observe``
and ``register`` may be called from another thread (Zenoh's receive thread):
each stores one immutable value, which the loop reads as the latest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from telesurgery.config import TremorConfig
from telesurgery.console.mapping import DEFAULT_SCALE, TeleopMapping
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.messages import Command
from telesurgery.types import ArmMode, Pose


class Teleop:
    """One ``TeleopMapping`` per arm of ``device``; ``tick`` once per tick at ``rate_hz`` [Hz].

    An arm whose registration or measured pose is still unknown gets clutched
    heartbeats (``ServoCP`` with ``clutch=True``, target unchanged), so the
    patient side sees the console alive but nothing moves.
    """

    def __init__(self, device: InputDevice, scale: float = DEFAULT_SCALE,
                 tremor: TremorConfig | None = None, rate_hz: float = 1000.0,
                 predictive: bool = True) -> None:
        self.device = device
        self.predictive = predictive
        """Show the device each arm's commanded pose (``InputDevice.foresee``)."""
        self.base_scale = scale
        self._mappings = {arm: TeleopMapping(arm, scale, tremor, rate_hz) for arm in device.arms}
        self._registrations: dict[str, Pose] = {}
        self._measured: dict[str, tuple[Pose, float]] = {}
        self._modes: dict[str, ArmMode] = {}
        self._reclutching: set[str] = set()
        self._ghosts: dict[str, tuple[Pose, float]] = {}

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms this pipeline drives, in the device's order."""
        return tuple(self._mappings)

    @property
    def rejected(self) -> int:
        """Ticks held because an input (hand sample, measured pose, registration) was not
        finite, over all arms."""
        return sum(m.rejected for m in self._mappings.values())

    @property
    def scale(self) -> float:
        """The motion scale now (tool over hand displacement)."""
        return next(iter(self._mappings.values())).scale if self._mappings else self.base_scale

    def scale_by(self, fraction: float) -> None:
        """Scale every arm's motion by ``fraction`` of the console's scale from this tick on
        (the delay's scaling, ``console.scaling``)."""
        for m in self._mappings.values():
            m.scale = self.base_scale * fraction
        self.device.rescale(self.base_scale * fraction)

    def engaged(self, arm: str) -> bool:
        """True while the surgeon's hand drives ``arm``."""
        return self._mappings[arm].engaged

    def register(self, arm: str, base_in_view: Pose) -> None:
        """The registration of ``arm``: its base frame expressed in the camera frame [m].
        Arms the device does not drive are ignored."""
        if arm in self._mappings:
            self._registrations[arm] = base_in_view

    def observe(self, arm: str, measured: Pose, jaw: float,
                mode: ArmMode | None = None) -> None:
        """The latest measured tool tip pose of ``arm`` in its base frame [m], jaw [rad] and
        what the safety supervisor does with its commands. Arms the device does not drive
        are ignored."""
        if arm in self._mappings:
            self._measured[arm] = (measured, jaw)
            if mode is not None:
                self._modes[arm] = mode

    def measured_state(self) -> dict[str, tuple[Pose, float]]:
        """Each arm's latest measured tip pose [m, base frame] and jaw [rad]."""
        return dict(self._measured)

    def seen(self, arm: str) -> Pose | None:
        """The latest measured tip pose of ``arm`` in the view frame [m] (as late as the
        state that brought it), None while it or the registration is unknown."""
        registration, measured = self._registrations.get(arm), self._measured.get(arm)
        if registration is None or measured is None:
            return None
        return registration.compose(measured[0])

    def ghost(self, arm: str) -> tuple[Pose, float] | None:
        """Where the console has commanded ``arm``'s tip, in the view frame [m], and its jaw
        [rad]: the predictive display's ghost, ahead of the measured pose by the round
        trip; None until the arm has been commanded."""
        return self._ghosts.get(arm)

    def held(self, arm: str) -> bool:
        """True while the safety supervisor holds ``arm`` and waits for a clutch."""
        return self._modes.get(arm) is ArmMode.HELD

    def _clutch_override(self, arm: str, sample: HandSample) -> HandSample:
        # A device that is not a person re-clutches after a hold: clutch pressed until the
        # supervisor reports the arm armed, then released, which re-anchors the hand on the
        # tool where it stopped, so the arm resumes without a jump.
        mode = self._modes.get(arm)
        if arm in self._reclutching:
            if mode is not ArmMode.HELD:
                self._reclutching.discard(arm)
            else:
                return replace(sample, clutch=True)
        elif (mode is ArmMode.HELD and self.device.auto_reclutch and not sample.clutch
              and self._mappings[arm].engaged):
            self._reclutching.add(arm)
            return replace(sample, clutch=True)
        return sample

    def tick(self, samples: Mapping[str, HandSample], drive: bool) -> list[Command]:
        """Every arm's commands this tick, in arm order (the console sends them as one
        bundle), for the arms with a sample in ``samples``. Not in control (``drive``
        False): each sample is clutched in software, so the hand re-anchors on the tool
        when control comes back, and there is nothing to send."""
        out: list[Command] = []
        for arm in self._mappings:
            sample = samples.get(arm)
            if sample is None:
                continue
            if drive:
                out += self._step_arm(arm, sample)
            else:
                self._step_arm(arm, replace(sample, clutch=True))
        return out

    def _step_arm(self, arm: str, sample: HandSample) -> list[Command]:
        """One arm's commands this tick; a hold command until the arm's registration and
        measured pose are known."""
        mapping = self._mappings[arm]
        registration = self._registrations.get(arm)
        measured = self._measured.get(arm)
        if registration is None or measured is None:
            return [mapping.hold(sample)]
        pose, jaw = measured
        sample = self._clutch_override(arm, sample)
        cmd = mapping.step(sample, pose, jaw, registration)
        if not cmd.rejected:
            self.device.feedback(arm, registration.compose(pose), jaw)
            # A clutched command's target is where the tool was told to stop, so the
            # ghost stays there while the hand re-indexes.
            before = self._ghosts.get(arm)
            ghost_jaw = (cmd.jaw.angle if cmd.jaw is not None
                         else jaw if before is None else before[1])
            ghost = (registration.compose(cmd.servo.pose), ghost_jaw)
            self._ghosts[arm] = ghost
            if self.predictive:
                self.device.foresee(arm, *ghost)
        return [cmd.servo] if cmd.jaw is None else [cmd.servo, cmd.jaw]


__all__ = ["Teleop"]
