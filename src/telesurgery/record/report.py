"""The session report: one self-contained HTML file (plots inline as PNG) from a recording.

``render_report(session)`` turns the numbers of ``analysis.load_session`` into
sections: summary, control latency, one-way delay per path, link health,
video, safety timeline, control and handovers, task, recording and audit. A
section without data says so in one sentence; nothing is drawn that was not
recorded or computed from the recording, and every figure says which of the
two it is.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is written by a command, headless

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from telesurgery import __version__
from telesurgery.errors import RecordingError
from telesurgery.messages import SafetyEvent
from telesurgery.record.analysis import (
    Session,
    Timed,
    completeness,
    latency_values,
    time_above,
)
from telesurgery.record.mcap_writer import METADATA_NAME
from telesurgery.record.responsibility import load_timeline
from telesurgery.stats import summarize
from telesurgery.types import ArmMode, SafetyState

_STATE_COLOURS = {SafetyState.DISABLED: "#9e9e9e", SafetyState.HOLD: "#f2a900",
                  SafetyState.ENGAGED: "#2e7d32", SafetyState.ESTOP: "#c62828"}
_MODE_COLOURS = {ArmMode.HELD: "#f2a900", ArmMode.ARMED: "#64b5f6",
                 ArmMode.FOLLOWING: "#2e7d32", ArmMode.CLUTCHED: "#7e57c2"}
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;
background:#f4f6f9;line-height:1.45}
header{background:#17324d;color:#fff;padding:20px 32px}
header h1{margin:0 0 4px;font-size:24px} header p{margin:0;opacity:.85}
nav{background:#fff;border-bottom:1px solid #d8dee6;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:16px;color:#17324d;text-decoration:none;font-size:14px}
main{max-width:1100px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border:1px solid #d8dee6;border-radius:6px;margin:18px 0;
padding:6px 20px 16px}
h2{font-size:19px;border-bottom:1px solid #e6eaf0;padding-bottom:6px}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border:1px solid #dde3ea;padding:4px 10px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#eef2f7} td.n{text-align:right;font-variant-numeric:tabular-nums}
p.none{color:#6b7686;font-style:italic} p.note{color:#4a5566;font-size:13px}
img{max-width:100%;display:block;margin:8px 0}
.ok{color:#2e7d32;font-weight:600} .bad{color:#c62828;font-weight:600}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _png(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _figure(height: float = 3.2) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(10.5, height))
    ax.grid(True, alpha=0.3)
    return fig, ax


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_e(c)}</td>' if isinstance(c, int | float) else f"<td>{_e(c)}</td>"
        for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(rows: Iterable[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in rows) + "</table>"


def _none(what: str) -> str:
    return f'<p class="none">{_e(what)}</p>'


def _pct(d: Any, unit: str = "ms") -> str:
    if not isinstance(d, dict) or not d:
        return "not measured"
    parts = [f"{k} {d[k]:.3g}" for k in ("p50", "p99", "p999", "max") if k in d]
    return "  ".join(parts) + f" {unit}"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


# ---- sections ---------------------------------------------------------------------------


def _summary(s: Session) -> str:
    patient = s.patient.last() or {}
    safety = patient.get("safety", {})
    task = patient.get("task", {})
    consoles = {n: t.last() for n, t in s.nodes.items() if n != "patient"}
    sent = sum(int(c.get("sent", 0)) for c in consoles.values() if c)
    derived = summarize(latency_values(s))
    rows: list[tuple[str, Any]] = [
        ("duration (first to last message)", f"{s.duration_s:.1f} s"),
        ("commands recorded", _commands(s)),
        ("commands sent (console status)", sent if consoles else "no console status"),
        ("accepted / applied by a tick", f"{safety.get('accepted', '?')} / "
         f"{safety.get('applied', '?')}" if safety else "no patient status"),
        ("rejected / stale dropped", f"{safety.get('rejected', '?')} / "
         f"{safety.get('stale_dropped', '?')}" if safety else "no patient status"),
        ("input sample -> applied (derived, all arms)", _pct(derived)),
        ("input sample -> accepted (supervisor, last window)",
         _pct(safety.get("latency_ms"))),
        ("safety at the end", f"{_final_state(s, safety)}; holds {safety.get('holds', 0)}, "
         f"faults {safety.get('faults', 0)}, e-stops {safety.get('estops', 0)}"
         if safety else "no patient status"),
        ("safety transitions", len(s.safety)),
        ("task", f"{task.get('name', '?')}: {task.get('completed', 0)} completed, "
         f"{task.get('on_target', 0)} on target" if task else "no task reported"),
        ("control paths", ", ".join(sorted(s.links)) or "none recorded"),
        ("video", ", ".join(f"{c}: {len(v.t_s)} frames" for c, v in s.video.items())
         or "none recorded"),
        ("audit", _audit_verdict(s)),
    ]
    return _pairs(rows)


def _commands(s: Session) -> str:
    if not s.commands:
        why = (": over dedicated control paths they do not pass the router the recorder "
               "listens on" if set(s.links) - {"direct"} else "")
        return f"none{why}"
    per_arm = ", ".join(f"{a}: {n}" for a, n in sorted(s.commands.items()))
    return f"{sum(s.commands.values())} ({per_arm})"


def _final_state(s: Session, safety: dict[str, Any]) -> str:
    """The supervisor's state when the session ended, before the node disabled it."""
    last = s.safety.last()
    if last is not None and last.state is SafetyState.DISABLED:
        return f"{last.previous.name} (then DISABLED at stop)"
    return str(safety.get("state", "?"))


