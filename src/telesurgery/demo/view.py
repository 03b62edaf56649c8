"""The demo's terminal view (Rich): live status while running, a summary table after."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from telesurgery.demo.monitor import Monitor

_STATE_STYLE = {"ENGAGED": "bold green", "HOLD": "bold yellow", "ESTOP": "bold red",
                "DISABLED": "dim"}


def forces_text(forces: dict[str, Any]) -> str:
    """The forces row: each arm's peak at the tip, and how often the cap was reached."""
    peaks = ", ".join(f"{arm} {peak:g} N" for arm, peak in sorted(forces.get("peak_n", {}).items())
                      if isinstance(peak, int | float))
    cap = forces.get("cap_n")
    capped = (f"{cap:g} N cap reached {forces.get('limits', 0)} times "
              f"({forces.get('capped_s', 0.0):g} s)" if isinstance(cap, int | float) else "no cap")
    return f"peak {peaks or '?'}; {capped}; grip cap reached {forces.get('grip_limits', 0)} times"


def _pct(d: dict[str, Any] | None, unit: str) -> str:
    if not d:
        return "-"
    return (f"p50 {d['p50']:.3f}  p99 {d['p99']:.3f}  p99.9 {d['p999']:.3f}  "
            f"max {d['max']:.3f} {unit}")


def render_status(monitor: Monitor, elapsed_s: float, duration_s: float | None) -> Group:
    """One screen of live status from the latest node telemetry."""
    patient = monitor.status.get("patient", {})
    console = monitor.status.get("console", {})
    safety = patient.get("safety", {})
    state = str(safety.get("state", "?"))
    t = Table(title=f"telesurgery demo - session {monitor.keys.session}", show_header=False,
              expand=False)
    t.add_column(style="bold")
    t.add_column()
    left = f" / {duration_s:.0f} s" if duration_s else "  (Ctrl-C to stop)"
    t.add_row("time", f"{elapsed_s:6.1f} s{left}")
    t.add_row("nodes", ", ".join(sorted(monitor.present)) or "-")
    t.add_row("security", security_text(patient.get("security")))
    t.add_row("checklist", checklist_text((patient.get("security") or {}).get("checklist")))
    t.add_row("safety", Text(state, style=_STATE_STYLE.get(state, "")))
    control = patient.get("control")
    if control:
        t.add_row("control", control_text(control.get("owner"), control.get("handovers"),
                                          [r.get("name") for r in control.get("requests", [])]))
    streaming = float(console.get("streaming_s", 0.0))
    rate = (f"{console.get('sent_servo_cp', 0) / max(1, console.get('arms', 1)) / streaming:.1f}"
            " Hz per arm" if streaming > 0 else "-")
    t.add_row("control rate", rate)
    t.add_row("commands sent", str(console.get("sent", "-")))
    t.add_row("accepted / rejected / stale",
              f"{safety.get('accepted', '-')} / {safety.get('rejected', '-')} / "
              f"{safety.get('stale_dropped', '-')}")
    t.add_row("input -> accepted", _pct(safety.get("latency_ms"), "ms"))
    t.add_row("servo period error",
              _pct(patient.get("servo", {}).get("period_error_us"), "us"))
    task = patient.get("task")
    if task:
        t.add_row("task", f"{task.get('name', '?')}: {task.get('completed', 0)} transferred")
    rows = [t]
    if monitor.links:
        rows.append(_links(monitor))
    if monitor.link_alarms:
        al = Table(title="link alarms", show_header=False)
        for when, a in list(monitor.link_alarms):
            state = str(a.get("state"))
            al.add_row(time.strftime("%H:%M:%S", time.localtime(when)),
                       Text(f"{a.get('path')} {state}", style=_LINK_STYLE.get(state, "")),
                       f"{a.get('reason')} ({a.get('paths_up')} up)")
        rows.append(al)
    if monitor.events:
        ev = Table(title="safety events", show_header=False)
        for when, e in list(monitor.events):
            ev.add_row(time.strftime("%H:%M:%S", time.localtime(when)),
                       f"{e.previous.name} -> {e.state.name}", e.text())
        rows.append(ev)
    return Group(*rows)


_LINK_STYLE = {"UP": "bold green", "DOWN": "bold red", "WAITING": "dim"}


def _p50(d: dict[str, Any] | None) -> str:
    return f"{d['p50']:.1f}" if d and "p50" in d else "-"


def _links(monitor: Monitor) -> Table:
    """One row per control path and how to cut a path by hand (delays p50 [ms]; loss:
    command copies missed lately; first: share of commands this path brought first)."""
    t = Table(title="control paths")
    for col in ("path", "state", "RTT ms", "to patient / back ms", "jitter ms", "loss",
                "first", "heard"):
        t.add_column(col)
    for name, p in sorted(monitor.links.items()):
        state = str(p.get("state", "?"))
        ways = p.get("one_way_ms", {})
        jitter = p.get("jitter_ms", {})
        heard = p.get("last_heard_ms")
        first, late = p.get("first", 0), p.get("late", 0)
        t.add_row(name, Text(state, style=_LINK_STYLE.get(state, "")), _p50(p.get("rtt_ms")),
                  f"{_p50(ways.get('forward'))} / {_p50(ways.get('reverse'))}",
                  f"{jitter.get('forward', 0):.2f} / {jitter.get('reverse', 0):.2f}",
                  f"{100 * p.get('loss', 0):.2f} %",
                  f"{100 * first / (first + late):.0f} %" if first + late else "-",
                  "-" if heard is None else f"{heard:.0f} ms ago")
    if monitor.link_controls:
        cmds = "  ".join(f"{n}: echo cut | nc -u -w1 {c.split('/', 1)[1].replace(':', ' ')}"
                         for n, c in monitor.link_controls.items())
        t.caption = f"cut / restore a path: {cmds}"
    return t


