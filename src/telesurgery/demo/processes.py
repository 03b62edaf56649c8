"""Child processes of the demo: start each node, stop them all cleanly, collect reports."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurgery.console.web.access import announced_url
from telesurgery.errors import TelesurgeryError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


PATIENT_SITE = 0
SURGEON_SITE = 1
"""The two sites of a session run on one machine: the patient's (router, patient node,
bedside console) and the surgeon's (console, its browser); the emulated network and the
recorder belong to neither."""


def site_cpus(site: int, cpus: frozenset[int] | None = None) -> frozenset[int]:
    """The CPUs ``site`` is pinned to: its half of ``cpus`` (default: this process's), the
    patient's site the lower half; both sites share a single CPU."""
    have = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    half = max(1, len(have) // 2)
    mine = have[:half] if site == PATIENT_SITE else have[half:] or have
    return frozenset(mine)


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Run every thread of process ``pid`` on ``cpus`` (threads it starts later inherit it
    from theirs); a process or thread gone meanwhile is skipped."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):
            continue


@dataclass
class NodeProcess:
    """One ``telesurgery <verb>`` child, its log file and its report file; ``cpus``: the
    CPUs it runs on (None: any); ``env``: variables added to its environment; ``prefix``:
    what runs it (``ip netns exec NAME`` to run it in a network namespace); ``group``: the
    child leads a process group of its own, and a kill takes its children too (a ``site
    up`` and the nodes it started)."""

    name: str
    args: list[str]
    workdir: Path
    cpus: frozenset[int] | None = None
    env: dict[str, str] = field(default_factory=dict)
    prefix: tuple[str, ...] = ()
    group: bool = False
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    report_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"
        self.report_path = self.workdir / f"{self.name}.json"

    def start(self, with_report: bool = True) -> None:
        """Spawn the child with its output going to its log file."""
        cmd = [*self.prefix, sys.executable, "-m", "telesurgery", *self.args]
        if with_report:
            cmd += ["--report", str(self.report_path)]
        # Only this user may read the log: a console prints its page's secret there.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env} if self.env else None,
                                         start_new_session=self.group)
        if self.cpus is not None:
            # Right after the exec, before the interpreter starts the threads that inherit it
            # (``pin`` also catches any already there).
            pin(self.proc.pid, self.cpus)
        log.debug("started %s: %s", self.name, " ".join(cmd))

    def alive(self) -> bool:
        """True while the child runs."""
        return self.proc is not None and self.proc.poll() is None

    def interrupt(self) -> None:
        """Ask the child to stop (SIGINT: it finishes its loop and writes its report)."""
        if self.alive() and self.proc is not None:
            self.proc.send_signal(signal.SIGINT)

    def signal(self, signum: int) -> None:
        """Send the child ``signum`` (if it runs)."""
        if self.alive() and self.proc is not None:
            self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the child to exit; kill it if it has not within ``timeout_s`` [s]."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.1f s; killing it", self.name, timeout_s)
            if self.group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            return self.proc.wait()

    def last_log_line(self) -> str:
        """The last line the child wrote, to explain a failure in one line."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def page_url(self) -> str | None:
        """The console page URL (with its secret) this child printed; None before it did
        (or if it serves no page)."""
        try:
            return announced_url(self.log_path.read_text(errors="replace"))
        except OSError:
            return None

    def report(self) -> dict[str, Any]:
        """The child's final report; TelesurgeryError when it wrote none."""
        try:
            data = json.loads(self.report_path.read_text())
        except (OSError, ValueError) as exc:
            raise TelesurgeryError(
                f"{self.name} wrote no report ({self.last_log_line() or 'no output'}); "
                f"see {self.log_path}"
            ) from exc
        if not isinstance(data, dict):
            raise TelesurgeryError(f"{self.name} report is not a JSON object: {self.report_path}")
        return data