def _audit_verdict(s: Session) -> str:
    if not s.trails:
        return "no audit trail"
    bad = [t for t in s.trails if not t.ok]
    records = sum(t.records for t in s.trails)
    if bad:
        return f"TAMPERED or incomplete: {len(bad)} of {len(s.trails)} trail(s)"
    return f"intact: {records} records in {len(s.trails)} trail(s)"


def _control(s: Session) -> str:
    values = latency_values(s)
    if not values.size and not len(s.supervisor_latency):
        return _none("No control latency in this recording: no arm followed commands while "
                     "it was recorded, and no patient status reported latency.")
    body = ("<p>Two views of input sample &rarr; safety supervisor. <b>Derived from the "
            "recording</b> (dots, histogram): at each state publication of a following arm "
            "whose target changed, the publication time minus the input-sample time of the "
            "command it now tracks (<code>measured_cp.sent_ns - applied_sample_ns</code>, "
            "less the clock offset): input sample &rarr; applied by a servo tick, an upper "
            "bound by at most one state period. <b>Measured by the supervisor</b> (lines): "
            "input sample &rarr; accepted, the p50 and p99 each patient status reported "
            "over its last few thousand commands.</p>")
    fig, ax = _figure()
    for arm, series in sorted(s.applied_latency.items()):
        ax.plot(series.t_s, series.values, ".", ms=1.5, alpha=0.5,
                label=f"{arm}: sample -> applied (derived)")
    sup = s.supervisor_latency
    for key, style in (("p50", "-"), ("p99", "--")):
        pts = [(t, v[key]) for t, v in zip(sup.t_s, sup.values, strict=True) if key in v]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, color="black", lw=1.2,
                    label=f"sample -> accepted {key} (supervisor)")
    ax.set_xlabel("time since start of recording [s]")
    ax.set_ylabel("latency [ms]")
    ax.legend(loc="upper right", fontsize=8, markerscale=6)
    body += _png(fig, "control latency over time")
    if values.size:
        fig, ax = _figure(2.8)
        ax.hist(values, bins=80, color="#3b6ea5")
        ax.set_yscale("log")
        ax.set_xlabel("input sample -> applied [ms] (derived from the recording)")
        ax.set_ylabel("state publications")
        body += _png(fig, "histogram of control latency")
        rows = [(arm, *(_fmt(summarize(np.asarray(t.values, dtype=np.float64)), k)
                        for k in ("p50", "p99", "p999", "max", "count")))
                for arm, t in sorted(s.applied_latency.items())]
        body += _table(["arm", "p50 [ms]", "p99 [ms]", "p99.9 [ms]", "max [ms]", "samples"],
                       rows)
    return body


def _fmt(d: dict[str, float], key: str) -> float | str:
    return d.get(key, "-")


