"""The patient-side node: the robot behind its safety supervisor, the servo loop, state out.

Threads: the servo loop (this module's ``run``; paced by ``clock.Rate``, SCHED_FIFO
where permitted) ticks the supervisor and steps the robot, and publishes state
every few ticks; Zenoh's receive thread hands each command to
``Supervisor.submit``, which asks control ownership (``patient.control``) whether its
console holds control; a housekeeping thread publishes safety events, the control
owner and status.
Nothing here calls a motion method of the robot: only the supervisor does.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zenoh

from telesurgery.clock import FixedRateLoop, name_os_thread, now_ns, set_realtime_thread
from telesurgery.config import PatientConfig, load
from telesurgery.errors import ConfigError
from telesurgery.messages import (
    CommandBundle,
    MeasuredCF,
    MeasuredCP,
    MeasuredJS,
    Message,
    SafetyCause,
    SafetyEvent,
    StateBundle,
    Status,
)
from telesurgery.patient.audit import PatientAudit
from telesurgery.patient.checklist import PatientChecklist
from telesurgery.patient.control import PatientControl
from telesurgery.patient.video import PatientVideo, start_video
from telesurgery.robots.base import Robot
from telesurgery.safety.checks import Reason
from telesurgery.safety.supervisor import Supervisor
from telesurgery.security.command_keys import KeyEvent, PatientKeys
from telesurgery.security.credential import CredentialPolicy
from telesurgery.security.node import NodeSecurity, node_security, security_status
from telesurgery.security.tags import TagReason
from telesurgery.transport.dualpath import MultiPublisher
from telesurgery.transport.keys import Keys
from telesurgery.transport.nodelink import PatientLink
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.types import Pose, SafetyState

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 0.5
LIVE_WINDOW = 5000
"""Samples behind the live latency figures (the last few seconds)."""


class PatientNode:
    """Runs one robot for one surgical session until ``stop`` is set or ``duration_s`` passes."""

    def __init__(self, config: PatientConfig, robot: Robot) -> None:
        missing = [a for a in config.arms if a not in robot.arms]
        if missing:
            raise ConfigError(f"arms {missing} are not on this robot; it has "
                              f"{sorted(robot.arms)}")
        self.config = config
        self.robot = robot
        self.keys = Keys(config.session)
        self.session_id = new_session_id()
        self.rejects = RejectCounter()
        self.loop = FixedRateLoop(config.servo_rate_hz, realtime=config.realtime,
                                  name="servo")
        self._events: queue.SimpleQueue[SafetyEvent] = queue.SimpleQueue()
        self.control = PatientControl(config.safety.owner_lost_ms)
        self.supervisor = Supervisor(robot, config.safety, on_event=self._events.put,
                                     period_s=1.0 / config.servo_rate_hz, arms=config.arms,
                                     admits=self.control.admits)
        self.final_state = SafetyState.DISABLED
        """The supervisor's state when the run ended, before the robot was disabled."""
        self.link: PatientLink | None = None
        self.audit: PatientAudit | None = None
        """The signed audit trail, when ``config.record_dir`` is set."""
        self.video: PatientVideo | None = None
        self.security: NodeSecurity | None = None
        """Mutual TLS, access control and command tags (None: run insecure)."""
        self.auth: PatientKeys | None = None
        self.checklist: PatientChecklist | None = None
        self._recorder_present = False
        self._clutches = 0
        """Clutch presses the supervisor saw (the task's metrics)."""

    def run(self, stop: threading.Event, duration_s: float | None = None) -> dict[str, Any]:
        """Serve until stopped; returns the final report (counters and measured figures)."""
        cfg = self.config
        self.security = node_security(cfg.security, "patient node")
        if cfg.policy is not None and self.security is None:
            raise ConfigError("a credential policy needs certificates to read licences "
                              "from: drop --insecure, or drop --policy")
        if cfg.realtime:
            # Before Zenoh starts its threads, so that they inherit SCHED_FIFO: commands
            # are checked on Zenoh's receive thread, which must not queue behind other work.
            set_realtime_thread()
        z = open_session(cfg.zenoh, self._zenoh_security())
        try:
            return self._serve(z, stop, duration_s)
        finally:
            z.close()

    def _serve(self, z: zenoh.Session, stop: threading.Event,
               duration_s: float | None) -> dict[str, Any]:
        cfg, keys, sid = self.config, self.keys, self.session_id
        if cfg.record_dir is not None:
            self.audit = PatientAudit(cfg.record_dir, cfg.session, self._audit_start())
        # Commands arrive and measured poses leave on every control path; clock sync
        # over them gives the supervisor the console's clock offset.
        link = self.link = PatientLink(z, cfg.paths, keys, sid,
                                       self.supervisor.set_clock_offset,
                                       self.audit.link_alarm if self.audit else None,
                                       self._zenoh_security())
        # The console reads every arm's pose in one bundle a state tick on its paths; the
        # per-arm CRTK keys, on the main session for observers, recorders and tools, are
        # built and sent only while someone subscribes to them.
        state = _StatePublishers(
            link.state_publisher(keys.arms_measured),
            {arm: tuple(Publisher(z, key, Stream.STATE, sid, on_demand=True)
                        for key in (keys.measured_cp(arm), keys.measured_js(arm),
                                    keys.measured_cf(arm)))
             for arm in cfg.arms})
        # Enabled before anyone can send: a console streams as soon as it sees our subscribers.
        self.robot.enable()
        self.supervisor.enable()
        checklist = self.checklist = PatientChecklist(
            cfg.checklist, [p.name for p in cfg.paths], policy_on=cfg.policy is not None,
            audit_on=self.audit is not None, audit=self.audit)
        if self.security is not None:
            # Every command must carry a tag under a key agreed with a console certificate
            # whose licence the site's policy accepts.
            self.auth = PatientKeys(z, keys, sid, self.security.credentials,
                                    self.security.commanders(), self._key_event,
                                    None if cfg.policy is None
                                    else load(CredentialPolicy, cfg.policy))
        self.control.start(z, keys, sid, self.supervisor, self.auth, self.audit, checklist)
        # Observer gateways announce their broadcasts: the trail says who allowed each.
        broadcasts = (None if self.audit is None else subscribe(
            z, keys.audience_broadcast("*"), self._on_broadcast, self.rejects))
        recorders = z.liveliness().declare_subscriber(keys.presence("recorder"),
                                                      self._on_recorder, history=True)
        # Consoles stream bundles (every arm, one message a tick); the per-arm CRTK keys
        # stay open to tools that command one arm.
        link.subscribe_commands([keys.arms_servo, *(k for arm in cfg.arms
                                 for k in (keys.servo_cp(arm), keys.jaw_servo_jp(arm)))],
                                self._on_command, self.rejects,
                                self.auth.gate if self.auth is not None else None)
        link.start()
        token = z.liveliness().declare_token(keys.presence("patient"))
        house_stop = threading.Event()
        house = threading.Thread(target=self._housekeeping, args=(z, house_stop),
                                 name="patient-housekeeping", daemon=True)
        house.start()
        try:
            self.video = start_video(z, self)
            self._servo_loop(state, stop, duration_s)
        finally:
            if self.video is not None:
                self.video.stop()
            # Deaf before disabled: a console still streaming as the nodes stop together
            # is not heard (its commands count as unreceived) rather than refused.
            link.close()
            self.final_state = self.supervisor.state
            self.supervisor.disable()
            self.robot.disable()
            house_stop.set()
            house.join(timeout=2.0)
            if broadcasts is not None:
                broadcasts.undeclare()
            if self.audit is not None:
                self.audit.close(self.rejections(),
                                 {"final_state": self.final_state.name,
                                  "safety": self._safety(LIVE_WINDOW)})
            token.undeclare()
            recorders.undeclare()
            self.control.close()
            if self.auth is not None:
                self.auth.close()
        return self.report()

    def _key_event(self, ev: KeyEvent) -> None:
        if self.audit is not None:
            self.audit.key_event(ev)
        if self.checklist is not None:
            self.checklist.key_agreed(ev)

    def _on_broadcast(self, msg: Message, _received_ns: int) -> None:
        if self.audit is not None and isinstance(msg.body, Status):
            self.audit.broadcast(msg.body.data)

    def _on_recorder(self, sample: zenoh.Sample) -> None:
        self._recorder_present = sample.kind == zenoh.SampleKind.PUT

    def _poll_checklist(self) -> None:
        if self.checklist is None:
            return
        live = [a.common_name for a in self.auth.live()] if self.auth is not None else []
        camera = self.video.camera if self.video is not None else None
        self.checklist.poll(live, self._recorder_present, camera.frames if camera else 0)

    def _zenoh_security(self) -> dict[str, str] | None:
        return None if self.security is None else self.security.zenoh_settings()

    def _on_command(self, msg: Message, received_ns: int) -> None:
        body = msg.body
        if isinstance(body, CommandBundle):
            replaying = self.control.replaying(msg.session)
            for command in body.commands:
                verdict = self.supervisor.submit(msg, received_ns, command)
                if replaying is not None and verdict.accepted and self.audit is not None:
                    # Every command of a replay is in the trail (50 a second a stream).
                    self.audit.replayed_command(replaying, msg.seq, command)
        else:
            # Anything but a command is still the supervisor's to refuse (and count).
            self.supervisor.submit(msg, received_ns)

    def security_status(self) -> dict[str, Any]:
        """Mutual TLS or not, whether commands must carry tags, ``owner``: the console
        holding control (``bedside`` when it lies with the bedside and no console drives,
        None before anyone claimed it), ``handovers``, ``credential``: the owner's licence
        (authority, jurisdiction, specialty, last day; None: none), and ``checklist``."""
        out = security_status(self.security)
        out["command_tags"] = self.auth is not None
        out["plain_paths"] = ([p.name for p in self.config.paths if not p.tls]
                              if self.security is not None else [])
        control = self.control.announcement()
        out["owner"] = control["owner"]
        out["handovers"] = control["handovers"]
        if self.auth is not None:
            out |= self.auth.status()
            licence = self.auth.licence(control["owner"])
            out["credential"] = None if licence is None else {
                "authority": licence.authority, "jurisdiction": licence.jurisdiction,
                "specialty": licence.specialty, "valid_until": licence.valid_until.isoformat()}
        if self.checklist is not None:
            out["checklist"] = self.checklist.status()
        return out

    def _servo_loop(self, state: _StatePublishers, stop: threading.Event,
                    duration_s: float | None) -> None:
        cfg = self.config
        dt = 1.0 / cfg.servo_rate_hz
        state_every = max(1, round(cfg.servo_rate_hz / cfg.state_rate_hz))
        tick = 0

        def servo(now: int) -> None:
            nonlocal tick
            self.supervisor.tick(now)
            self.robot.step(dt)
            if tick % state_every == 0:
                self._publish_state(state)
            tick += 1

        self.loop.run(servo, stop, duration_s)

    def _publish_state(self, pubs: _StatePublishers) -> None:
        op = self.robot.operating_state()
        states = []
        for name, (cp, js, cf) in pubs.arms.items():
            arm = self.robot.arms[name]
            seq, sample_ns = self.supervisor.applied(name)
            jaw = arm.jaw_measured_js()
            wrench, grip = arm.measured_cf(), arm.grip_force()
            state = MeasuredCP(name, arm.measured_cp(), arm.setpoint_cp(), jaw.position[0],
                               seq, sample_ns, op, self.supervisor.mode(name), wrench.force,
                               grip)
            states.append(state)
            if cp.wanted:
                cp.put(state)
            else:
                cp.skip()
            if js.wanted:
                j = arm.measured_js()
                js.put(MeasuredJS(name, (*j.position, *jaw.position),
                                  (*j.velocity, *jaw.velocity)))
            else:
                js.skip()
            if cf.wanted:
                cf.put(MeasuredCF(name, wrench, grip))
            else:
                cf.skip()
        pubs.bundle.put(StateBundle(tuple(states)))

    def _housekeeping(self, z: zenoh.Session, stop: threading.Event) -> None:
        name_os_thread()
        keys, sid = self.keys, self.session_id
        events = Publisher(z, keys.safety_state, Stream.EVENT, sid)
        status = Publisher(z, keys.status("patient"), Stream.STATUS, sid)
        next_status = time.monotonic()
        while True:
            try:
                ev = self._events.get(timeout=0.05)
            except queue.Empty:
                ev = None
            if ev is not None:
                log.info("safety: %s -> %s (%s)", ev.previous.name, ev.state.name, ev.text())
                events.put(ev)
                if ev.cause is SafetyCause.CLUTCH_PRESSED:
                    self._clutches += 1
                if ev.cause is SafetyCause.WATCHDOG:
                    # A replay whose commands stopped coming is over: never resumed.
                    self.control.end_replay("interrupted: the console's commands stopped")
                if self.audit is not None:
                    self.audit.safety_event(ev)
            if self.audit is not None:
                self.audit.poll(self.rejections())
            self._poll_checklist()
            self.control.poll()
            if time.monotonic() >= next_status:
                status.offer(Status(self.status()))
                next_status += STATUS_PERIOD_S
            if stop.is_set() and self._events.empty():
                status.offer(Status(self.status()))
                break

    def _audit_start(self) -> dict[str, Any]:
        cfg = self.config
        return {"session_id": f"{self.session_id:016x}", "arms": list(cfg.arms),
                "robot": cfg.robot, "servo_rate_hz": cfg.servo_rate_hz,
                "safety": cfg.safety.model_dump(mode="json")}

    def status(self, last: int | None = LIVE_WINDOW) -> dict[str, Any]:
        """Telemetry: safety counters, loop timing, registration, task progress; latency
        figures over the ``last`` samples (the live window) or the whole run (None)."""
        out: dict[str, Any] = {
            "node": "patient",
            "session_id": f"{self.session_id:016x}",
            "uptime_s": round((now_ns() - self.loop.started_ns) * 1e-9, 3)
            if self.loop.started_ns else 0.0,
            "safety": self._safety(last),
            "undecodable": self.rejects.total,
            "link": self.link.status() if self.link is not None else {},
            "servo": {"rate_hz": self.config.servo_rate_hz,
                      "period_error_us": self.loop.period_error_ns.summary(1e-3, last=last)},
            "registration": {name: _flat(self.robot.arms[name].registration())
                             for name in self.config.arms},
            "security": self.security_status(),
            "control": self.control.status(),
        }
        task = getattr(self.robot, "task_status", None)
        if callable(task):
            out["task"] = task(self._clutches)
        if self.video is not None:
            out["video"] = self.video.status()
        return out

    def rejections(self) -> dict[str, int]:
        """Commands refused so far, by reason name: the tag gate's verdicts and the
        supervisor's, each counted by its own layer."""
        gate = self.auth.rejections() if self.auth is not None else {}
        return _by_name(self.supervisor.rejections(), gate)

    def _safety(self, last: int | None) -> dict[str, Any]:
        """The supervisor's figures with the tag gate's refusals counted in, so that
        ``rejected`` and ``rejected_by_reason`` cover every refused command."""
        out = self.supervisor.snapshot(last)
        if self.auth is not None:
            gate = self.auth.rejections()
            out["rejected"] += sum(gate.values())
            out["rejected_by_reason"] = _by_name(out["rejected_by_reason"], gate)
        return out

    def report(self) -> dict[str, Any]:
        """Final figures after the loop ended."""
        out = self.status(last=None)
        out["cpu_cores"] = round(self.loop.cpu_cores, 3)
        out["final_state"] = self.final_state.name
        out["servo"]["late"] = self.loop.late.report()
        if self.link is not None:
            out["link"] = self.link.report()
        if self.video is not None:
            out["video"] = self.video.report()
        return out


def _by_name(*counts: Mapping[str, int] | Mapping[Reason, int] | Mapping[TagReason, int],
             ) -> dict[str, int]:
    """Counts keyed by reason (an enum or its name) summed by name; zeros left out."""
    out: dict[str, int] = {}
    for mapping in counts:
        for reason, n in mapping.items():
            if n:
                name = reason if isinstance(reason, str) else reason.value
                out[name] = out.get(name, 0) + n
    return out


@dataclass(frozen=True, slots=True)
class _StatePublishers:
    """The state bundle on the control paths, and each arm's on-demand ``measured_cp``,
    ``measured_js`` and ``measured_cf``."""

    bundle: MultiPublisher
    arms: dict[str, tuple[Publisher, ...]]


def _flat(p: Pose) -> list[float]:
    return [*p.position, *p.orientation]
