"""``bench faults``: the fault matrix on the real processes, one fresh demo run a fault.

Each run is the demo over a link profile (router, patient, surgeon console, one link
emulator per path, the recorder and the patient's signed audit trail; video off, so
that the matrix fits a 2-core machine, save for a fault about video), watched by an
observer on the site router. ``before_s`` after every node is up the bench injects the
fault (``inject``), it lasts its duration, and the run goes on ``after_s`` before the
demo stops. Each entry says its criteria beside its result (``judge``); figures come from
the observer, the nodes' own summary, the emulators, the recording and the audit trail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import zenoh

from telesurgery.bench.faults.inject import FAULTS, Fault, Injection
from telesurgery.bench.faults.judge import (
    HELD_DRIFT_M,
    SPEED_MARGIN,
    STEP_MARGIN_M,
    Losses,
    growth,
    held_drift_mm,
    judge,
    mode_at,
    motion,
    recording_losses,
    recovery_s,
)
from telesurgery.bench.faults.observe import Observer
from telesurgery.bench.machine import machine_info
from telesurgery.clock import now_ns
from telesurgery.config import PatientConfig, SafetyConfig
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.run import DemoNodes, DemoOptions, run_demo
from telesurgery.errors import RecordingError, TelesurgeryError
from telesurgery.link.profiles import load_profile
from telesurgery.record.audit import AuditVerifier
from telesurgery.record.reader import Recording
from telesurgery.transport.keys import Keys

Progress = Callable[[str], None]

MAX_RECORDER_LOSS_S: Final = 1.0
"""The recording may miss at most this much [s] of a stream in a row."""
NO_HOLD_AFTER_S: Final = 1.0
"""A fault that must not hold the arms is judged until this long [s] after its end."""


@dataclass(frozen=True, slots=True)
class FaultOptions:
    """What ``bench faults`` was asked for."""

    faults: tuple[Fault, ...] = FAULTS
    link: str = "rome-beijing"
    before_s: float = 6.0
    """From every node up to the fault [s]: the console claims control and the arms
    follow."""
    after_s: float = 12.0
    """From the fault's end to the demo's stop [s]."""
    recovery_s: float = 10.0
    """Every arm follows again within this long [s] of the fault's end."""
    workdir: Path | None = None
    """Where each run keeps its logs and recording (None: a temporary folder, removed)."""
    log_level: str = "warning"
    pin_sites: bool = True


def criteria(fault: Fault, opts: FaultOptions) -> str:
    """The fault's pass criteria in words, with their numbers."""
    speed = SafetyConfig().max_linear_speed_m_s
    out = [f"tool tips never move faster than {speed:g} m/s x {1 + SPEED_MARGIN:g} + "
           f"{STEP_MARGIN_M * 1e3:g} mm between state samples",
           f"a held arm drifts <= {HELD_DRIFT_M * 1e3:g} mm",
           f"every arm follows a new command within {opts.recovery_s:g} s of the fault's "
           "end, after any hold begun by then",
           "every audit trail verifies" + (" (the killed node's left open)"
                                           if fault.kills_patient else ""),
           f"the recording misses <= {MAX_RECORDER_LOSS_S:g} s of measured poses in a row"]
    if fault.expect_no_hold:
        out.append("no arm is held from the fault's start to 1 s after its end (the other "
                   "path, or the other copies, carry the commands)")
    if fault.expect_commands:
        out.append("no command number is lost on every path from the fault's start to 1 s "
                   "after its end (the patient's count)")
    return "; ".join(out)


