"""The summary JSON of a run (the contract in the design brief), from the nodes' reports."""

from __future__ import annotations

from typing import Any


def build_summary(duration_s: float, patient: dict[str, Any], console: dict[str, Any],
                  extra: dict[str, Any], *, link_profile: str | None = None,
                  emulators: dict[str, dict[str, Any]] | None = None,
                  cuts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Merge the patient's and the console's final reports into the summary.

    ``control.applied`` counts commands the safety supervisor accepted as the arm's
    setpoint; ``applied_by_tick`` counts those a servo tick then used (a setpoint
    replaced by a newer one within the same 1 ms period is superseded, not lost).
    ``rate_hz`` is pose commands sent per arm per second of streaming (while the console
    could drive: ``driving_s``); the safety
    ``state`` is the supervisor's when the run ended (before the robot was disabled).
    ``link`` is ``link_section`` of the patient's path figures. ``unreceived_at_stop``:
    the console's commands the patient never received, those in flight or sent after it
    stopped listening (the nodes stop together); None when the arms last heard another
    console.
    """
    safety = patient.get("safety", {})
    arms = max(1, len(patient.get("registration", {})))
    sent = int(console.get("sent", 0))
    # While it held control: a console that lost it stops sending (console.control).
    streaming = float(console.get("driving_s") or console.get("streaming_s", 0.0))
    accepted = int(safety.get("accepted", 0))
    control = {
        "rate_hz": round(console.get("sent_servo_cp", 0) / arms / streaming, 1)
        if streaming else 0.0,
        "sent": sent,
        "applied": accepted,
        "applied_by_tick": int(safety.get("applied", 0)),
        "unreceived_at_stop": unreceived_at_stop(console, safety),
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
        "link": link_section(link_profile, patient.get("link", {}), emulators or {},
                             cuts or []),
        "safety": {"state": patient.get("final_state", safety.get("state", "UNKNOWN")),
                   "holds": safety.get("holds", 0), "faults": safety.get("faults", 0),
                   "estops": safety.get("estops", 0),
                   "forces": {
                       "cap_n": safety.get("force_cap_n"),
                       "limits": safety.get("force_limits", 0),
                       "capped_s": safety.get("force_capped_s", 0.0),
                       "grip_limits": safety.get("grip_limits", 0),
                       "peak_n": {arm: a.get("peak_force_n")
                                  for arm, a in safety.get("arms", {}).items()}}},
    }
    if "task" in patient:
        out["task"] = patient["task"]
    out["run"] = extra
    return out


def unreceived_at_stop(console: dict[str, Any], safety: dict[str, Any]) -> int | None:
    """Commands the console sent that the supervisor never received from it.

    Each arm counts the commands of its current console session that reached it
    (``received``), so the console's ``sent`` less their sum is what never reached the
    patient by the end: in flight or sent after it stopped. None when any arm last heard
    another session (a take-over), whose commands are not this console's."""
    arms = safety.get("arms", {})
    session = console.get("session_id")
    if not arms or session is None or any(a.get("session") != session for a in arms.values()):
        return None
    received = sum(int(a.get("received", 0)) for a in arms.values())
    return max(0, int(console.get("sent", 0)) - received)


def security_section(insecure: bool, patient: dict[str, Any]) -> dict[str, Any]:
    """The summary's ``security``: ``mtls`` as the patient node ran it, ``insecure`` as
    asked (``--insecure``), ``owner`` the console holding control when the run ended (its
    certificate's common name; ``role:session`` when insecure; ``bedside`` when control lay
    with the bedside and no console drove), ``handovers``: changes of owner, whether
    commands had to carry tags, the control paths without TLS (``plain_paths``: emulated
    datagram paths), keys agreed and key offers refused, ``credential``: the owner's licence
    (authority, jurisdiction; None: none), ``checklist``: the pre-flight checklist's items
    and states."""
    sec = patient.get("security", {})
    return {"mtls": bool(sec.get("mtls", False)), "insecure": insecure,
            "owner": sec.get("owner"), "handovers": int(sec.get("handovers", 0)),
            "command_tags": bool(sec.get("command_tags", False)),
            "plain_paths": sec.get("plain_paths", []),
            "keys_agreed": sec.get("keys_agreed", 0),
            "offers_refused": sec.get("offers_refused", {}),
            "credential": sec.get("credential"),
            "checklist": sec.get("checklist")}


def backup_section(backup: dict[str, Any], takeover_at_s: float | None,
                   took_over_s: float | None) -> dict[str, Any]:
    """The summary's ``backup`` (the bedside console, ``demo --backup``): the drill's
    take-over time asked for and when the demo signalled it [s into the run], commands the
    backup sent, how long it drove [s], whether it held control at the end, and its
    control actions sent."""
    control = backup.get("control", {})
    return {"takeover_at_s": takeover_at_s, "signalled_at_s": took_over_s,
            "sent": int(backup.get("sent", 0)), "driving_s": backup.get("driving_s", 0.0),
            "holds_control": bool(control.get("holds", False)),
            "actions": control.get("sent", {})}


def _pick(d: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: d[n] for n in names if n in d}


def link_section(profile: str | None, link: dict[str, Any],
                 emulators: dict[str, dict[str, Any]],
                 cuts: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's ``link``: the profile emulated (None: the one direct path), the
    effective round trip (first sync reply of each round, over all paths) [ms], and per
    path its command-copy loss, round trip, one-way delays, jitter, first arrivals,
    late copies, superseded numbers, copies missed (numbers this path never brought) and
    outages; the clock estimate; what the emulators did."""
    paths = {}
    for name, p in link.get("paths", {}).items():
        commands = p.get("commands", {})
        paths[name] = {
            "loss": p.get("loss", 0.0),
            "rtt_ms": _pick(p.get("rtt_ms", {}), "p50", "p99"),
            "one_way_ms": {d: _pick(v, "p50", "p99")
                           for d, v in p.get("one_way_ms", {}).items()},
            "jitter_ms": p.get("jitter_ms", {}),
            "first_arrivals": commands.get("first", 0),
            "late_copies": commands.get("late", 0),
            "superseded": commands.get("superseded", 0),
            "missed": commands.get("missed", 0),
            "late_lag_ms": _pick(commands.get("lag_ms", {}), "p50", "p99"),
            "outages": p.get("outages", 0),
            "down_s": p.get("down_s", 0.0),
        }
    out: dict[str, Any] = {
        "profile": profile,
        "rtt_ms": _pick(link.get("rtt_ms", {}), "p50", "p99"),
        "paths": paths,
        "clock": link.get("clock", {}),
        "commands": link.get("commands", {}),
        "alarms": len([a for a in link.get("alarms", []) if a.get("state") == "DOWN"]),
    }
    if cuts:
        out["cuts"] = cuts
    if emulators:
        out["emulators"] = {
            name: {d: _pick(v, "delivered", "dropped", "applied_delay_ms")
                   for d, v in e.get("directions", {}).items()}
            for name, e in emulators.items()
        }
    return out
