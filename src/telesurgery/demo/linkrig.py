"""Emulated control paths between console and patient node: one link emulator per path.

For a profile with paths ``fibre`` and ``5g``::

    console --path fibre--> telesurgery link (fibre) --> patient listens udp/127.0.0.1:F
    console --path 5g-----> telesurgery link (5g)    --> patient listens udp/127.0.0.1:G

Each path is UDP by default: control is best effort, so a path's loss and
reordering reach the receiver as the profile says, and an outage loses what the
path could not carry. Over TCP (``protocol="tcp"``) a cut path holds everything
sent during the outage in socket buffers and delivers it, all stale, in one burst
when it comes back; on a two-core machine that burst of work starves the other
path's sender for milliseconds and costs fresh commands. *Forward* in the profile
is console to patient.
A path is cut and restored live through its emulator's control port (``cut``,
``restore``), by ``LinkRig.cut`` or by hand::

    echo cut | nc -u -w1 127.0.0.1 <control port>
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from telesurgery.config import PathConfig, ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.errors import ConfigError
from telesurgery.link.control import EmulatorProcess
from telesurgery.link.profiles import load_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cut:
    """Cut ``path`` at ``at_s`` [s] into the run, for ``duration_s`` [s] (None: for good)."""

    path: str
    at_s: float
    duration_s: float | None = None

    @classmethod
    def parse(cls, text: str) -> Cut:
        """``PATH@T`` or ``PATH@T:DURATION`` (seconds), e.g. ``fibre@5:2``."""
        path, at, when = text.partition("@")
        start, colon, length = when.partition(":")
        try:
            cut = cls(path, float(start), float(length) if colon else None)
        except ValueError:
            cut = None
        if not at or not path or cut is None or cut.at_s < 0 or (
                cut.duration_s is not None and cut.duration_s <= 0):
            raise ConfigError(f"--cut {text!r}: write PATH@T or PATH@T:DURATION in seconds, "
                              "e.g. fibre@5:2")
        return cut


class LinkRig:
    """One ``telesurgery link`` child per path of ``profile`` (a name or a .toml file), over
    ``protocol``; ``loss`` (a probability, 0 to 1): every path's random loss both ways in
    place of the profile's (None: the profile's).

    Use as a context manager; ``patient_paths()`` and ``console_paths()`` are the
    nodes' path configurations. Raises ``ConfigError`` for an unknown profile.
    """

    def __init__(self, profile: str, workdir: Path, protocol: Literal["udp", "tcp"] = "udp",
                 loss: float | None = None) -> None:
        self.profile = load_profile(profile)
        self._arg = profile
        self._overrides = [] if loss is None else ["--loss", str(loss)]
        self._workdir = workdir
        self._protocol = protocol
        # QUIC (the only TLS on datagrams in Zenoh 1.10) queues commands on a lossy path
        # behind its congestion control (docs/security.md), so UDP paths stay plain and
        # rely on the commands' end-to-end tags; a TCP path has TLS.
        self._tls = protocol == "tcp"
        self._targets = {name: f"{protocol}/127.0.0.1:{free_port()}"
                         for name in self.profile.paths}
        self.emulators: dict[str, EmulatorProcess] = {}

    @property
    def names(self) -> list[str]:
        """Path names, in the profile's order."""
        return list(self.profile.paths)

    def start(self) -> None:
        """Start every path's emulator (each waits for its ready line)."""
        try:
            for name, target in self._targets.items():
                emu = EmulatorProcess(f"{self._protocol}/127.0.0.1:0", target,
                                      ["--profile", self._arg, "--path", name,
                                       *self._overrides],
                                      log_path=self._workdir / f"link-{name}.log")
                self.emulators[name] = emu
                emu.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> dict[str, dict[str, Any]]:
        """Stop the emulators; each one's final statistics."""
        out = {name: emu.stop() for name, emu in self.emulators.items()}
        self.emulators.clear()
        return out

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _emulator(self, path: str) -> EmulatorProcess:
        try:
            return self.emulators[path]
        except KeyError:
            raise ConfigError(f"no path {path!r} in profile {self.profile.name!r}; choose one "
                              f"of {', '.join(self.names)}") from None

    def cut(self, path: str) -> None:
        """Cut ``path`` both ways now."""
        self._emulator(path).cut()

    def restore(self, path: str) -> None:
        """Restore ``path`` both ways now."""
        self._emulator(path).restore()

    def controls(self) -> dict[str, str]:
        """Each path's emulator control endpoint (for cutting by hand)."""
        return {name: str(emu.control_address) for name, emu in self.emulators.items()}

    def slowest_delay_ms(self) -> float:
        """The one-way delay [ms] of the profile's slowest path, console to patient (what a
        probe of the paths would qualify): the patient's command age allowance."""
        return max(spec.forward.delay_ms for spec in self.profile.paths.values())

    def patient_paths(self) -> list[PathConfig]:
        """The patient node's paths: it listens where each emulator forwards."""
        return [PathConfig(name=n, zenoh=ZenohConfig(listen=[t]), tls=self._tls)
                for n, t in self._targets.items()]

    def console_paths(self) -> list[PathConfig]:
        """The console's paths: it connects to each emulator."""
        return [PathConfig(name=n, zenoh=ZenohConfig(connect=[str(e.listen_address)]),
                           tls=self._tls)
                for n, e in self.emulators.items()]


