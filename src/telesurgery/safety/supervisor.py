"""The safety supervisor: every command passes it, and nothing else moves the robot.

Threads: ``submit`` runs on the transport's receive threads and ``tick`` on the servo
thread, once per period before ``Robot.step``; one lock guards what they share and
both stay cheap (microseconds). Only ``tick`` calls the robot's motion methods
(``servo_cp``, ``jaw_servo_jp``, ``hold``), so the robot is driven from one thread and
an emergency stop takes effect at the next tick.

Supervisor states (``SafetyState``): ``enable()`` takes DISABLED to HOLD; the clutch
cycle below takes HOLD to ENGAGED; ``estop()`` latches ESTOP until ``disable()`` and
``enable()``. Each arm has its own mode::

    HELD --clutch--> ARMED --released, aligned--> FOLLOWING <--released, aligned-- CLUTCHED
     ^                                               |  \\_____________clutch___________/^
     +--- watchdog, new console session, hold(), robot not ENABLED, estop() -------------+

While clutched the console re-anchors the surgeon's hand on the tool's pose, so the
first released command must target the tool where it is (within the engage
tolerance): after a hold the arm never jumps to where the hand went. The supervisor
is ENGAGED while any arm is FOLLOWING or CLUTCHED, and in HOLD otherwise. Every
transition is logged and handed to ``on_event``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from telesurgery.clock import now_ns as clock_now_ns
from telesurgery.config import SafetyConfig
from telesurgery.errors import SafetyError, TelesurgeryError
from telesurgery.geometry import quat_normalize
from telesurgery.messages import (
    AnyBody,
    JawServoJP,
    Message,
    SafetyCause,
    SafetyEvent,
    ServoCP,
)
from telesurgery.robots.base import Arm, Robot
from telesurgery.safety.checks import (
    ACCEPTED,
    CAP_CLEAR_FRACTION,
    REJECTED,
    ContactCap,
    MotionLimits,
    Reason,
    Setpoint,
    Verdict,
    Workspace,
    applied_setpoint,
    check_age,
    check_sequence,
    limit_contact,
    limit_grip,
    misalignment,
    next_jaw,
    next_setpoint,
    stopping_pose,
    validate_command,
)
from telesurgery.stats import Samples
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState

log = logging.getLogger(__name__)

ENGAGE_TOLERANCE_M = 0.01
"""Largest distance [m] between the tool and the first target after a clutch. Our choice:
a hand re-anchored on a tool at rest lands within millimetres (the tool may still brake
about v^2 / 2a = 6 mm from full speed while the console re-anchors)."""
ENGAGE_TOLERANCE_RAD = 0.35
"""Largest rotation [rad] (20 degrees) between the tool and the first target after a
clutch. Our choice, on the same reasoning."""
MAX_REASON_BYTES = 255
"""Event reasons travel in a 255-byte wire field."""


_ENGAGED_MODES = (ArmMode.FOLLOWING, ArmMode.CLUTCHED)
_ACTIVE_STATES = (SafetyState.HOLD, SafetyState.ENGAGED)


class _ArmState:
    """One arm's bookkeeping. Fields above the blank line are guarded by the lock; the
    setpoint, brake target and jaw are written only by the servo thread."""

    __slots__ = (
        "applied_sample_ns",
        "applied_seq",
        "arm",
        "brake",
        "contact_cap",
        "goal",
        "goal_accepted_ns",
        "goal_fresh",
        "goal_sample_ns",
        "goal_seq",
        "grip_capped",
        "hold_pending",
        "jaw",
        "jaw_accepted_ns",
        "jaw_fresh",
        "jaw_goal",
        "last_jaw_seq",
        "last_servo_seq",
        "last_valid_ns",
        "mode",
        "name",
        "peak_force",
        "received",
        "session",
        "setpoint",
    )

    def __init__(self, name: str, arm: Arm) -> None:
        self.name = name
        self.arm = arm
        self.mode = ArmMode.HELD
        self.session: int | None = None
        self.last_servo_seq: int | None = None
        self.last_jaw_seq: int | None = None
        self.received = 0
        """Commands of ``session`` for this arm that reached the session's checks."""
        self.last_valid_ns = 0
        self.hold_pending = False
        self.goal: Pose | None = None
        self.goal_seq = 0
        self.goal_sample_ns = 0
        self.goal_accepted_ns = 0
        self.goal_fresh = False
        self.jaw_goal: float | None = None
        self.jaw_accepted_ns = 0
        self.jaw_fresh = False
        self.applied_seq = 0
        self.applied_sample_ns = 0

        self.setpoint: Setpoint | None = None
        self.brake: Pose | None = None
        self.jaw: float | None = None
        self.contact_cap: ContactCap | None = None
        """The force cap, while it holds (``checks.limit_contact``)."""
        self.grip_capped = False
        self.peak_force = 0.0
        """The largest force at the tip [N] while this arm was engaged."""


