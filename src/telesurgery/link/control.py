"""Driving the link tools: the emulator's UDP control port, and the tools as child processes.

The demo and the tests start one ``EmulatorProcess`` per path, cut and restore it
through the control port and read its statistics, and a ``ResponderProcess`` for
``telesurgery probe``. A process of its own keeps a tool's timing free of the
parent's interpreter lock. Each child prints one JSON line when ready (with the
addresses it bound, so ports 0 work) and one with its final figures when stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from telesurgery.errors import TransportError
from telesurgery.link.locator import Locator


def send_control(address: Locator | str, command: str, timeout_s: float = 1.0) -> dict[str, Any]:
    """Send ``command`` (``cut [forward|reverse]``, ``restore [...]``, ``set [...]
    NAME=VALUE ...``, ``reset [...]``, ``stats``) to an emulator's control port and return
    its reply; ``TransportError`` on no reply or refusal."""
    where = address if isinstance(address, Locator) else Locator.parse(address, ("udp",))
    with socket.socket(where.family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(command.encode(), where.address)
            data = sock.recv(1 << 20)
        except OSError as exc:
            raise TransportError(
                f"link control {where}: no reply to {command!r} within {timeout_s} s ({exc}); "
                "is `telesurgery link --control` running there?"
            ) from exc
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        reply = None
    if not isinstance(reply, dict):
        raise TransportError(f"link control {where}: the reply to {command!r} is not a JSON "
                             "object; is something else answering on that port?")
    if not reply.get("ok"):
        raise TransportError(f"link control {where}: {str(reply.get('error', 'refused'))[:200]}")
    return reply


class ChildProcess:
    """A ``telesurgery <verb> ...`` child that announces itself with a JSON ready line."""

    def __init__(self, args: Sequence[str], log_path: Path | None = None) -> None:
        self._cmd = [sys.executable, "-m", "telesurgery", *args]
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, timeout_s: float = 15.0) -> None:
        """Spawn the child and wait for its ready line; ``TransportError`` if none comes."""
        if self._log_path is not None:
            self._log = self._log_path.open("wb")
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.PIPE, stderr=self._log)
        line = _read_line(self._proc, timeout_s)
        try:
            ready = json.loads(line)
        except (ValueError, RecursionError):
            ready = None
        if not isinstance(ready, dict) or ready.get("event") != "ready":
            self.stop()
            raise TransportError(
                f"`telesurgery {' '.join(self._cmd[3:])}` did not start "
                f"({line.strip()[:200] or 'no output'})"
            )
        self.ready = ready

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (to read its figures from ``/proc``)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Stop the child (SIGINT, then kill); its final figures ({} if it wrote none)."""
        proc, self._proc = self._proc, None
        final: dict[str, Any] = {}
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            lines = out.decode(errors="replace").strip().splitlines()
            with contextlib.suppress(ValueError, IndexError, RecursionError):
                last = json.loads(lines[-1])
                final = last if isinstance(last, dict) else {}
        if self._log is not None:
            self._log.close()
            self._log = None
        return final

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class EmulatorProcess(ChildProcess):
    """``telesurgery link`` with a control port on loopback.

    ``args`` are extra options (``--profile``, ``--path``, ``--delay-ms``, ...).
    """

    def __init__(self, listen: Locator | str, forward: Locator | str, args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        super().__init__(["link", "--listen", str(listen), "--forward", str(forward),
                          "--control", "udp/127.0.0.1:0", *args], log_path)

    @property
    def listen_address(self) -> Locator:
        """Where clients connect."""
        return Locator.parse(self.ready["listen"])

    @property
    def control_address(self) -> Locator:
        """The child's control port."""
        return Locator.parse(self.ready["control"], ("udp",))

    def command(self, command: str) -> dict[str, Any]:
        """Send a control command; the emulator's statistics after it."""
        return send_control(self.control_address, command)

    def cut(self, direction: str | None = None) -> dict[str, Any]:
        """Cut the path (both ways, or ``forward`` / ``reverse``)."""
        return self.command(f"cut {direction or ''}".strip())

    def restore(self, direction: str | None = None) -> dict[str, Any]:
        """Restore the path."""
        return self.command(f"restore {direction or ''}".strip())

    def retune(self, changes: Mapping[str, float | bool], direction: str | None = None
               ) -> dict[str, Any]:
        """Change impairments (``emulator.RETUNABLE``: ``loss``, ``jitter_ms``, ...) of the
        path (both ways, or ``forward`` / ``reverse``) from now on."""
        words = [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                 for k, v in changes.items()]
        return self.command(" ".join(["set", *([direction] if direction else []), *words]))

    def reset(self, direction: str | None = None) -> dict[str, Any]:
        """Back to the profile's impairments (undo ``retune``)."""
        return self.command(f"reset {direction or ''}".strip())

    def stats(self) -> dict[str, Any]:
        """Per-direction statistics so far."""
        return self.command("stats")


class ResponderProcess(ChildProcess):
    """``telesurgery probe --respond``, the far side of a probe."""

    def __init__(self, listen: Locator | str = "udp/127.0.0.1:0",
                 log_path: Path | None = None) -> None:
        super().__init__(["probe", "--respond", "--listen", str(listen)], log_path)

    @property
    def listen_address(self) -> Locator:
        """Where the responder answers."""
        return Locator.parse(self.ready["listen"], ("udp",))


def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The child's first stdout line, or what there is after ``timeout_s`` [s]."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")
