"""The summary JSON of a run (the contract in the design brief), from the nodes' reports."""

from __future__ import annotations

from typing import Any


def build_summary(duration_s: float, patient: dict[str, Any], console: dict[str, Any],
                  extra: dict[str, Any]) -> dict[str, Any]:
    """Merge the patient's and the console's final reports into the summary.

    ``control.applied`` counts commands the safety supervisor accepted as the arm's
    setpoint; ``applied_by_tick`` counts those a servo tick then used (a setpoint
    replaced by a newer one within the same 1 ms period is superseded, not lost).
    ``rate_hz`` is pose commands sent per arm per second of streaming; the safety
    ``state`` is the supervisor's when the run ended (before the robot was disabled).
    """
    safety = patient.get("safety", {})
    arms = max(1, len(patient.get("registration", {})))
    sent = int(console.get("sent", 0))
    streaming = float(console.get("streaming_s", 0.0))
    accepted = int(safety.get("accepted", 0))
    control = {
        "rate_hz": round(console.get("sent_servo_cp", 0) / arms / streaming, 1)
        if streaming else 0.0,
        "sent": sent,
        "applied": accepted,
        "applied_by_tick": int(safety.get("applied", 0)),
        "stale_dropped": int(safety.get("stale_dropped", 0)),
        "rejected": int(safety.get("rejected", 0)),
        "rejected_by_reason": safety.get("rejected_by_reason", {}),
        "undecodable": int(patient.get("undecodable", 0)),
        "latency_ms": safety.get("latency_ms", {}),
        "tick_wait_ms": safety.get("tick_wait_ms", {}),
        "servo_period_error_us": patient.get("servo", {}).get("period_error_us", {}),
        "console_period_error_us": console.get("loop", {}).get("period_error_us", {}),
        "cpu_cores": {"patient": patient.get("cpu_cores"), "console": console.get("cpu_cores")},
    }
    out: dict[str, Any] = {
        "duration_s": round(duration_s, 3),
        "control": control,
        "safety": {"state": patient.get("final_state", safety.get("state", "UNKNOWN")),
                   "holds": safety.get("holds", 0), "faults": safety.get("faults", 0),
                   "estops": safety.get("estops", 0)},
    }
    if "task" in patient:
        out["task"] = patient["task"]
    out["run"] = extra
    return out