def _path_series(t: Timed, get: Callable[[dict[str, Any]], Any]) -> tuple[list[float],
                                                                          list[float]]:
    ts, vs = [], []
    for when, data in zip(t.t_s, t.values, strict=True):
        v = get(data)
        if isinstance(v, int | float):
            ts.append(when)
            vs.append(float(v))
    return ts, vs


def _getter(*path: str) -> Callable[[dict[str, Any]], Any]:
    """Reads ``d[path[0]][path[1]]...``; None where a level is missing."""
    def get(d: dict[str, Any]) -> Any:
        value: Any = d
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value
    return get


def _delays(s: Session) -> str:
    if not s.links:
        return _none("No link statistics in this recording (recorded before the dual-path "
                     "link, or the patient published none).")
    body = ("<p>Measured by the patient node's clock synchronisation on each path and "
            "published as <code>link/&lt;path&gt;/stats</code>: p50 of its recent exchanges. "
            "Forward is console &rarr; patient, reverse patient &rarr; console.</p>")
    fig, ax = _figure()
    drawn = False
    for path, t in sorted(s.links.items()):
        for way, style in (("forward", "-"), ("reverse", "--")):
            ts, vs = _path_series(t, _getter("one_way_ms", way, "p50"))
            if ts:
                ax.plot(ts, vs, style, label=f"{path} {way}")
                drawn = True
        ts, vs = _path_series(t, _getter("rtt_ms", "p50"))
        if ts:
            ax.plot(ts, vs, ":", label=f"{path} round trip")
            drawn = True
    if not drawn:
        plt.close(fig)
        return body + _none("The paths published no delay figures yet (clock sync had not "
                            "converged).")
    ax.set_xlabel("time since start of recording [s]")
    ax.set_ylabel("delay [ms]")
    ax.legend(fontsize=8)
    return body + _png(fig, "one-way delay per path")


def _link_health(s: Session) -> str:
    if not s.links and not len(s.link_alarms):
        return _none("No link health data in this recording.")
    rows = []
    for path, t in sorted(s.links.items()):
        last = t.last() or {}
        states = [str(d.get("state", "?")) for d in t.values]
        down = sum(1 for a, b in itertools.pairwise(states) if a != "DOWN" and b == "DOWN")
        total = last.get("loss_total", last.get("loss", 0))
        rows.append((path, last.get("state", "?"), f"{100 * float(total):.3f} %",
                     int(last.get("first", 0)), int(last.get("late", 0)),
                     int(last.get("outages", 0)), down, len(t)))
    body = _table(["path", "last state", "command loss (run)", "first arrivals", "late copies",
                   "outages", "seen going DOWN", "stats messages"], rows)
    fig, ax = _figure(2.6)
    for path, t in sorted(s.links.items()):
        ts, vs = _path_series(t, lambda d: 100 * float(d.get("loss", 0.0)))
        ax.step(ts, vs, where="post", label=path)
    ax.set_xlabel("time since start of recording [s]")
    ax.set_ylabel("copies lost, recent [%]")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    body += _png(fig, "loss per path")
    if len(s.link_alarms):
        body += "<h3>Alarms</h3>" + _table(
            ["t [s]", "path", "state", "paths up", "reason"],
            [(round(t, 2), a.get("path"), a.get("state"), a.get("paths_up"), a.get("reason"))
             for t, a in zip(s.link_alarms.t_s, s.link_alarms.values, strict=True)])
    else:
        body += _none("No link alarm was raised.")
    return body


