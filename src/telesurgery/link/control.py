"""Driving a running emulator: its UDP control port, and ``telesurgery link`` as a child process.

The demo and the tests start one ``EmulatorProcess`` per path, cut and restore it
through the control port, and read its statistics; a process of its own keeps
the emulator's timing free of the parent's interpreter lock.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from telesurgery.errors import TransportError
from telesurgery.link.locator import Locator


def send_control(address: Locator | str, command: str, timeout_s: float = 1.0) -> dict[str, Any]:
    """Send ``command`` (``cut [forward|reverse]``, ``restore [...]``, ``stats``) to an
    emulator's control port and return its reply; ``TransportError`` on no reply or refusal."""
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
    reply: dict[str, Any] = json.loads(data)
    if not reply.get("ok"):
        raise TransportError(f"link control {where}: {reply.get('error', 'refused')}")
    return reply


class EmulatorProcess:
    """A ``telesurgery link`` child with a control port on loopback.

    ``args`` are extra command-line options (``--profile``, ``--path``, ``--delay-ms``,
    ...). Ports 0 are allowed: the addresses the child bound are read from its
    ready line.
    """

    def __init__(self, listen: Locator | str, forward: Locator | str, args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        self._cmd = [sys.executable, "-m", "telesurgery", "link", "--listen", str(listen),
                     "--forward", str(forward), "--control", "udp/127.0.0.1:0", *args]
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def listen_address(self) -> Locator:
        """Where clients connect."""
        return Locator.parse(self.ready["listen"])

    @property
    def control_address(self) -> Locator:
        """The child's control port."""
        return Locator.parse(self.ready["control"], ("udp",))

    def start(self, timeout_s: float = 15.0) -> None:
        """Spawn the child and wait until it listens; ``TransportError`` if it does not."""
        if self._log_path is not None:
            self._log = self._log_path.open("wb")
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.PIPE, stderr=self._log)
        line = _read_line(self._proc, timeout_s)
        try:
            ready = json.loads(line)
        except ValueError:
            ready = None
        if not isinstance(ready, dict) or ready.get("event") != "ready":
            self.stop()
            raise TransportError(
                f"telesurgery link did not start ({line.strip()[:200] or 'no output'}); "
                f"command: {' '.join(self._cmd[3:])}"
            )
        self.ready = ready

    def command(self, command: str) -> dict[str, Any]:
        """Send a control command; the emulator's statistics after it."""
        return send_control(self.control_address, command)

    def cut(self, direction: str | None = None) -> dict[str, Any]:
        """Cut the path (both ways, or ``forward`` / ``reverse``)."""
        return self.command(f"cut {direction or ''}".strip())

    def restore(self, direction: str | None = None) -> dict[str, Any]:
        """Restore the path."""
        return self.command(f"restore {direction or ''}".strip())

    def stats(self) -> dict[str, Any]:
        """Per-direction statistics so far."""
        return self.command("stats")

    def stop(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Stop the child (SIGINT, then kill); its final statistics ({} if it wrote none)."""
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
            if lines:
                try:
                    final = json.loads(lines[-1])
                except ValueError:
                    final = {}
        if self._log is not None:
            self._log.close()
            self._log = None
        return final

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


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