class _Driver:
    """Runs one fault from the demo's start hook: waits ``before_s``, injects, waits
    ``after_s``, stops the demo (``done``). Times are the monotonic clock [ns]."""

    def __init__(self, fault: Fault, opts: FaultOptions, arms: tuple[str, ...],
                 halt: threading.Event, record: Path) -> None:
        self.fault = fault
        self.record = record
        self.opts = opts
        self.arms = arms
        self.halt = halt
        self.done = threading.Event()
        self.abort = threading.Event()
        self.observer: Observer | None = None
        self.nodes: DemoNodes | None = None
        self.began_ns: int | None = None
        self.fault_ns: tuple[int, int] | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, nodes: DemoNodes, monitor: Monitor) -> None:
        self.observer = Observer(monitor, self.arms)
        self.nodes = nodes
        self._thread = threading.Thread(target=self._run, args=(nodes,),
                                        name="fault-driver", daemon=True)
        self._thread.start()

    def tick(self, _monitor: Monitor, _elapsed_s: float) -> None:
        if self.halt.is_set():
            self.abort.set()

    def _run(self, nodes: DemoNodes) -> None:
        assert self.observer is not None  # made by ``start``, which starts this thread
        try:
            if self.abort.wait(self.opts.before_s):
                return
            ctx = Injection(nodes, self.abort, self.observer.seen, self.record)
            self.began_ns = begin = now_ns()
            self.fault.inject(ctx, self.fault.duration_s)
            self.fault_ns = (begin, now_ns())
            if self.fault.recover is not None:
                # The team's action may take long on a loaded machine: what follows it is
                # watched for the whole ``after_s`` all the same.
                self.fault.recover(ctx)
            self.abort.wait(self.opts.after_s)
        except BaseException as exc:  # reported by ``join`` on the bench's thread
            self.error = exc
        finally:
            if self.observer is not None:
                with contextlib.suppress(zenoh.ZError):
                    self.observer.close()
            self.done.set()

    def join(self) -> None:
        """Wait for the driver (after the demo returned); re-raise what it failed on."""
        self.abort.set()
        if self._thread is not None:
            self._thread.join(30.0)
        if self.error is not None:
            raise TelesurgeryError(f"fault {self.fault.name}: {self.error}") from self.error


@contextlib.contextmanager
def _small_disk(path: Path, size_mb: int | None) -> Iterator[None]:
    """``path`` a tmpfs of ``size_mb`` [MiB] of its own while in the context (None: as it
    is); ``RecordingError`` when it cannot be mounted."""
    if size_mb is None:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                           str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RecordingError(f"cannot mount a tmpfs on {path}: {done.stderr.strip()[:200]}")
    try:
        yield
    finally:
        # Lazily: a node still closing a file there must not keep the bench from going on.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def not_measured(fault: Fault, reason: str) -> dict[str, Any]:
    """The entry of a fault this machine cannot inject: ``passed`` None and why."""
    return {"name": fault.name, "passed": None, "what": fault.what,
            "reason": f"not measured: {reason}"}


def run_fault(fault: Fault, opts: FaultOptions, workdir: Path, halt: threading.Event
              ) -> dict[str, Any]:
    """One demo run with ``fault`` injected; its entry of the matrix."""
    record = workdir / "record"
    if fault.disk_mb is not None and os.geteuid() != 0:
        return not_measured(fault, "needs root, to mount a small tmpfs for the recording")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_small_disk(record, fault.disk_mb))
        except RecordingError as exc:
            return not_measured(fault, str(exc))
        return _run(fault, opts, workdir, record, halt)


