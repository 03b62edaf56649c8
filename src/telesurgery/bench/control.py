"""``bench control``: the teleoperation path measured through the real demo processes.

Latency is input sample -> setpoint accepted by the safety supervisor on the patient
node (both on one machine share CLOCK_MONOTONIC, so no clock offset enters); the
wait for the servo tick that applies the setpoint is reported beside it, with the
servo and teleop loop period errors and the CPU each process used.
"""

from __future__ import annotations

import threading
from typing import Any

from telesurgery.bench.machine import machine_info
from telesurgery.demo.run import DemoOptions, run_demo


def bench_control(duration_s: float = 60.0) -> dict[str, Any]:
    """Run the demo headless for ``duration_s`` [s] and return the control figures."""
    summary = run_demo(DemoOptions(duration_s=duration_s, video=False), threading.Event())
    return {
        "what": "input sample -> setpoint accepted by the safety supervisor, 1 kHz, 2 arms, "
                "separate processes over Zenoh on loopback (console -> patient peer-to-peer), "
                "video off (bench video measures the control loop with video on)",
        "machine": machine_info(),
        "duration_s": summary["duration_s"],
        "control": summary["control"],
        "safety": summary["safety"],
        "targets": {"latency_p999_ms": 1.0, "servo_period_error_p999_ms": 0.5},
    }
