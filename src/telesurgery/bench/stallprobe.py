"""A probe of the machine's own stalls: a 1 kHz loop with no work, in a process of its own.

It is paced and judged as the nodes' loops are (``clock.FixedRateLoop``: absolute
deadlines, 1 ns timer slack, SCHED_FIFO where permitted), so a tick of it over 5 ms
late (``clock.LateTicks``) is a stall that no loop on the machine could have avoided:
the virtual machine stopped, or every core was taken. A process of its own because a
thread beside other Python threads waits for their interpreter lock: in the bench's own
process (the demo's monitor, the samplers) it saw ten stalls over 5 ms in 10 s that no
node's loop saw, its lock's holder preempted by the nodes' real-time loops.

``python -m telesurgery.bench.stallprobe REPORT`` runs until SIGINT, then writes REPORT
(JSON); ``StallProbe`` runs it for the life of a ``with`` block.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from telesurgery.clock import FixedRateLoop
from telesurgery.errors import TelesurgeryError

PROBE_RATE_HZ: Final = 1000.0
"""The probe sleeps to a deadline one period (1 ms) away at a time."""
STOP_TIMEOUT_S: Final = 15.0


def run_probe(stop: threading.Event) -> dict[str, Any]:
    """Run the probe in this thread until ``stop`` is set; its figures: the late ticks
    (``LateTicks.report``), ticks run, period error [us], whether it ran SCHED_FIFO."""
    loop = FixedRateLoop(PROBE_RATE_HZ, name="stall-probe")
    loop.run(lambda _now: None, stop)
    return {"late": loop.late.report(), "ticks": len(loop.period_error_ns),
            "rate_hz": PROBE_RATE_HZ,
            "period_error_us": loop.period_error_ns.summary(1e-3),
            "realtime": os.sched_getscheduler(0) == os.SCHED_FIFO}


class StallProbe:
    """The probe as a child process for the life of a ``with`` block; ``report`` (its
    figures, ``run_probe``) once the block has ended. ``report_path``: where the child
    writes them."""

    def __init__(self, report_path: Path) -> None:
        self.report_path = report_path
        self.report: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen([sys.executable, "-m", __name__,
                                       str(self.report_path)])
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if exc_type is not None:
            return
        try:
            report = json.loads(self.report_path.read_text())
        except (OSError, ValueError) as err:
            raise TelesurgeryError(f"the stall probe wrote no report to {self.report_path} "
                                   f"(exit status {proc.returncode}); run `python -m "
                                   f"{__name__} REPORT` by hand to see why") from err
        self.report = report if isinstance(report, dict) else {}


def main(argv: list[str]) -> int:
    """Run until SIGINT; write the figures to ``argv[1]``."""
    if len(argv) != 2:
        print(f"usage: python -m {__name__} REPORT", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda _sig, _frame: stop.set())
    report = run_probe(stop)
    path = Path(argv[1])
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(report))
    partial.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