def _run(fault: Fault, opts: FaultOptions, workdir: Path, record: Path,
         halt: threading.Event) -> dict[str, Any]:
    arms = tuple(PatientConfig().arms)
    driver = _Driver(fault, opts, arms, halt, record)
    started = time.monotonic()
    try:
        summary = run_demo(DemoOptions(duration_s=None,
                                       link=None if fault.bedside else opts.link,
                                       video=fault.video, record=record, workdir=workdir,
                                       log_level=opts.log_level, pin_sites=opts.pin_sites,
                                       backup=fault.bedside,
                                       backup_web_port=0 if fault.bedside else None,
                                       console_env=fault.console_env),
                           driver.done, on_tick=driver.tick, on_start=driver.start)
    except TelesurgeryError as exc:
        if driver.began_ns is None or halt.is_set():
            raise
        # A node that died of the fault fails it; the matrix goes on.
        return {"name": fault.name, "passed": False, "criteria": criteria(fault, opts),
                "failed": ["ran_to_the_end"], "what": fault.what, "error": str(exc)}
    finally:
        driver.join()
    if halt.is_set() or driver.fault_ns is None or driver.observer is None:
        raise TelesurgeryError(f"fault {fault.name}: stopped before the run ended; nothing "
                               "judged")
    begin, end = driver.fault_ns
    seen = driver.observer.seen
    speed = SafetyConfig().max_linear_speed_m_s
    per_arm: dict[str, dict[str, Any]] = {}
    for arm in arms:
        tips = seen.snapshot_tips(arm)
        at_fault, at_end = mode_at(tips, begin), mode_at(tips, 2**63)
        per_arm[arm] = {"motion": asdict(motion(tips, speed)),
                        "held_drift_mm": held_drift_mm(tips),
                        "recovery_s": recovery_s(tips, end,
                                                 end + round(opts.recovery_s * 1e9)),
                        "seen_after_end_s": round((max((t.sent_ns for t in tips),
                                                       default=end) - end) * 1e-9, 3),
                        "mode_at_fault": None if at_fault is None else at_fault.label,
                        "mode_at_end": None if at_end is None else at_end.label}
    audit = _audit(record, fault.kills_patient)
    losses, recording = _recording(record, Keys(DemoOptions().session), arms, summary)
    verdict = judge(per_arm, audit["ok"], losses, MAX_RECORDER_LOSS_S, opts.recovery_s)
    checks = dict(verdict.checks)
    shown = seen.seen(begin)
    if fault.expect_no_hold:
        window_s = (end - begin) * 1e-9 + NO_HOLD_AFTER_S
        checks["no_hold"] = not any(0 <= h["at_s"] <= window_s for h in shown["holds"])
    after_ns = end + round(NO_HOLD_AFTER_S * 1e9)
    # The same span just before the fault, as the run's own baseline: on a loaded machine
    # commands are lost and arms held without any fault.
    window_ns = after_ns - begin
    with seen.lock:
        lost = growth(seen.commands_lost, begin, after_ns)
        freezes = growth(seen.video_freezes, begin, after_ns)
        lost_before = growth(seen.commands_lost, begin - window_ns, begin)
        freezes_before = growth(seen.video_freezes, begin - window_ns, begin)
        injected = dict(seen.injected)
    window_s = window_ns * 1e-9
    holds = sum(1 for h in shown["holds"] if 0 <= h["at_s"] <= window_s)
    holds_before = sum(1 for h in shown["holds"] if -window_s <= h["at_s"] < 0)
    if fault.expect_commands:
        # Unknown (no patient status on one side of the window) is not a pass.
        checks["no_command_lost"] = lost == 0
    return {
        "name": fault.name,
        "passed": all(checks.values()),
        "criteria": criteria(fault, opts),
        "failed": [k for k, ok in checks.items() if not ok],
        "checks": checks,
        "what": fault.what,
        "timeline_s": {"fault_from_start": round(opts.before_s, 3),
                       "fault_lasted": round((end - begin) * 1e-9, 3),
                       "after": opts.after_s,
                       "run": round(time.monotonic() - started, 3)},
        "arms": per_arm,
        "seen": {**shown, "safety": summary.get("safety", {}),
                 "handovers": summary.get("security", {}).get("handovers"),
                 "patient_link_alarms": summary.get("link", {}).get("alarms"),
                 "bedside": summary.get("backup")},
        "control": _control(summary),
        "link": {name: {k: p.get(k) for k in ("first_arrivals", "missed", "outages", "down_s")}
                 for name, p in summary.get("link", {}).get("paths", {}).items()},
        "emulators": summary.get("link", {}).get("emulators", {}),
        "recording": recording,
        "audit": audit,
        "during_fault": {"window_s": round(window_s, 3), "commands_lost": lost,
                         "holds": holds, "video_freezes": freezes,
                         "before": {"commands_lost": lost_before, "holds": holds_before,
                                    "video_freezes": freezes_before}},
        **({"injected": injected} if injected else {}),
        **({"video": _video(summary, driver.nodes)} if fault.video else {}),
    }