def _video(s: Session) -> str:
    if not s.video and not len(s.video_latency):
        return _none("No video in this recording (recorded before the video work, or the "
                     "camera was off).")
    body = ""
    rows = []
    for cam, v in sorted(s.video.items()):
        rows.append((cam, f"{v.size[0]}x{v.size[1]}", len(v.t_s), round(v.fps, 1), v.lost,
                     v.keyframes, round(float(np.mean(v.nbytes)) / 1e3, 1) if v.nbytes else 0))
    if rows:
        body += _table(["camera", "size [px]", "frames", "fps (capture)", "lost",
                        "keyframes", "mean frame [kB]"], rows)
    if len(s.video_latency):
        body += ("<p>Measured by the node that displays the video (its status): "
                 "glass-to-glass is frame rendered &rarr; frame displayed; motion-to-photon "
                 "is input sample &rarr; first displayed frame that shows it.</p>")
        fig, ax = _figure()
        for key, colour in (("glass_to_glass_ms", "#3b6ea5"),
                            ("motion_to_photon_ms", "#c0392b")):
            for pct, style in (("p50", "-"), ("p99", "--")):
                ts, vs = _path_series(s.video_latency, _getter(key, pct))
                if ts:
                    ax.plot(ts, vs, style, color=colour,
                            label=f"{key.removesuffix('_ms').replace('_', '-')} {pct}")
        ax.set_xlabel("time since start of recording [s]")
        ax.set_ylabel("latency [ms]")
        ax.legend(fontsize=8)
        body += _png(fig, "video latency")
        last = s.video_latency.last() or {}
        body += _pairs([("glass-to-glass (last report)", _pct(last.get("glass_to_glass_ms"))),
                        ("motion-to-photon (last report)",
                         _pct(last.get("motion_to_photon_ms")))])
    else:
        body += _none("Glass-to-glass and motion-to-photon were not measured in this "
                      "recording: no node reported displaying the video.")
    return body


def _spans(times: Sequence[float], states: Sequence[Any], end: float
           ) -> list[tuple[float, float, Any]]:
    out = []
    for i, (t, st) in enumerate(zip(times, states, strict=True)):
        t_next = times[i + 1] if i + 1 < len(times) else end
        out.append((t, max(t_next - t, 0.0), st))
    return out


def _modes(e: SafetyEvent) -> str:
    """An arm's modes before and after (empty for the supervisor as a whole)."""
    if e.mode_before is None or e.mode_after is None:
        return ""
    return f"{e.mode_before.label} -> {e.mode_after.label}"