def security_text(sec: dict[str, Any] | None) -> Text:
    """Green when mutual TLS, access control and command tags are on (with the owner),
    red when the run is insecure."""
    if not sec:
        return Text("-")
    if sec.get("insecure") or not sec.get("mtls"):
        return Text("INSECURE: plain TCP, no authentication (--insecure)", style="bold red")
    tags = "command tags" if sec.get("command_tags", True) else "NO command tags"
    owner = sec.get("owner")
    plain = sec.get("plain_paths") or []
    text = Text(f"mutual TLS, role access control, {tags}"
                + (f"; commands from {owner}" if owner else ""), style="bold green")
    if plain:
        text.append(f"; paths without TLS: {', '.join(plain)} (commands tagged)",
                    style="bold yellow")
    return text


def checklist_text(checklist: dict[str, Any] | None) -> Text:
    """The pre-flight checklist in one line: each item's state (green go, yellow
    overridden, red no-go) and whether it cleared, confirmed by whom."""
    if not checklist or not checklist.get("required"):
        return Text("not required")
    style = {"go": "green", "overridden": "yellow", "no_go": "bold red"}
    text = Text("CLEARED" if checklist.get("cleared") else "BLOCKING REMOTE CONTROL",
                style="bold green" if checklist.get("cleared") else "bold red")
    text.append(f" (confirmed by {checklist.get('confirmed_by') or 'nobody yet'}):")
    for item in checklist.get("items", []):
        text.append(f" {item.get('item')} {item.get('state')}",
                    style=style.get(str(item.get("state")), ""))
    return text


def control_text(owner: str | None, handovers: int | None, requests: list[Any]) -> Text:
    """Who holds control (bold yellow when the bedside took it), the handovers so far and
    the consoles waiting for a grant."""
    name = owner or "nobody yet"
    text = Text(name, style="bold yellow" if name.startswith(("backup:", "bedside"))
                else "bold")
    text.append(f", {handovers or 0} handover{'' if handovers == 1 else 's'}")
    if requests:
        text.append(f"; waiting for a grant: {', '.join(str(r) for r in requests)}")
    return text


def render_summary(summary: dict[str, Any]) -> Table:
    """The summary JSON as a table a person reads at a glance."""
    c = summary.get("control", {})
    s = summary.get("safety", {})
    t = Table(title="telesurgery demo summary", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("duration", f"{summary.get('duration_s', 0):.1f} s")
    t.add_row("control rate", f"{c.get('rate_hz', 0):.1f} Hz per arm")
    t.add_row("sent / applied", f"{c.get('sent', 0)} / {c.get('applied', 0)}")
    t.add_row("stale / rejected", f"{c.get('stale_dropped', 0)} / {c.get('rejected', 0)}")
    t.add_row("input -> accepted", _pct(c.get("latency_ms"), "ms"))
    t.add_row("wait for servo tick", _pct(c.get("tick_wait_ms"), "ms"))
    t.add_row("safety", f"{s.get('state', '?')}, holds {s.get('holds', 0)}, "
                        f"faults {s.get('faults', 0)}")
    forces = s.get("forces")
    if forces:
        t.add_row("forces", forces_text(forces))
    t.add_row("security", security_text(summary.get("security")))
    sec = summary.get("security") or {}
    t.add_row("checklist", checklist_text(sec.get("checklist")))
    backup = summary.get("backup")
    if backup is not None or sec.get("handovers"):
        text = control_text(sec.get("owner"), sec.get("handovers"), [])
        if backup is not None and backup.get("signalled_at_s") is not None:
            text.append(f"; bedside take-over at {backup['signalled_at_s']:.1f} s")
        t.add_row("control", text)
    link = summary.get("link", {})
    for name, p in link.get("paths", {}).items():
        t.add_row(f"path {name}", f"RTT p50 {_p50(p.get('rtt_ms'))} ms, loss "
                  f"{100 * p.get('loss', 0):.2f} %, first {p.get('first_arrivals', 0)}, "
                  f"late {p.get('late_copies', 0)}, outages {p.get('outages', 0)}")
    video = summary.get("video")
    if video:
        t.add_row("video", f"{video.get('width')}x{video.get('height')} at "
                           f"{video.get('fps') or 0:.1f} fps, shown by the "
                           f"{video.get('measured_at')}")
        t.add_row("glass-to-glass", _pct(video.get("glass_to_glass_ms"), "ms"))
        t.add_row("motion-to-photon", _pct(video.get("motion_to_photon_ms"), "ms"))
    task = summary.get("task")
    if task:
        score = task.get("score")
        t.add_row("task", f"{task.get('name')}: {task.get('completed')} in "
                          f"{task.get('time_s', 0):.1f} s"
                          + ("" if score is None else f", score {score:.1f}"))
    return t