def _control(summary: dict[str, Any]) -> dict[str, Any]:
    c = summary.get("control", {})
    return {k: c.get(k) for k in ("sent", "applied", "stale_dropped", "rejected",
                                  "rejected_by_reason", "latency_ms")}


def _video(summary: dict[str, Any], nodes: DemoNodes | None) -> dict[str, Any]:
    """The console's picture over the run: its freezes (each clutched every arm; from its
    own report, None without one) and the demo's video summary."""
    freezes = None
    if nodes is not None:
        with contextlib.suppress(TelesurgeryError):
            freezes = nodes.consoles[0].report().get("video_freezes")
    return {"freezes": freezes, **summary.get("video", {})}


def _audit(record: Path, allow_open: bool) -> dict[str, Any]:
    """Every trail of the run verified (``record.audit``), as ``audit verify`` does."""
    try:
        reports = AuditVerifier(allow_open=allow_open).verify_dir(record)
    except RecordingError as exc:
        return {"ok": False, "trails": 0, "findings": [str(exc)]}
    return {"ok": all(r.ok for r in reports), "trails": len(reports),
            "records": sum(r.records for r in reports),
            "open_trails": sum(not r.closed for r in reports),
            "findings": [f"{r.trail.name}: {f}" for r in reports for f in r.findings][:10]}


def _recording(record: Path, keys: Keys, arms: Sequence[str], summary: dict[str, Any]
               ) -> tuple[Losses | None, dict[str, Any]]:
    """The measured poses missing from the recording, all arms together (longest run
    the worst arm's), and the recorder's own counters."""
    recorder = summary.get("record", {}).get("recorder", {})
    counters = {k: recorder.get(k) for k in ("written", "dropped")}
    try:
        rec = Recording(record)
        streams = {arm: [(m.message.session, m.message.seq, m.message.sent_ns)
                         for m in rec.messages([keys.measured_cp(arm)])] for arm in arms}
    except RecordingError as exc:
        return None, {"error": str(exc), **counters}
    each = [recording_losses(s) for s in streams.values()]
    losses = Losses(sum(x.recorded for x in each), sum(x.lost for x in each),
                    max((x.longest_s for x in each), default=0.0))
    return losses, {**asdict(losses), "complete": rec.complete, **counters}


def bench_faults(opts: FaultOptions, halt: threading.Event,
                 progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run every fault of ``opts`` in turn; the JSON (``{"faults": [...], ...}``)."""
    load_profile(opts.link)  # a wrong name fails here, before anything starts
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="telesurgery-faults-"))
    started = time.monotonic()
    entries = []
    try:
        for fault in opts.faults:
            progress(f"{fault.name}: {fault.what}")
            workdir = root / fault.name
            workdir.mkdir(parents=True, exist_ok=True)
            entry = run_fault(fault, opts, workdir, halt)
            verdict = {True: "passed", False: "FAILED", None: "not measured"}[entry["passed"]]
            progress(f"{fault.name}: {verdict} {', '.join(entry.get('failed', []))}")
            entries.append(entry)
    finally:
        if opts.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "what": "faults injected by the bench into the demo's real processes on loopback "
                f"over the {opts.link} link profile, one fresh run each; criteria beside "
                "each result",
        "machine": machine_info(),
        "link": opts.link,
        "before_s": opts.before_s,
        "after_s": opts.after_s,
        "passed": sum(1 for e in entries if e["passed"] is True),
        "failed": [e["name"] for e in entries if e["passed"] is False],
        "not_measured": [e["name"] for e in entries if e["passed"] is None],
        "wall_s": round(time.monotonic() - started, 1),
        "faults": entries,
    }


__all__ = ["FaultOptions", "bench_faults", "criteria", "run_fault"]