def _safety(s: Session) -> str:
    if not len(s.safety) and not s.modes:
        return _none("No safety transition or arm state in this recording.")
    end = s.duration_s
    lanes: list[tuple[str, list[tuple[float, float, Any]], dict[Any, str]]] = []
    if len(s.safety):
        lanes.append(("supervisor", _spans(s.safety.t_s, [e.state for e in s.safety.values],
                                           end), dict(_STATE_COLOURS)))
    for arm, t in sorted(s.modes.items()):
        lanes.append((arm, _spans(t.t_s, t.values, end), dict(_MODE_COLOURS)))
    fig, ax = _figure(0.7 * len(lanes) + 1.2)
    seen: dict[str, str] = {}
    for y, (_, spans, colours) in enumerate(lanes):
        for start, width, st in spans:
            colour = colours.get(st, "#cccccc")
            ax.broken_barh([(start, width)], (y - 0.35, 0.7), color=colour)
            seen[st.name] = colour
    ax.set_yticks(range(len(lanes)), [name for name, _, _ in lanes])
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_xlabel("time since start of recording [s]")
    ax.invert_yaxis()
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in seen.values()]
    ax.legend(handles, list(seen), fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    body = ("<p>The supervisor's state from its recorded transitions, and each arm's mode "
            "from its recorded <code>measured_cp</code>.</p>") + _png(fig, "safety timeline")
    patient = s.patient.last() or {}
    safety = patient.get("safety", {})
    if safety:
        body += _pairs([("holds", safety.get("holds", 0)), ("faults", safety.get("faults", 0)),
                        ("e-stops", safety.get("estops", 0)),
                        ("rejections by reason", safety.get("rejected_by_reason") or "none")])
    if len(s.safety):
        body += "<h3>Transitions</h3>" + _table(
            ["t [s]", "from", "to", "robot", "cause", "arm", "mode", "reason"],
            [(round(t, 3), e.previous.name, e.state.name, e.operating_state.name,
              e.cause.label, e.arm or "", _modes(e), e.reason)
             for t, e in zip(s.safety.t_s, s.safety.values, strict=True)])
    return body


def _handovers(s: Session) -> str:
    body = ""
    if len(s.owners):
        body += "<h3>Control owner (recorded)</h3>" + _table(
            ["t [s]", "owner", "previous", "reason"],
            [(round(t, 3), str(d.get("owner")), str(d.get("previous")), str(d.get("reason")))
             for t, d in zip(s.owners.t_s, s.owners.values, strict=True)])
    if s.handovers:
        body += "<h3>Control owner and handovers (audit trail)</h3>" + _table(
            ["time (UTC)", "node", "kind", "details"],
            [(h["wall"], h["node"], h["kind"], str(h["data"])) for h in s.handovers])
    return body or _none("No control owner announcement or handover in this recording "
                         "(recorded before control ownership, or nobody ever held control).")


def _responsibility(s: Session) -> str:
    try:
        timeline = load_timeline(s.directory)
    except RecordingError as exc:
        return _none(f"No responsibility timeline: {exc}")
    body = "<h3>Who held control</h3>" + _table(
        ["from [s]", "to [s]", "in control", "licence", "bedside lead"],
        [(f"{span.start_s:.3f}", "end" if span.end_s is None else f"{span.end_s:.3f}",
          span.owner,
          "none" if not span.licence else
          f"{span.licence.get('number')} {span.licence.get('authority')} "
          f"({span.licence.get('jurisdiction')})", span.bedside or "none identified")
         for span in timeline.spans])
    if timeline.checklist is not None:
        body += (f"<h3>Pre-flight checklist (confirmed by "
                 f"{_e(timeline.checklist.get('confirmed_by'))})</h3>") + _table(
            ["item", "state", "observed", "override reason"],
            [(i.get("item"), i.get("state"), i.get("detail"), i.get("reason") or "")
             for i in timeline.checklist.get("items", [])])
    body += "<h3>Handovers, overrides and adverse events</h3>" + _table(
        ["t [s]", "what", "details", "in control"],
        [(f"{e.at_s:.3f}", e.kind, e.text, e.owner) for e in timeline.events])
    for problem in timeline.problems:
        body += f'<p class="bad">{_e(problem)}</p>'
    return body


def _forces(s: Session) -> str:
    if not any(len(f) for f in s.forces.values()):
        return _none("No instrument state in this recording, so no forces.")
    cap = s.force_cap_n
    body = ("<p>The force at each instrument's tip (magnitude, as the patient's sensor "
            "reported it in <code>measured_cp</code>) and the jaws' grip, over time"
            + (f", against the supervisor's cap of {cap:g} N." if cap is not None else
               "; the recording holds no patient status naming the cap.") + "</p>")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10.5, 4.4), sharex=True)
    for arm, series in sorted(s.forces.items()):
        top.plot(series.t_s, series.values, lw=0.8, label=arm)
    for arm, series in sorted(s.grips.items()):
        bottom.plot(series.t_s, series.values, lw=0.8, label=arm)
    if cap is not None:
        top.axhline(cap, color="#b03030", ls="--", lw=1.0, label=f"cap {cap:g} N")
    top.set_ylabel("force at the tip [N]")
    bottom.set_ylabel("grip [N]")
    bottom.set_xlabel("time since start of recording [s]")
    top.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    body += _png(fig, "force at each tip and grip over time")
    rows = []
    for arm, series in sorted(s.forces.items()):
        peak = max(series.values) if len(series) else 0.0
        above = f"{time_above(series, cap):.2f}" if cap is not None else "?"
        rows.append((arm, f"{peak:.1f}", above, len(series)))
    return body + _table(["arm", "peak force [N]", "time at or above the cap [s]",
                          "samples"], rows)