class Admits(Protocol):
    """Control ownership as the supervisor asks it, and all it knows of it: whether
    console ``session`` [u64] holds control (a command of a console allowed to claim
    control nobody holds claims it). Called under the supervisor's lock for every command
    that passed the state checks, so it must be quick and thread-safe, and must never
    call into the supervisor: the owner's side (``patient.control.PatientControl``)
    holds the arms of a previous owner from its own threads, never from here."""

    def __call__(self, session: int, /) -> bool:
        """True when ``session`` may command the robot now."""
        ...


class Supervisor:
    """Checks every command, clamps and rate-limits it, and alone drives ``robot``.

    ``config``: limits; ``on_event``: called (under the supervisor's lock, so it must be
    quick, thread-safe and must not call back into the supervisor) with each
    transition; ``period_s`` [s]: the servo period ``tick`` is called at; ``arms``: the
    arms commands may name (default: all of the robot's); ``engage_tolerance_*``: how
    close [m, rad] the first target after a clutch must be to the tool; ``clock``: the
    monotonic clock [ns] that stamps acceptance and application (``clock.now_ns``);
    ``admits``: control ownership, asked about every command that passed the state
    checks (:class:`Admits`; None: every session may command, as in replay and the
    benchmarks).
    """

    def __init__(self, robot: Robot, config: SafetyConfig,
                 on_event: Callable[[SafetyEvent], None], *, period_s: float = 0.001,
                 arms: Iterable[str] | None = None,
                 engage_tolerance_m: float = ENGAGE_TOLERANCE_M,
                 engage_tolerance_rad: float = ENGAGE_TOLERANCE_RAD,
                 clock: Callable[[], int] = clock_now_ns,
                 admits: Admits | None = None) -> None:
        if not period_s > 0.0:
            raise SafetyError(f"servo period must be positive, got {period_s} s")
        names = list(robot.arms) if arms is None else list(arms)
        unknown = [a for a in names if a not in robot.arms]
        if unknown or not names:
            raise SafetyError(f"arms {unknown or names} are not on this robot; it has "
                              f"{sorted(robot.arms)}")
        self._robot = robot
        self._clock = clock
        self._on_event = on_event
        self.config = config
        self.period_s = period_s
        self.workspace = Workspace.from_config(config)
        self.limits = MotionLimits.from_config(config)
        self._watchdog_ns = round(config.watchdog_ms * 1e6)
        self._max_age_ns = round((config.max_command_age_ms + config.path_delay_ms) * 1e6)
        self._tol_m = engage_tolerance_m
        self._tol_rad = engage_tolerance_rad
        self._lock = threading.Lock()
        self._arms = {n: _ArmState(n, robot.arms[n]) for n in names}
        self._state = SafetyState.DISABLED
        self._op = robot.operating_state()
        self._admits = admits
        self._last_valid: tuple[int, int] = (-1, 0)
        """(session, time [ns]) of the last command that passed every check but motion."""
        self._offsets: dict[int, int] = {}
        self._rejected = dict.fromkeys(Reason, 0)
        self._accepted = 0
        self._applied = 0
        self._clamped = 0
        self._holds = 0
        self._faults = 0
        self._estops = 0
        self._force_limits = 0
        self._grip_limits = 0
        self._force_capped_ticks = 0
        self.latency_ns = Samples()
        """Input sample -> target accepted here [ns], for every accepted target."""
        self.tick_wait_ns = Samples()
        """Target accepted -> first applied by a servo tick [ns]."""

    # ---- lifecycle (any thread except where noted) -------------------------------

    @property
    def state(self) -> SafetyState:
        """The supervisor's state."""
        return self._state

    def mode(self, arm: str) -> ArmMode:
        """The mode of ``arm``."""
        return self._arms[arm].mode

    def enable(self) -> None:
        """DISABLED -> HOLD; the robot must be ENABLED. Raises ``SafetyError`` in ESTOP."""
        op = self._robot.operating_state()
        with self._lock:
            if self._state is SafetyState.ESTOP:
                raise SafetyError("the emergency stop is latched; call disable() then "
                                  "enable() to clear it")
            if self._state is not SafetyState.DISABLED:
                return
            if op is not OperatingState.ENABLED:
                raise SafetyError(f"the robot is {op.name}; enable the robot before the "
                                  "safety supervisor")
            self._op = op
            for st in self._arms.values():
                st.mode = ArmMode.HELD
                st.session = st.last_servo_seq = st.last_jaw_seq = None
                st.jaw = st.jaw_goal = None
                st.hold_pending = True
            self._set_state(SafetyState.HOLD, SafetyCause.ENABLED,
                            "enabled: arms held until the console clutches")

    def disable(self) -> None:
        """Any state -> DISABLED; nothing moves until ``enable()``. Clears a latched ESTOP."""
        with self._lock:
            if self._state is SafetyState.DISABLED:
                return
            for st in self._arms.values():
                st.mode = ArmMode.HELD
                st.hold_pending = False
            self._set_state(SafetyState.DISABLED, SafetyCause.DISABLED, "disabled")

    def estop(self, reason: str = "emergency stop requested") -> None:
        """Latch ESTOP: every arm holds at the next tick and nothing moves until
        ``disable()`` then ``enable()``."""
        with self._lock:
            self._estop(SafetyCause.ESTOP, reason)

    def hold(self, reason: str = "hold requested") -> None:
        """Hold every arm now; each needs the console's clutch cycle to move again."""
        with self._lock:
            if self._state in _ACTIVE_STATES:
                self._hold_all(SafetyCause.HOLD_REQUESTED, reason)

    def hold_others(self, session: int | None, reason: str) -> None:
        """Hold, where they are, the arms engaged by any console but ``session`` (None:
        every engaged arm): control passed to ``session``, which engages them with the
        clutch cycle, so nothing jumps."""
        with self._lock:
            if self._state not in _ACTIVE_STATES:
                return
            for st in self._arms.values():
                if st.session != session and st.mode is not ArmMode.HELD:
                    self._to_held(st, SafetyCause.HANDOVER, reason)

    def last_valid_ns(self, session: int) -> int | None:
        """When [ns] console ``session`` last sent a valid command (None: not the last
        console to send one)."""
        with self._lock:
            last, at = self._last_valid
        return at if last == session else None

    def set_clock_offset(self, session: int, offset_ns: int) -> None:
        """Console ``session``'s clock offset [ns]: local time = its time + ``offset_ns``.

        Used for command age and latency; 0 (the default) on one machine.
        """
        with self._lock:
            self._offsets[session] = offset_ns

    # ---- commands (transport threads) ---------------------------------------------

    def submit(self, msg: Message, received_ns: int, body: AnyBody | None = None) -> Verdict:
        """Check a decoded command received at ``received_ns`` [ns, local clock]; on
        acceptance its clamped target becomes the arm's goal for the next tick.

        ``body``: one command of the bundle ``msg``, checked under its header (default:
        ``msg``'s own body); a bundle's commands are not copied into messages of their own,
        a few microseconds each, four times a millisecond.
        """
        if body is None:
            body = msg.body
        if not isinstance(body, ServoCP | JawServoJP):
            with self._lock:
                return self._reject(Reason.MALFORMED, msg)
        reason = validate_command(body, msg.sent_ns)
        with self._lock:
            if reason is not None:
                return self._reject(reason, msg)
            st = self._arms.get(body.arm)
            if st is None:
                return self._reject(Reason.UNKNOWN_ARM, msg)
            if self._state is SafetyState.DISABLED:
                return self._reject(Reason.NOT_ENABLED, msg)
            if self._state is SafetyState.ESTOP:
                return self._reject(Reason.ESTOPPED, msg)
            if self._admits is not None and not self._admits(msg.session):
                return self._reject(Reason.WRONG_SESSION, msg)
            if msg.session != st.session:
                self._new_session(st, msg.session)
            st.received += 1
            is_servo = isinstance(body, ServoCP)
            reason = check_sequence(st.last_servo_seq if is_servo else st.last_jaw_seq,
                                    msg.seq)
            if reason is not None:
                return self._reject(reason, msg)
            if is_servo:
                st.last_servo_seq = msg.seq
            else:
                st.last_jaw_seq = msg.seq
            offset = self._offsets.get(msg.session, 0)
            reason = check_age(msg.sent_ns + offset, received_ns, self._max_age_ns)
            if reason is not None:
                return self._reject(reason, msg)
            self._last_valid = (msg.session, received_ns)
            if isinstance(body, ServoCP):
                st.last_valid_ns = received_ns
                return self._servo(st, msg, body, offset)
            return self._jaw(st, msg, body, offset)

    def _servo(self, st: _ArmState, msg: Message, body: ServoCP, offset: int) -> Verdict:
        mode = st.mode
        if body.clutch:
            if mode is ArmMode.HELD:
                self._set_mode(st, ArmMode.ARMED, SafetyCause.CLUTCH_PRESSED,
                               "clutch pressed after a hold: the console "
                               "re-anchors the hand on the tool")
            elif mode is ArmMode.FOLLOWING:
                self._set_mode(st, ArmMode.CLUTCHED, SafetyCause.CLUTCH_PRESSED,
                               "clutch pressed")
            self._accepted += 1
            return ACCEPTED
        if mode is ArmMode.HELD:
            return self._reject(Reason.NOT_ENGAGED, msg)
        if mode is not ArmMode.FOLLOWING:
            sp = st.setpoint
            if sp is None:
                return self._reject(Reason.NOT_ALIGNED, msg)
            dist, angle = misalignment(sp.pose, body.pose)
            if dist > self._tol_m or angle > self._tol_rad:
                return self._reject(Reason.NOT_ALIGNED, msg)
            self._set_mode(st, ArmMode.FOLLOWING, SafetyCause.ALIGNED_ENGAGE,
                           "clutch released with the hand aligned on the tool "
                           f"({dist * 1e3:.1f} mm, {angle:.2f} rad)")
        position = self.workspace.clamp(body.pose.position)
        if position != body.pose.position:
            self._clamped += 1
        now = self._clock()
        st.goal = Pose(position, quat_normalize(body.pose.orientation))
        st.goal_seq = msg.seq
        st.goal_sample_ns = body.sample_ns
        st.goal_accepted_ns = now
        st.goal_fresh = True
        self._accepted += 1
        self.latency_ns.add(now - body.sample_ns - offset)
        return ACCEPTED

    def _jaw(self, st: _ArmState, msg: Message, body: JawServoJP, offset: int) -> Verdict:
        if st.mode is ArmMode.HELD:
            return self._reject(Reason.NOT_ENGAGED, msg)
        self._accepted += 1
        if st.mode is ArmMode.FOLLOWING:
            now = self._clock()
            st.jaw_goal = body.angle
            st.jaw_accepted_ns = now
            st.jaw_fresh = True
            self.latency_ns.add(now - body.sample_ns - offset)
        # While armed or clutched the jaw keeps its angle, as the tool keeps its pose.
        return ACCEPTED

    # ---- servo loop (servo thread) -----------------------------------------------

    def tick(self, now_ns: int) -> None:
        """One servo period at ``now_ns`` [ns]: watchdog, then each arm one step toward
        its goal through the motion limiter. Never raises for a robot error: it latches
        ESTOP and counts a fault (a driver bug, any other exception, is logged with its
        traceback)."""
        op = self._robot.operating_state()
        plans: list[tuple[_ArmState, ArmMode, bool, Pose | None, float | None]] = []
        with self._lock:
            self._observe_robot(op)
            if self._state in _ACTIVE_STATES:
                self._watchdog(now_ns)
            if op is not OperatingState.ENABLED or self._state is SafetyState.DISABLED:
                return
            applied_ns = self._clock()
            for st in self._arms.values():
                hold, st.hold_pending = st.hold_pending, False
                if st.mode is ArmMode.FOLLOWING:
                    self._mark_applied(st, applied_ns)
                else:
                    # A target accepted just before a clutch or a hold is never applied:
                    # counting its wait later would report the clutch time as tick wait.
                    st.goal_fresh = st.jaw_fresh = False
                plans.append((st, st.mode, hold, st.goal, st.jaw_goal))
        for st, mode, hold, goal, jaw_goal in plans:
            try:
                self._drive(st, mode, hold, goal, jaw_goal)
            except Exception as exc:
                # The servo loop must outlive a failing driver, whatever it raises: the
                # arms stop and the failure is counted and reported.
                if not isinstance(exc, TelesurgeryError):
                    log.exception("%s: the robot driver failed unexpectedly", st.name)
                with self._lock:
                    self._robot_error(st, exc)

    def _mark_applied(self, st: _ArmState, applied_ns: int) -> None:
        if st.goal_fresh:
            st.goal_fresh = False
            st.applied_seq = st.goal_seq
            st.applied_sample_ns = st.goal_sample_ns
            self._applied += 1
            self.tick_wait_ns.add(applied_ns - st.goal_accepted_ns)
        if st.jaw_fresh:
            st.jaw_fresh = False
            self._applied += 1
            self.tick_wait_ns.add(applied_ns - st.jaw_accepted_ns)

    def _drive(self, st: _ArmState, mode: ArmMode, hold: bool, goal: Pose | None,
               jaw_goal: float | None) -> None:
        arm = st.arm
        if hold:
            arm.hold()
            st.setpoint = Setpoint(arm.setpoint_cp())
            st.brake = None
            st.contact_cap = None
            if st.jaw is None:
                # Afterwards the jaw continues from what was last commanded: a hold keeps
                # the jaw's setpoint, and the measured angle of a grasp is wider than it.
                st.jaw = arm.jaw_measured_js().position[0]
            return
        sp = st.setpoint
        if sp is None or mode not in _ENGAGED_MODES:
            return
        if mode is ArmMode.CLUTCHED or goal is None:
            # Fixed when braking starts: recomputed each tick it would run ahead of the tip.
            if st.brake is None:
                stop = stopping_pose(sp, self.limits, self.period_s)
                st.brake = Pose(self.workspace.clamp(stop.position), stop.orientation)
            goal = st.brake
        else:
            st.brake = None
        nxt = next_setpoint(sp, goal, self.limits, self.workspace, self.period_s)
        force = arm.measured_cf().force
        magnitude = math.hypot(*force)
        st.peak_force = max(st.peak_force, magnitude)
        was = st.contact_cap
        # Most ticks touch nothing: they skip the limiter and the tip's forward kinematics.
        if was is not None or not magnitude < self.config.force_cap_n:
            nxt, st.contact_cap = limit_contact(sp, nxt, goal.position, force,
                                                arm.measured_cp().position,
                                                self.config.force_cap_n, was, self.workspace,
                                                self.period_s)
            if st.contact_cap is not None:
                self._force_capped_ticks += 1
            if (was is None) != (st.contact_cap is None):
                self._cap_event(st, mode, "force", magnitude, self.config.force_cap_n,
                                was is None)
        # What the robot applied (clipped to its reach) is where the limiter goes on from.
        st.setpoint = applied_setpoint(sp, nxt, arm.servo_cp(nxt.pose), self.period_s)
        if mode is ArmMode.FOLLOWING and jaw_goal is not None and st.jaw is not None:
            jaw = next_jaw(st.jaw, jaw_goal, self.limits.jaw_speed_rad_s, self.period_s)
            grip = arm.grip_force()
            cap = self.config.grip_cap_n
            if st.grip_capped != (grip >= cap) and \
                    (not st.grip_capped or grip < CAP_CLEAR_FRACTION * cap):
                st.grip_capped = not st.grip_capped
                self._cap_event(st, mode, "grip", grip, cap, st.grip_capped)
            st.jaw = arm.jaw_servo_jp(limit_grip(st.jaw, jaw, grip, cap, self.period_s))

    def _cap_event(self, st: _ArmState, mode: ArmMode, what: str, value: float,
                   cap: float, reached: bool) -> None:
        """Count and report ``st``'s ``what`` (force or grip) [N] reaching ``cap`` [N], or
        falling back below it."""
        is_force = what == "force"
        with self._lock:
            if reached:
                if is_force:
                    self._force_limits += 1
                else:
                    self._grip_limits += 1
                cause = SafetyCause.FORCE_LIMIT if is_force else SafetyCause.GRIP_LIMIT
                text = (f"{st.name}: {what} {value:.1f} N reached the {cap:g} N cap: "
                        + ("motion into contact held at the cap" if is_force
                           else "the jaws close no further"))
            else:
                cause = SafetyCause.FORCE_CLEARED if is_force else SafetyCause.GRIP_CLEARED
                text = f"{st.name}: {what} {value:.1f} N, back under the {cap:g} N cap"
            self._set_state(self._state, cause, text,
                            logging.WARNING if reached else logging.INFO,
                            (st.name, mode, mode))

    # ---- transitions (lock held) --------------------------------------------------

    def _observe_robot(self, op: OperatingState) -> None:
        previous, self._op = self._op, op
        if op is OperatingState.FAULT and previous is not OperatingState.FAULT:
            self._faults += 1
        if op is not OperatingState.ENABLED and self._state in _ACTIVE_STATES:
            self._hold_all(SafetyCause.ROBOT_NOT_ENABLED, f"robot is {op.name}")

    def _watchdog(self, now_ns: int) -> None:
        for st in self._arms.values():
            if st.mode is not ArmMode.HELD and now_ns - st.last_valid_ns > self._watchdog_ns:
                quiet_ms = (now_ns - st.last_valid_ns) * 1e-6
                self._to_held(st, SafetyCause.WATCHDOG,
                              f"watchdog: no valid command for {quiet_ms:.1f} ms "
                              f"(limit {self.config.watchdog_ms:g} ms)")

    def _robot_error(self, st: _ArmState, exc: Exception) -> None:
        if self._state is SafetyState.ESTOP:
            log.error("%s: robot error while stopped: %s", st.name, exc)
            return
        self._faults += 1
        self._estop(SafetyCause.ROBOT_ERROR, f"{st.name}: robot error: {exc}")

    def _estop(self, cause: SafetyCause, reason: str) -> None:
        if self._state is SafetyState.ESTOP:
            return
        self._estops += 1
        for st in self._arms.values():
            st.mode = ArmMode.HELD
            st.hold_pending = True
        self._set_state(SafetyState.ESTOP, cause, reason, logging.WARNING)

    def _hold_all(self, cause: SafetyCause, reason: str) -> None:
        for st in self._arms.values():
            if st.mode is not ArmMode.HELD:
                self._to_held(st, cause, reason)
            else:
                st.hold_pending = True

    def _to_held(self, st: _ArmState, cause: SafetyCause, reason: str) -> None:
        if st.mode in _ENGAGED_MODES:
            self._holds += 1
        st.hold_pending = True
        st.jaw_goal = None  # the grip may have changed meanwhile: wait for a fresh one
        self._set_mode(st, ArmMode.HELD, cause, reason, logging.WARNING)

    def _new_session(self, st: _ArmState, session: int) -> None:
        previous = st.session
        st.session = session
        st.last_servo_seq = st.last_jaw_seq = None
        st.received = 0
        if previous is None:
            log.info("%s: commands from console session %016x", st.name, session)
        elif st.mode is not ArmMode.HELD:
            self._to_held(st, SafetyCause.NEW_SESSION,
                          f"new console session {session:016x} (was {previous:016x})")

    def _set_mode(self, st: _ArmState, mode: ArmMode, cause: SafetyCause, reason: str,
                  level: int = logging.INFO) -> None:
        before = st.mode
        st.mode = mode
        engaged = any(a.mode in _ENGAGED_MODES for a in self._arms.values())
        self._set_state(SafetyState.ENGAGED if engaged else SafetyState.HOLD, cause, reason,
                        level, (st.name, before, mode))

    def _set_state(self, state: SafetyState, cause: SafetyCause, reason: str,
                   level: int = logging.INFO,
                   arm: tuple[str, ArmMode, ArmMode] | None = None) -> None:
        """Enter ``state`` for ``cause`` (``reason``: the words; ``arm``: the arm whose
        mode changed, and its modes before and after), log it and hand the event on."""
        previous, self._state = self._state, state
        text = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        ev = SafetyEvent(state, previous, self._op, cause, text, *(arm or (None,) * 3))
        log.log(level, "safety %s -> %s: %s", previous.name, state.name, ev.text())
        self._on_event(ev)

    def _reject(self, reason: Reason, msg: Message | None) -> Verdict:
        self._rejected[reason] += 1
        if self._rejected[reason] == 1:
            where = f" (seq {msg.seq}, session {msg.session:016x})" if msg is not None else ""
            log.warning("rejected a command: %s%s; further ones are counted, not logged",
                        reason.value, where)
        return REJECTED[reason]

    # ---- readings (any thread) ------------------------------------------------------

    def applied(self, arm: str) -> tuple[int, int]:
        """``(seq, sample_ns)`` of the command whose target ``arm`` is tracking now."""
        st = self._arms[arm]
        with self._lock:
            return st.applied_seq, st.applied_sample_ns

    def rejections(self) -> dict[Reason, int]:
        """Rejections so far, by reason."""
        with self._lock:
            return dict(self._rejected)

    def snapshot(self, last: int | None = None) -> dict[str, Any]:
        """Counters and latency figures as plain JSON-ready values; the latency figures
        cover the ``last`` samples, or all of them when None.

        ``rejected`` counts every rejection except stale ones, which are
        ``stale_dropped``; ``applied`` counts targets a tick applied (a target
        replaced before the next tick is accepted but never applied).
        """
        with self._lock:
            out: dict[str, Any] = {
                "state": self._state.name,
                "operating_state": self._op.name,
                "accepted": self._accepted,
                "applied": self._applied,
                "rejected": sum(n for r, n in self._rejected.items() if r is not Reason.STALE),
                "stale_dropped": self._rejected[Reason.STALE],
                "rejected_by_reason": {r.value: n for r, n in self._rejected.items() if n},
                "clamped": self._clamped,
                "holds": self._holds,
                "faults": self._faults,
                "estops": self._estops,
                "force_cap_n": self.config.force_cap_n,
                "grip_cap_n": self.config.grip_cap_n,
                "force_limits": self._force_limits,
                "force_capped_s": round(self._force_capped_ticks * self.period_s, 3),
                "grip_limits": self._grip_limits,
                "arms": {st.name: {"mode": st.mode.label, "applied_seq": st.applied_seq,
                                   "session": None if st.session is None
                                   else f"{st.session:016x}",
                                   "received": st.received,
                                   "peak_force_n": round(st.peak_force, 2)}
                         for st in self._arms.values()},
            }
        out["latency_ms"] = self.latency_ns.summary(1e-6, last=last)
        out["tick_wait_ms"] = self.tick_wait_ns.summary(1e-6, last=last)
        return out


__all__ = ["ENGAGE_TOLERANCE_M", "ENGAGE_TOLERANCE_RAD", "Admits", "ArmMode", "Supervisor"]
