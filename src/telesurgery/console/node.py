"""A console node: input device -> teleoperation mapping -> commands on Zenoh.

The same node is the remote surgeon's console (``role = "surgeon"``, node name
``console``) and the bedside backup console (``role = "backup"``, node name ``backup``).
The teleoperation loop runs at the configured rate (1 kHz by default), paced by
``clock.Rate``; measured tool poses, registrations, the patient's status and the control
owner arrive on Zenoh's receive thread and are read by the loop as latest values.

Commands are streamed only while they can move something (``console.control.may_drive``):
while this console holds control, or may claim it. Otherwise the loop keeps running with
the clutch pressed in software, so that the hand is re-anchored on the instrument when
control comes back, and publishes nothing: the patient would refuse it all. Control
actions (take over, request, grant) run on a thread of their own, never in the loop: they
are reliable puts that may block, and a take-over is repeated until the patient
announces this console as the owner.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final, Literal

import zenoh

from telesurgery.clock import FixedRateLoop, name_os_thread, now_ns, set_realtime_thread
from telesurgery.config import ConsoleConfig
from telesurgery.console.control import ControlClient
from telesurgery.console.display import SurgeonDisplay, start_display
from telesurgery.console.forces import ForceBook
from telesurgery.console.replay import REPLAY_PERIOD_NS, REPLAY_WAIT_S, ReplayPlan
from telesurgery.console.scaling import DelayScaling, best_rtt_ms
from telesurgery.console.teleop import Teleop
from telesurgery.console.twin import OUTAGE_AFTER_MS, RESYNC_CLUTCH_MS, LocalTwin
from telesurgery.console.video import PictureCheck, VideoAge, patient_clock_offset_ns
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.input.base import HandSample, InputDevice
from telesurgery.messages import (
    Command,
    CommandBundle,
    JawServoJP,
    Message,
    ServoCP,
    StateBundle,
    Status,
)
from telesurgery.robots.sim.scene import task_layout
from telesurgery.security.acl import NODE_OF_ROLE
from telesurgery.security.command_keys import ConsoleKeys
from telesurgery.security.node import NodeSecurity, node_security, security_status
from telesurgery.security.pki import Role
from telesurgery.stats import Samples
from telesurgery.transport.codec import encode
from telesurgery.transport.dualpath import MultiPublisher
from telesurgery.transport.keys import Keys
from telesurgery.transport.nodelink import ConsoleLink
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.types import ArmMode, Pose

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 0.5
TAKE_OVER_RETRY_S: Final = 1.0
"""How long [s] a take-over waits for the patient's announcement before it is sent again."""
TAKE_OVER_GIVE_UP_S: Final = 10.0
"""A take-over the patient has not announced within this time [s] is given up (logged)."""

Action = Literal["take_over", "request", "grant", "offer_replay", "allow_replay",
                 "end_replay"]