def _task(s: Session) -> str:
    pts = [(t, d["task"]) for t, d in zip(s.patient.t_s, s.patient.values, strict=True)
           if isinstance(d.get("task"), dict)]
    if not pts:
        return _none("No task reported in this recording.")
    last = pts[-1][1]
    score = last.get("score")
    metrics = last.get("metrics") or {}
    body = _pairs([("task", last.get("name", "?")),
                   ("completed", f"{last.get('completed', 0)} of {last.get('objectives', '?')}"),
                   ("rings on target", last.get("on_target", "-")),
                   ("time on the task's clock [s]", last.get("time_s", 0)),
                   ("score (0-100)", "under way" if score is None else score),
                   ("penalties", ", ".join(f"{k} {v}" for k, v in
                                           (last.get("penalties") or {}).items()) or "none"),
                   ("simulated time [s]", last.get("sim_time_s", "?"))])
    if metrics:
        body += "<h3>Robot metrics</h3>" + _pairs(
            (k, ", ".join(f"{a} {v}" for a, v in m.items()) if isinstance(m, dict) else m)
            for k, m in metrics.items() if k != "handovers")
        if metrics.get("handovers"):
            body += _table(["handover at [s]", "both holding [s]", "ring moved [mm]"],
                           [(h["start_s"], h["duration_s"], h["motion_mm"])
                            for h in metrics["handovers"]])
    fig, ax = _figure(2.4)
    ts = [t for t, _ in pts]
    for key in ("completed", "on_target"):
        ax.step(ts, [float(d.get(key, 0)) for _, d in pts], where="post", label=key)
    ax.set_xlabel("time since start of recording [s]")
    ax.set_ylabel("rings")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    return body + _png(fig, "task progress")


def _recording(s: Session) -> str:
    meta = s.metadata.get(METADATA_NAME, {})
    rec = s.recorder
    rows: list[tuple[str, Any]] = [
        ("files", ", ".join(p.name for p in s.files)),
        ("size", f"{s.bytes / 1e6:.2f} MB"),
        ("finished", "yes" if s.complete else "no: cut short (the recorder was killed); read "
         "up to its last complete chunk"),
        ("started (UTC)", meta.get("wall_utc", "unknown")),
        ("messages", s.messages),
        ("recorder counters", ", ".join(f"{k} {v}" for k, v in rec.items()) or "none"),
    ]
    body = _pairs(rows)
    comp = completeness(s)
    keyed = sorted(k for k in comp if not k.endswith(("/sync/request", "/sync/reply")))
    if keyed:
        body += ("<p>Per key, messages recorded of those sent, from the senders' sequence "
                 "numbers. A gap is a message the recorder did not receive (dropped on its way "
                 "to the recorder, e.g. on a loaded machine); what the robot received is in "
                 "the link health above.</p>")
        body += _table(["key", "recorded", "sent", "complete"],
                       [(k, comp[k][0], comp[k][1], f"{100 * comp[k][0] / comp[k][1]:.2f} %")
                        for k in keyed])
    if s.trails:
        body += "<h3>Audit trails</h3>" + _table(
            ["trail", "node", "signer", "records", "closed", "verdict"],
            [(t.trail.name, t.node, t.fingerprint, t.records, "yes" if t.closed else "no",
              "intact" if t.ok else "; ".join(str(f) for f in t.findings))
             for t in s.trails])
        body += _table(["record kind", "count"], sorted(s.audit_kinds.items()))
        body += ('<p class="note">A signer fingerprint is worth what its out-of-band copy is '
                 "worth: compare it with the one printed when the node started "
                 "(<code>telesurgery audit verify --trust</code>).</p>")
    else:
        body += _none("No audit trail beside this recording.")
    return body


_SECTIONS: tuple[tuple[str, str, Callable[[Session], str]], ...] = (
    ("summary", "Summary", _summary),
    ("control", "Control latency", _control),
    ("delay", "One-way delay per path", _delays),
    ("link", "Link health per path", _link_health),
    ("video", "Video", _video),
    ("safety", "Safety timeline", _safety),
    ("handovers", "Control and handovers", _handovers),
    ("responsibility", "Responsibility timeline", _responsibility),
    ("forces", "Forces at the instruments", _forces),
    ("task", "Task", _task),
    ("recording", "Recording and audit", _recording),
)


def render_report(s: Session) -> str:
    """The whole report as one HTML document (no external asset)."""
    meta = s.metadata.get(METADATA_NAME, {})
    started = meta.get("wall_utc", "")
    title = f"Session report: {s.session or s.directory.name}"
    nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t, _ in _SECTIONS)
    sections = "".join(_section(a, t, fn(s)) for a, t, fn in _SECTIONS)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p>recorded {_e(started or 'at an unknown time')}"
            f" &middot; {s.duration_s:.1f} s &middot; {_e(s.directory)} &middot; report by "
            f"telesurgery {_e(__version__)}, {made}</p></header><nav>{nav}</nav>"
            f"<main>{sections}</main></body></html>")


__all__ = ["render_report"]
