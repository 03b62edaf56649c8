"""How fast the recorder writes and how big a recording grows, on a synthetic session.

The session is what a 1 kHz teleoperation of two arms puts on the wire: per
arm, ``servo_cp`` and ``jaw/servo_jp`` commands and ``measured_cp``,
``measured_js`` and ``measured_cf`` state at ``rate_hz`` each, with smoothly
varying full-precision values (a constant pose would compress unrealistically
well), plus safety events and node status at 1 Hz. Run it with
``python -m telesurgery.record.throughput [seconds]``.
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from telesurgery.messages import (
    AnyBody,
    JawServoJP,
    MeasuredCF,
    MeasuredCP,
    MeasuredJS,
    Message,
    SafetyCause,
    SafetyEvent,
    ServoCP,
    Status,
)
from telesurgery.record.mcap_writer import McapRecording
from telesurgery.transport.codec import encode
from telesurgery.transport.keys import Keys
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState, Wrench


def _pose(t: float, phase: float) -> Pose:
    half = 0.3 * math.sin(0.5 * t + phase) / 2.0
    return Pose((0.03 * math.sin(t + phase), 0.02 * math.cos(0.7 * t + phase),
                 -0.12 + 0.01 * math.sin(1.3 * t)), (math.cos(half), 0.0, math.sin(half), 0.0))


def synthetic_session(seconds: float, arms: tuple[str, ...] = ("psm1", "psm2"),
                      rate_hz: float = 1000.0) -> Iterator[tuple[str, bytes, int]]:
    """``(key, wire, receive_ns)`` of ``seconds`` [s] of a session, in time order."""
    keys = Keys("or1")
    rng = random.Random(0)
    period = round(1e9 / rate_hz)
    seqs: dict[str, int] = {}

    def wire(key: str, t_ns: int, body: AnyBody) -> tuple[str, bytes, int]:
        seqs[key] = seqs.get(key, 0) + 1
        return key, encode(Message(1, seqs[key], t_ns, body)), t_ns + 150_000

    for tick in range(round(seconds * rate_hz)):
        t_ns = 1_000_000_000 + tick * period
        t = t_ns * 1e-9
        for n, arm in enumerate(arms):
            target, measured = _pose(t, n), _pose(t - 0.002, n)
            jaw = 0.5 + 0.4 * math.sin(0.9 * t + n)
            q = tuple(0.4 * math.sin(0.8 * t + j + n) for j in range(7))
            qd = tuple(0.32 * math.cos(0.8 * t + j + n) for j in range(7))
            yield wire(keys.servo_cp(arm), t_ns, ServoCP(arm, target, t_ns - 300_000))
            yield wire(keys.jaw_servo_jp(arm), t_ns, JawServoJP(arm, jaw, t_ns - 300_000))
            yield wire(keys.measured_cp(arm), t_ns, MeasuredCP(
                arm, measured, target, jaw, seqs[keys.servo_cp(arm)], t_ns - 300_000,
                OperatingState.ENABLED, ArmMode.FOLLOWING))
            yield wire(keys.measured_js(arm), t_ns, MeasuredJS(arm, q, qd))
            yield wire(keys.measured_cf(arm), t_ns, MeasuredCF(arm, Wrench(
                (rng.gauss(0, 0.05), rng.gauss(0, 0.05), rng.gauss(0.2, 0.05)),
                (rng.gauss(0, 0.002), rng.gauss(0, 0.002), rng.gauss(0, 0.002)))))
        if tick % round(rate_hz) == 0:
            yield wire(keys.safety_state, t_ns, SafetyEvent(
                SafetyState.ENGAGED, SafetyState.HOLD, OperatingState.ENABLED,
                SafetyCause.ALIGNED_ENGAGE, "clutch released with the hand aligned on the tool",
                "psm1", ArmMode.ARMED, ArmMode.FOLLOWING))
            yield wire(keys.status("patient"), t_ns, Status(
                {"servo": {"rate_hz": 1000.0, "late_us": {"p50": 12.0, "p99": 48.0}},
                 "applied": tick, "rejected": 0}))


def measure(seconds: float = 60.0, directory: Path | None = None) -> dict[str, float]:
    """Write ``seconds`` [s] of the synthetic session; rates [messages/s], sizes [MB]."""
    items = list(synthetic_session(seconds))
    with tempfile.TemporaryDirectory() as tmp:
        # Kept in ``directory`` when one is given (to inspect it), else removed.
        path = (directory or Path(tmp)) / "throughput.mcap"
        start = time.perf_counter()
        cpu = time.process_time()
        with McapRecording(path) as rec:
            for key, wire, receive_ns in items:
                rec.write_wire(key, wire, receive_ns)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - start
        size = path.stat().st_size
    wire_bytes = sum(len(w) for _k, w, _t in items)
    return {
        "session_s": seconds,
        "messages": len(items),
        "session_rate_msg_s": round(len(items) / seconds),
        "write_rate_msg_s": round(len(items) / wall),
        "cpu_s_per_session_s": round(cpu / seconds, 3),
        "file_mb": round(size / 1e6, 2),
        "file_mb_per_min": round(size / 1e6 * 60.0 / seconds, 2),
        "wire_mb_per_min": round(wire_bytes / 1e6 * 60.0 / seconds, 2),
        "bytes_per_message": round(size / len(items), 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0), indent=2))