def paths_toml(paths: Sequence[PathConfig]) -> str:
    """``paths`` as the ``[[paths]]`` tables of a node's TOML config file."""
    lines = []
    for p in paths:
        # JSON strings and arrays of strings are valid TOML for these ASCII values.
        lines += ["[[paths]]", f"name = {json.dumps(p.name)}",
                  f"tls = {json.dumps(p.tls)}", "[paths.zenoh]",
                  f"mode = {json.dumps(p.zenoh.mode)}",
                  f"listen = {json.dumps(p.zenoh.listen)}",
                  f"connect = {json.dumps(p.zenoh.connect)}", ""]
    return "\n".join(lines)


class Cuttable(Protocol):
    """Emulated paths that can be cut and restored by name (a ``LinkRig``, the sites'
    WAN paths)."""

    @property
    def names(self) -> list[str]: ...

    def cut(self, path: str) -> None: ...

    def restore(self, path: str) -> None: ...


class CutSchedule:
    """Cuts and restores the rig's paths at given times into the run."""

    def __init__(self, rig: Cuttable | None, cuts: Sequence[Cut]) -> None:
        _check_cuts(rig.names if rig is not None else None, cuts)
        self._rig = rig
        self._events: list[tuple[float, str, bool]] = []
        for c in cuts:
            self._events.append((c.at_s, c.path, True))
            if c.duration_s is not None:
                self._events.append((c.at_s + c.duration_s, c.path, False))
        self._events.sort()
        self.done: list[dict[str, Any]] = []

    def due(self, elapsed_s: float) -> None:
        """Cut or restore whatever is due at ``elapsed_s`` [s]."""
        while self._events and self._events[0][0] <= elapsed_s and self._rig is not None:
            _, path, cut = self._events.pop(0)
            if cut:
                self._rig.cut(path)
            else:
                self._rig.restore(path)
            log.warning("link %s %s at %.2f s", path, "cut" if cut else "restored", elapsed_s)
            self.done.append({"path": path, "action": "cut" if cut else "restore",
                              "at_s": round(elapsed_s, 3)})


def check_link_options(profile: str | None, cuts: Sequence[Cut]) -> None:
    """``ConfigError`` for an unknown profile, or for cuts without one or naming a path it
    does not have (before anything starts)."""
    _check_cuts(list(load_profile(profile).paths) if profile else None, cuts)


def _check_cuts(paths: list[str] | None, cuts: Sequence[Cut]) -> None:
    if cuts and paths is None:
        raise ConfigError("--cut needs --link PROFILE: only emulated paths can be cut")
    for c in cuts:
        if paths is not None and c.path not in paths:
            raise ConfigError(f"--cut {c.path}: the profile has no such path; choose one "
                              f"of {', '.join(paths)}")