class ConsoleNode:
    """Drives the patient's arms from one input device until stopped.

    ``name``: the node's name in the key space (``<name>/status``, ``presence/<name>``);
    by default ``console`` for a surgeon console and ``backup`` for a backup console, the
    names the access control grants each role.
    """

    def __init__(self, config: ConsoleConfig, device: InputDevice,
                 name: str | None = None) -> None:
        self.config = config
        self.device = device
        self.name = name or NODE_OF_ROLE[Role(config.role)]
        self.what = "surgeon console" if config.role == "surgeon" else "backup console"
        self.keys = Keys(config.session)
        self.session_id = new_session_id()
        self.rejects = RejectCounter()
        self.teleop = Teleop(device, scale=config.scale, tremor=config.tremor,
                             rate_hz=config.rate_hz, predictive=config.predictive_display)
        self.sent = 0
        self.sent_servo_cp = 0
        self.driving_ns = 0
        """Time [ns] spent streaming commands (the rest: not in control)."""
        self.forces = ForceBook(config.arms, config.force_cap_n)
        """The latest tip force and grip of each arm, for the page's gauges and alarm."""
        self.scaling = DelayScaling(config.scale_with_delay)
        """The motion scale's fraction, and the round trip it follows (the patient's status
        sets ``scaling.rtt_ms``)."""
        self.state_age_ns = Samples()
        """How old each state bundle is on arrival [ns]: the patient's sample to here, the
        force path's network leg (the patient's clock mapped by its path sync)."""
        self._patient_offset_ns = 0
        """The patient's clock minus ours [ns], from its status."""
        self.twin = (LocalTwin(tuple(device.arms), layout=task_layout(config.task))
                     if config.outage_twin else None)
        """Where the surgeon works while both control paths are down (``console.twin``)."""
        self._state_rx_ns = 0
        """When the latest state bundle arrived [ns]."""
        self._real: dict[str, tuple[Pose, float, ArmMode]] = {}
        """The patient's latest state per arm while the surgeon works on the twin."""
        self._clutch_until_ns = 0
        self.replay: ReplayPlan | None = None
        """The twin's motion offered for replay, or being replayed (``console.replay``)."""
        self._replay_state: Literal["offered", "replaying"] | None = None
        self._replay_since_ns = 0
        self._replay_next_ns = 0
        self._replay_abandon = False
        self.replays: dict[str, int] = {"offered": 0, "done": 0, "abandoned": 0,
                                        "discarded": 0}
        """Outage motion offered, replayed to the end, abandoned, discarded."""
        self.picture = PictureCheck()
        """The loop's verdict on the surgeon's picture (the page's alarms read it)."""
        self.video_freezes = 0
        """Times the picture froze (``VideoAge.FROZEN``) and the arms were clutched."""
        self.loop = FixedRateLoop(config.rate_hz, realtime=config.realtime, name="teleop")
        self.patient_status: dict[str, Any] = {}
        self.link: ConsoleLink | None = None
        self.display: SurgeonDisplay | None = None
        self.security: NodeSecurity | None = None
        """Mutual TLS, access control and command tags (None: run insecure)."""
        self.auth: ConsoleKeys | None = None
        self.control: ControlClient | None = None
        self._actions: queue.SimpleQueue[tuple[Action, int | None] | None] = (
            queue.SimpleQueue())
        self._closing = threading.Event()

    # ---- control actions (any thread; even a signal handler) ---------------------------

    def control_action(self) -> None:
        """The role's control action: a backup console takes control, a surgeon console
        asks for it (the page's T key, the gamepad's Y, SIGUSR1)."""
        if self.config.role == "backup":
            self.take_control()
        else:
            self.request_control()

    def take_control(self) -> None:
        """Take control (a backup console): as soon as the patient node is there and the
        command key is agreed, then again every ``TAKE_OVER_RETRY_S`` until announced."""
        self._actions.put(("take_over", None))

    def request_control(self) -> None:
        """Ask the bedside for control."""
        self._actions.put(("request", None))

    def grant_control(self, session: int | None = None) -> None:
        """Grant control to console ``session`` (None: the oldest pending request)."""
        self._actions.put(("grant", session))

    def allow_replay(self) -> None:
        """Allow the replay a surgeon console offered (a backup console)."""
        self._actions.put(("allow_replay", None))

    def discard_replay(self) -> None:
        """Withdraw this console's offered or running replay; its motion is discarded."""
        self._replay_abandon = True

    def _control_worker(self) -> None:
        name_os_thread()
        while True:
            item = self._actions.get()
            if item is None:
                return
            while not (self._may_act() or self._closing.is_set()):
                self._closing.wait(0.05)
            control = self.control
            if self._closing.is_set() or control is None:
                return
            action, target = item
            try:
                if action == "take_over":
                    self._take_over(control)
                elif action == "request":
                    control.request()
                elif action == "offer_replay":
                    control.offer_replay()
                elif action == "allow_replay":
                    control.allow_replay()
                elif action == "end_replay":
                    control.end_replay()
                elif target is None:
                    control.grant_oldest()
                else:
                    control.grant(target)
            except TelesurgeryError as exc:
                log.warning("control %s not sent: %s", action.replace("_", "-"), exc)

    def _may_act(self) -> bool:
        """Whether control actions can go now. They travel on the main session: they need
        the key, the owner announced and the patient listening on the control keys, not
        the command paths (a bedside console beside a patient whose commands come over
        dedicated paths can still grant and allow a replay)."""
        control = self.control
        return (control is not None and (self.auth is None or self.auth.ready)
                and control.owner is not None and control.matched)

    def _take_over(self, control: ControlClient) -> None:
        deadline = now_ns() + int(TAKE_OVER_GIVE_UP_S * 1e9)
        while not self._closing.is_set():
            control.take_over()
            if control.wait(lambda v: v is not None and v.holds(self.session_id),
                            TAKE_OVER_RETRY_S):
                return
            if now_ns() > deadline:
                log.error("took control but the patient node has not announced it within "
                          "%.0f s; see its log", TAKE_OVER_GIVE_UP_S)
                return

    # ---- the node -------------------------------------------------------------------

    def run(self, stop: threading.Event, duration_s: float | None = None) -> dict[str, Any]:
        """Send commands until stopped; returns the final report."""
        self.security = node_security(self.config.security, self.what)
        self._check_role()
        if self.config.realtime:
            # Before Zenoh starts its threads, so that its transmit thread inherits it.
            set_realtime_thread()
        z = open_session(self.config.zenoh, self._zenoh_security())
        try:
            return self._serve(z, stop, duration_s)
        finally:
            z.close()

    def _check_role(self) -> None:
        if self.security is None:
            return
        ident, role = self.security.identity, self.config.role
        if ident.role.value == role:
            return
        verb = "console" if ident.role is Role.SURGEON else "backup"
        hint = (f"; for a {ident.role.value} identity run 'telesurgery {verb}'"
                if ident.role in (Role.SURGEON, Role.BACKUP) else "")
        raise ConfigError(f"the {self.what} needs a {role} certificate, but its identity is "
                          f"{ident.common_name}; issue one with 'telesurgery pki issue PKI "
                          f"--role {role} --name NAME'{hint}")

    def _serve(self, z: zenoh.Session, stop: threading.Event,
               duration_s: float | None) -> dict[str, Any]:
        keys, sid = self.keys, self.session_id
        # Commands go out and measured poses come back on every control path.
        link = self.link = ConsoleLink(
            z, self.config.paths, keys, sid, self._zenoh_security(),
            lambda: self.control.answers_sync() if self.control is not None
            else self.config.role == "surgeon")
        auth: ConsoleKeys | None = None
        if self.security is not None:
            # Commands are tagged under a key agreed with the patient node, end to end.
            auth = self.auth = ConsoleKeys(z, keys, sid, self.security.credentials)
        seal = auth.seal if auth is not None else encode
        # Control actions go on the main session, sealed like commands.
        control = self.control = ControlClient(
            z, keys, sid, self.config.role, seal,
            (lambda: auth.ready) if auth is not None else (lambda: True), self.rejects)
        # One message a tick for every arm: a sample, a callback, a tag and a first-arrival
        # check on each path for the whole tick rather than for each arm's pose and jaw.
        commands = link.command_publisher(keys.arms_servo, seal)
        link.subscribe_state([keys.arms_measured], self._on_measured, self.rejects)
        subs = [subscribe(z, keys.status("patient"), self._on_status, self.rejects)]
        token = z.liveliness().declare_token(keys.presence(self.name))
        status = Publisher(z, keys.status(self.name), Stream.STATUS, sid)
        worker = threading.Thread(target=self._control_worker, name="console-control",
                                  daemon=True)
        try:
            worker.start()
            self.display = start_display(z, self)
            if self._wait_for_patient(commands, stop):
                self._loop(commands, status, stop, duration_s)
        finally:
            self._closing.set()
            self._actions.put(None)
            if worker.is_alive():
                worker.join(timeout=2.0)
            if self.display is not None:
                self.display.close()
            status.offer(Status(self.status()))
            token.undeclare()
            for s in subs:
                s.undeclare()
            control.close()
            link.close()
            if auth is not None:
                auth.close()
        return self.report()

    def _zenoh_security(self) -> dict[str, str] | None:
        return None if self.security is None else self.security.zenoh_settings()

    def _wait_for_patient(self, commands: MultiPublisher, stop: threading.Event) -> bool:
        """Block until the patient node subscribes to every command key, has announced who
        holds control and, secure, a command key is agreed with it (or ``stop``).

        Commands sent before anyone listens would be lost and counted as sent.
        """
        log.info("waiting for the patient node on session %s", self.config.session)
        control = self.control
        while not stop.is_set():
            if (commands.matched and (self.auth is None or self.auth.ready)
                    and control is not None and control.owner is not None):
                log.info("patient node present; control with %s", control.owner.owner or
                         "nobody yet")
                return True
            stop.wait(0.01)
        return False

    def _on_measured(self, msg: Message, received_ns: int) -> None:
        if self.auth is not None:
            self.auth.observe_patient(msg.session)
        if isinstance(msg.body, StateBundle):
            self.state_age_ns.add(received_ns - msg.sent_ns + self._patient_offset_ns)
            self._state_rx_ns = received_ns
            forces = self.forces
            twin = self.twin
            for state in msg.body.states:
                if twin is not None and twin.active:
                    # The loop leaves the twin on this state and hands it over then.
                    self._real[state.arm] = (state.measured, state.jaw, state.mode)
                else:
                    self.teleop.observe(state.arm, state.measured, state.jaw, state.mode)
                forces.observe(state, received_ns)

    def _on_status(self, msg: Message, _received_ns: int) -> None:
        if not isinstance(msg.body, Status):
            return
        if self.auth is not None:
            # The status comes over the main session: a restarted patient node shows here
            # while the control paths to it still wait out the dead one's lease, so the new
            # command key is agreed by the time they carry commands again.
            self.auth.observe_patient(msg.session)
        self.patient_status = msg.body.data
        self.scaling.rtt_ms = best_rtt_ms(msg.body.data.get("link", {}).get("paths", {}))
        offset = patient_clock_offset_ns(msg.body.data)
        if offset is not None:
            self._patient_offset_ns = offset
        for arm, v in msg.body.data.get("registration", {}).items():
            if isinstance(v, list) and len(v) == 7:
                registration = Pose((v[0], v[1], v[2]), (v[3], v[4], v[5], v[6]))
                self.teleop.register(arm, registration)
                self.forces.register(arm, registration)

    def _loop(self, commands: MultiPublisher, status: Publisher, stop: threading.Event,
              duration_s: float | None) -> None:
        next_status = 0
        control = self.control
        assert control is not None
        driving = False
        last = 0
        video = self.display.video if self.display is not None else None
        picture = self.picture
        device = self.device
        forces = self.forces
        scaling = self.scaling
        renders = tuple(device.arms) if device.displays_force else ()

        def teleop(now: int) -> None:
            nonlocal next_status, driving, last
            for arm in renders:
                # The newest state's force to the hand, once a tick (the device's servo
                # runs inside read).
                latest = forces.latest_in_view(arm)
                if latest is not None:
                    device.render_force(arm, *latest)
            samples = device.read(now)
            drive = control.may_drive()
            if drive != driving:
                driving = drive
                log.warning("%s commands", "streaming" if drive else
                            "not in control: holding back")
            if video is not None:
                was = picture.verdict
                age = picture.update(video.newest_capture_ns, now)
                if age is not was:
                    self._picture_changed(was, age, now - video.newest_capture_ns)
                if age is VideoAge.FROZEN:
                    # The surgeon cannot see what the tools do: every hand is clutched, so
                    # the supervisor brakes the tools and the hands re-anchor on them once
                    # a fresh frame comes.
                    samples = _clutched(samples)
            if self.twin is not None:
                samples = self._outage(now, drive, samples)
            if drive and last:
                self.driving_ns += now - last
            if last:
                fraction = scaling.fraction
                if fraction != scaling.update((now - last) * 1e-9):
                    self.teleop.scale_by(scaling.fraction)
            last = now
            bodies: list[Command] = []
            if self.twin is not None and self.twin.active:
                # Nothing to the patient: its arms are held, and a returning path must not
                # bring it commands of a hand anchored on the twin.
                self.twin.submit(self.teleop.tick(samples, True), now)
            elif (replayed := self._replay_tick(now)) is not None:
                # Waiting for the bedside, clutched heartbeats keep control and nothing
                # moves; replaying, the replay drives. The hands re-anchor when it ends.
                bodies = self.teleop.tick(_clutched(samples),
                                          drive and self._replay_state == "offered") + replayed
            else:
                bodies = self.teleop.tick(samples, drive)
            if bodies:
                commands.put(CommandBundle(tuple(bodies)))
                self.sent += len(bodies)
                self.sent_servo_cp += sum(1 for b in bodies if isinstance(b, ServoCP))
            if now >= next_status:
                status.offer(Status(self.status()))
                next_status = now + int(STATUS_PERIOD_S * 1e9)

        self.loop.run(teleop, stop, duration_s)

    def _outage(self, now: int, drive: bool,
                samples: Mapping[str, HandSample]) -> Mapping[str, HandSample]:
        """Enter the twin when the patient's state stops while driving, leave it when it
        comes back; clutch the hands for a moment at both, so they re-anchor."""
        twin = self.twin
        assert twin is not None
        silent = self._state_rx_ns > 0 and now - self._state_rx_ns > OUTAGE_AFTER_MS * 1e6
        if silent and self._replay_state is not None:
            # Never resumed: what was not replayed is discarded with the new outage's.
            self._end_replay(now, "abandoned", "the link dropped again")
        if silent and drive and not twin.active:
            twin.enter(self.teleop.measured_state(), now)
            self._clutch_until_ns = now + int(RESYNC_CLUTCH_MS * 1e6)
        elif twin.active and not silent:
            kept_s = twin.buffered_s
            kept = twin.leave()
            for arm, (pose, jaw, mode) in self._real.items():
                self.teleop.observe(arm, pose, jaw, mode)
            self._real.clear()
            self._clutch_until_ns = now + int(RESYNC_CLUTCH_MS * 1e6)
            if self.config.outage_replay == "offer" and kept and drive:
                self.replay = ReplayPlan(kept, self.teleop.measured_state())
                self._replay_state, self._replay_since_ns = "offered", now
                self._replay_abandon = False
                self.replays["offered"] += 1
                self._actions.put(("offer_replay", None))
                log.warning("the patient's state is back: the twin's motion (%.1f s) is "
                            "offered for replay; the bedside may allow it", kept_s)
            else:
                twin.discarded_s += kept_s
                self.replays["discarded"] += 1 if kept else 0
                log.warning("the patient's state is back: the twin's motion (%.1f s) is "
                            "discarded; the hands re-anchor on the instruments", kept_s)
        if twin.active:
            twin.step(now)
            for arm, pose, jaw, mode in twin.states():
                self.teleop.observe(arm, pose, jaw, mode)
        return _clutched(samples) if now < self._clutch_until_ns else samples

    def _replay_tick(self, now: int) -> list[Command] | None:
        """The replay's part of a tick: None while there is none; else the replay's commands
        this tick (offered: none, the hands held clutched; replaying: the plan's, every
        ``REPLAY_PERIOD_NS``)."""
        state, plan, control = self._replay_state, self.replay, self.control
        if state is None or plan is None or control is None:
            return None
        view = control.owner
        offer = None if view is None else view.replay
        mine = offer is not None and offer.session == self.session_id
        if self._replay_abandon:
            self._end_replay(now, "discarded" if state == "offered" else "abandoned",
                             "the surgeon withdrew it")
            return None
        if state == "offered":
            if mine and offer is not None and offer.allowed_by is not None:
                log.warning("%s allowed the replay: %.1f s at %.0f mm/s", offer.allowed_by,
                            plan.remaining_s(), plan.speed * 1e3)
                self._replay_state, self._replay_next_ns = "replaying", now
                return _replay_commands(plan.start(), now, clutch=True)
            if now - self._replay_since_ns > REPLAY_WAIT_S * 1e9 or (
                    view is not None and not mine and now - self._replay_since_ns > 2e9):
                self._end_replay(now, "discarded", "the bedside did not allow it")
                return None
            return []
        if not mine or not control.holds_control:
            self._end_replay(now, "abandoned", "the patient ended it")
            return None
        if now < self._replay_next_ns:
            return []
        self._replay_next_ns += REPLAY_PERIOD_NS
        out = _replay_commands(plan.step(REPLAY_PERIOD_NS * 1e-9), now)
        if plan.done:
            self._end_replay(now, "done", "every kept setpoint replayed")
        return out

    def _end_replay(self, now: int, outcome: Literal["done", "abandoned", "discarded"],
                    why: str) -> None:
        plan = self.replay
        if outcome != "done" and plan is not None and self.twin is not None:
            self.twin.discarded_s += plan.remaining_s()
        self.replays[outcome] += 1
        log.warning("replay %s: %s", outcome, why)
        self.replay, self._replay_state = None, None
        self._clutch_until_ns = now + int(RESYNC_CLUTCH_MS * 1e6)
        self._actions.put(("end_replay", None))

    def replay_status(self) -> dict[str, Any]:
        """This console's replay (``state``: offered, replaying or None; ``remaining_s``
        [s]) and how many were offered, done, abandoned and discarded."""
        return {"state": self._replay_state, **self.replays,
                "remaining_s": None if self.replay is None
                else round(self.replay.remaining_s(), 2)}

    def _picture_changed(self, was: VideoAge, now: VideoAge, age_ns: int) -> None:
        if now is VideoAge.FROZEN:
            self.video_freezes += 1
            log.warning("video frozen (newest frame %.0f ms old): every arm clutched until "
                        "a fresh frame arrives", age_ns * 1e-6)
        elif now is VideoAge.LATE and was is VideoAge.FRESH:
            log.warning("video late: newest frame %.0f ms old", age_ns * 1e-6)
        elif was is VideoAge.FROZEN:
            log.warning("video back (newest frame %.0f ms old): the hands re-anchor on the "
                        "tools", age_ns * 1e-6)

    def status(self, last: int | None = 5000) -> dict[str, Any]:
        """Telemetry: commands sent and loop timing over the ``last`` ticks (None: all)."""
        return {
            "node": self.name,
            "role": self.config.role,
            "session_id": f"{self.session_id:016x}",
            "sent": self.sent,
            "sent_servo_cp": self.sent_servo_cp,
            "arms": len(self.teleop.arms),
            # How long commands have been streamed [s]: from the patient's arrival on.
            "streaming_s": round((now_ns() - self.loop.started_ns) * 1e-9, 3)
            if self.loop.started_ns else 0.0,
            # Of which in control, streaming commands [s].
            "driving_s": round(self.driving_ns * 1e-9, 3),
            "video_freezes": self.video_freezes,
            "twin": self.twin.status(now_ns()) if self.twin is not None else None,
            "replay": self.replay_status(),
            "state_age_ms": self.state_age_ns.summary(1e-6, last=last),
            "motion_scale": {"scale": round(self.teleop.scale, 4),
                             "base": self.teleop.base_scale,
                             "with_delay": self.scaling.enabled,
                             "rtt_ms": self.scaling.rtt_ms},
            "control": self.control.status() if self.control is not None else {},
            "undecodable": self.rejects.total,
            "link": self.link.status() if self.link is not None else {},
            "loop": {"rate_hz": self.config.rate_hz,
                     "period_error_us": self.loop.period_error_ns.summary(1e-3, last=last)},
            "security": security_status(self.security) | (
                self.auth.status() if self.auth is not None else {}),
        }

    def report(self) -> dict[str, Any]:
        """Final figures after the loop ended."""
        out = self.status(last=None)
        out["cpu_cores"] = round(self.loop.cpu_cores, 3)
        out["streaming_s"] = round(self.loop.elapsed_s, 3)
        out["loop"]["late"] = self.loop.late.report()
        if self.display is not None:
            out["video"] = self.display.report()
        device = self.device.report()
        if device:
            out["device"] = device
        return out


def _clutched(samples: Mapping[str, HandSample]) -> dict[str, HandSample]:
    """``samples`` with every clutch pressed: the hands re-anchor, nothing moves."""
    return {arm: replace(s, clutch=True) for arm, s in samples.items()}


def _replay_commands(targets: Mapping[str, tuple[Pose, float]], now: int,
                     clutch: bool = False) -> list[Command]:
    """Each arm's tip pose [m, base frame] and jaw [rad] of a replay as commands."""
    out: list[Command] = []
    for arm, (pose, jaw) in targets.items():
        out += [ServoCP(arm, pose, now, clutch), JawServoJP(arm, jaw, now)]
    return out
