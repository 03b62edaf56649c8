"""Input devices by name, so configs and the command line say ``device = "autopilot"``."""

from __future__ import annotations

from collections.abc import Callable

from telesurgery.config import ConsoleConfig
from telesurgery.errors import ConfigError
from telesurgery.input.base import InputDevice


def _autopilot(cfg: ConsoleConfig) -> InputDevice:
    from telesurgery.input.autopilot import autopilot_for
    from telesurgery.robots.sim.scene import task_layout

    return autopilot_for(task_layout(cfg.task), arms=tuple(cfg.arms), scale=cfg.scale)


def _scripted(cfg: ConsoleConfig) -> InputDevice:
    from telesurgery.input.scripted import ScriptedDevice

    if cfg.trajectory is None:
        raise ConfigError("the scripted device needs a trajectory file: pass --trajectory PATH "
                          "or set 'trajectory' in the console config")
    return ScriptedDevice(cfg.trajectory)


def _touch(cfg: ConsoleConfig) -> InputDevice:
    from telesurgery.input.touch import HapticHands

    if cfg.task != "peg_transfer":
        raise ConfigError(f"the touch device's hands perform the peg transfer only, not "
                          f"{cfg.task}: use --device autopilot for that task")
    return HapticHands(arms=tuple(cfg.arms), scale=cfg.scale)


def _web(cfg: ConsoleConfig) -> InputDevice:
    from telesurgery.input.web import WebInputDevice

    if not cfg.web.enabled:
        raise ConfigError("the web device reads the console page: turn the page on (--web or "
                          "'web.enabled = true')")
    return WebInputDevice(tuple(cfg.arms), rate_hz=cfg.rate_hz)


DEVICES: dict[str, Callable[[ConsoleConfig], InputDevice]] = {
    "autopilot": _autopilot,
    "scripted": _scripted,
    "touch": _touch,
    "web": _web,
}


def make_device(cfg: ConsoleConfig) -> InputDevice:
    """The device ``cfg.device`` names; ConfigError listing the choices otherwise."""
    try:
        factory = DEVICES[cfg.device]
    except KeyError as exc:
        raise ConfigError(f"unknown input device {cfg.device!r}; choose one of "
                          f"{', '.join(sorted(DEVICES))}") from exc
    return factory(cfg)
