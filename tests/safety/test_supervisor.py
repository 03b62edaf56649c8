"""The supervisor over a stiff test robot: rejections, clutch engagement, watchdog, ESTOP."""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable

import pytest

from telesurgery.config import SafetyConfig
from telesurgery.errors import SafetyError
from telesurgery.messages import JawServoJP, MeasuredCF, Message, SafetyCause, SafetyEvent, ServoCP
from telesurgery.safety import ArmMode, Reason, Supervisor
from telesurgery.types import OperatingState, Pose, SafetyState, Wrench

from .kinematic_robot import KinematicRobot
from .rig import HOME, PERIOD_NS, Console, KinematicRig, Rig, kinematic_rig, moved


def _change(ev: SafetyEvent) -> tuple[SafetyCause, str | None, ArmMode | None, ArmMode | None]:
    """What an event says in fields: its cause, arm and the arm's modes before and after."""
    return ev.cause, ev.arm, ev.mode_before, ev.mode_after


# ---- every rejection reason, and none of them moves the robot ------------------------

def _malformed(r: KinematicRig) -> None:
    r.submit(MeasuredCF("psm1", Wrench()))


def _non_finite(r: KinematicRig) -> None:
    r.servo("psm1", Pose((math.nan, 0.0, -0.1)))


def _non_unit(r: KinematicRig) -> None:
    r.servo("psm1", Pose((0.0, 0.0, -0.1), (0.5, 0.0, 0.0, 0.0)))


def _unknown_arm(r: KinematicRig) -> None:
    r.servo("psm9", moved(r.tip(), dx=0.01))


def _wrong_session(r: KinematicRig) -> None:
    r.owner = 0xBAC
    r.servo("psm1", moved(r.tip(), dx=0.01))


def _duplicate(r: KinematicRig) -> None:
    r.submit(ServoCP("psm1", moved(r.tip(), dx=0.01), r.t_ns), seq=1_000)


def _out_of_order(r: KinematicRig) -> None:
    r.submit(ServoCP("psm1", moved(r.tip(), dx=0.01), r.t_ns), seq=999)


def _stale(r: KinematicRig) -> None:
    r.servo("psm1", moved(r.tip(), dx=0.01), age_ns=101_000_000)


def _clock_skew(r: KinematicRig) -> None:
    r.servo("psm1", moved(r.tip(), dx=0.01), age_ns=-101_000_000)


def _not_enabled(r: KinematicRig) -> None:
    r.sup.disable()
    r.servo("psm1", moved(r.tip(), dx=0.01))


def _estopped(r: KinematicRig) -> None:
    r.sup.estop()
    r.servo("psm1", moved(r.tip(), dx=0.01))


def _not_engaged(r: KinematicRig) -> None:
    r.sup.hold()
    r.servo("psm1", moved(r.tip(), dx=0.01))


def _not_aligned(r: KinematicRig) -> None:
    r.sup.hold()
    r.servo("psm1", r.tip(), clutch=True)
    r.servo("psm1", moved(r.tip(), dx=0.02))


CASES: list[tuple[Reason, Callable[[KinematicRig], None]]] = [
    (Reason.MALFORMED, _malformed), (Reason.NON_FINITE, _non_finite),
    (Reason.MALFORMED, _non_unit), (Reason.UNKNOWN_ARM, _unknown_arm),
    (Reason.WRONG_SESSION, _wrong_session), (Reason.DUPLICATE, _duplicate),
    (Reason.OUT_OF_ORDER, _out_of_order), (Reason.STALE, _stale),
    (Reason.CLOCK_SKEW, _clock_skew), (Reason.NOT_ENABLED, _not_enabled),
    (Reason.ESTOPPED, _estopped), (Reason.NOT_ENGAGED, _not_engaged),
    (Reason.NOT_ALIGNED, _not_aligned),
]


@pytest.mark.parametrize(("reason", "send"), CASES, ids=[f.__name__[1:] for _, f in CASES])
def test_each_rejection_is_counted_and_moves_nothing(reason: Reason,
                                                     send: Callable[[KinematicRig], None]) -> None:
    r = kinematic_rig()
    r.engage()
    # Sequence 1000 is the last accepted servo_cp, for the duplicate and order cases.
    assert r.submit(ServoCP("psm1", r.tip(), r.t_ns), seq=1_000).accepted
    r.tick(5)
    before, calls = r.tip(), r.robot.arms["psm1"].servo_calls
    send(r)
    r.tick(5)
    assert r.sup.rejections()[reason] == 1
    assert sum(r.sup.rejections().values()) == 1
    assert r.tip() == before
    if reason not in (Reason.NOT_ENABLED, Reason.ESTOPPED, Reason.NOT_ENGAGED,
                      Reason.NOT_ALIGNED, Reason.WRONG_SESSION):
        # Still engaged: the arm is driven every tick, toward the old target.
        assert r.robot.arms["psm1"].servo_calls == calls + 5
    snap = r.sup.snapshot()
    assert snap["rejected_by_reason"] == {reason.value: 1}
    if reason is Reason.STALE:
        assert (snap["stale_dropped"], snap["rejected"]) == (1, 0)
    else:
        assert (snap["stale_dropped"], snap["rejected"]) == (0, 1)


def test_jaw_is_rejected_while_held_and_rate_limited_when_following() -> None:
    r = kinematic_rig()
    jaw = r.robot.arms["psm1"]
    verdict = r.submit(JawServoJP("psm1", 1.0, r.t_ns))
    assert verdict.reason is Reason.NOT_ENGAGED
    r.engage()
    assert r.submit(JawServoJP("psm1", 1.0, r.t_ns)).accepted
    r.tick(10)
    assert jaw.jaw_measured_js().position[0] == pytest.approx(10 * 8.0 * 1e-3)
    for _ in range(200):
        r.servo("psm1", r.tip())  # keeps the watchdog fed
        r.tick()
    assert jaw.jaw_measured_js().position[0] == pytest.approx(1.0)
    steps = [abs(b - a) for a, b in itertools.pairwise(jaw.jaw_history)]
    assert max(steps) <= 8.0 * 1e-3 + 1e-12


# ---- engagement: the clutch cycle, and no jump after a hold ---------------------------

def test_starts_held_and_engages_only_through_the_clutch_cycle() -> None:
    r = kinematic_rig()
    assert r.state() is SafetyState.HOLD
    assert r.servo("psm1", r.tip()).reason is Reason.NOT_ENGAGED
    assert r.servo("psm1", r.tip(), clutch=True).accepted
    assert r.sup.mode("psm1") is ArmMode.ARMED
    assert r.state() is SafetyState.HOLD
    r.tick()
    assert r.servo("psm1", moved(r.tip(), dx=0.002)).accepted
    assert r.sup.mode("psm1") is ArmMode.FOLLOWING
    assert r.state() is SafetyState.ENGAGED
    r.tick(50)
    assert r.tip().position[0] == pytest.approx(HOME["psm1"].position[0] + 0.002)
    assert [(e.previous, e.state) for e in r.events] == [
        (SafetyState.DISABLED, SafetyState.HOLD), (SafetyState.HOLD, SafetyState.HOLD),
        (SafetyState.HOLD, SafetyState.ENGAGED)]
    assert [_change(e) for e in r.events] == [
        (SafetyCause.ENABLED, None, None, None),
        (SafetyCause.CLUTCH_PRESSED, "psm1", ArmMode.HELD, ArmMode.ARMED),
        (SafetyCause.ALIGNED_ENGAGE, "psm1", ArmMode.ARMED, ArmMode.FOLLOWING)]
    assert r.events[-1].text().startswith("psm1 armed -> following: clutch released")


class Teleop:
    """A console's clutch mapping: target = tool anchor + (hand - hand anchor), re-anchored
    on the measured tool pose while the clutch is pressed."""

    def __init__(self, rig: KinematicRig, hand: Pose) -> None:
        self.rig = rig
        self.hand = hand
        self.hand_anchor = hand
        self.tool_anchor = rig.robot.arms["psm1"].measured_cp()

    def target(self) -> Pose:
        a, h, t = self.hand_anchor.position, self.hand.position, self.tool_anchor.position
        return Pose((t[0] + h[0] - a[0], t[1] + h[1] - a[1], t[2] + h[2] - a[2]))

    def send(self, clutch: bool = False) -> bool:
        if clutch:
            self.hand_anchor = self.hand
            self.tool_anchor = self.rig.robot.arms["psm1"].measured_cp()
        return self.rig.servo("psm1", self.target(), clutch=clutch).accepted

    def run(self, ticks: int, dx_per_tick: float = 0.0) -> None:
        for _ in range(ticks):
            self.hand = moved(self.hand, dx=dx_per_tick)
            self.send()
            self.rig.tick()


def test_after_a_hold_the_arm_does_not_jump_to_where_the_hand_went() -> None:
    r = kinematic_rig()
    console = Teleop(r, Pose((0.3, 0.2, 0.1)))
    console.send(clutch=True)
    r.tick()
    console.run(100, dx_per_tick=0.0001)  # 10 mm at 0.1 m/s
    # It trails a moving hand by v^2 / 2a + v dt / 2 = 1.05 mm at 0.1 m/s.
    assert r.tip().position[0] == pytest.approx(HOME["psm1"].position[0] + 0.01, abs=1.2e-3)
    # The link drops for 80 ms while the surgeon's hand keeps moving 40 mm.
    console.hand = moved(console.hand, dx=0.04)
    r.tick(80)
    assert r.state() is SafetyState.HOLD
    held = r.tip()
    # The link is back: the console, unaware, still maps the hand onto the old anchor.
    console.run(50)
    assert r.tip() == held
    assert r.sup.rejections()[Reason.NOT_ENGAGED] == 50
    # The surgeon clutches (the console re-anchors) and moves on by 2 mm.
    console.send(clutch=True)
    r.tick(20)
    assert r.tip() == held
    console.run(100, dx_per_tick=0.00002)
    assert r.state() is SafetyState.ENGAGED
    assert r.tip().position[0] == pytest.approx(held.position[0] + 0.002, abs=1e-4)
    steps = [a.distance(b) for a, b in itertools.pairwise(r.robot.arms["psm1"].history)]
    assert max(steps) <= r.config.max_linear_speed_m_s * 1e-3 + 1e-12


def test_a_console_that_does_not_re_anchor_cannot_engage() -> None:
    r = kinematic_rig()
    r.engage()
    r.sup.hold("test")
    assert _change(r.events[-1]) == (SafetyCause.HOLD_REQUESTED, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.HELD)
    assert r.events[-1].reason == "test"
    r.tick()
    held = r.tip()
    assert r.servo("psm1", held, clutch=True).accepted
    for _ in range(20):  # the hand went 30 mm away and was never re-anchored
        assert r.servo("psm1", moved(held, dx=0.03)).reason is Reason.NOT_ALIGNED
        r.tick()
    assert r.tip() == held
    assert r.sup.mode("psm1") is ArmMode.ARMED


def test_clutch_while_following_brakes_to_rest_and_stays() -> None:
    r = kinematic_rig()
    r.engage()
    far = moved(r.tip(), dx=0.08)
    for _ in range(300):  # cruising at the speed limit toward a far target
        r.servo("psm1", far)
        r.tick()
    assert r.servo("psm1", far, clutch=True).accepted
    assert r.sup.mode("psm1") is ArmMode.CLUTCHED
    assert _change(r.events[-1]) == (SafetyCause.CLUTCH_PRESSED, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.CLUTCHED)
    for _ in range(200):
        assert r.servo("psm1", far, clutch=True).accepted
        r.tick()
    xs = [p.position[0] for p in r.robot.arms["psm1"].history]
    tail = xs[-200:]
    speeds = [(b - a) / 1e-3 for a, b in itertools.pairwise(tail)]
    accels = [abs(b - a) / 1e-3 for a, b in itertools.pairwise(speeds)]
    assert max(accels) <= r.config.max_linear_accel_m_s2 * (1 + 1e-6)
    assert abs(speeds[-1]) < 1e-9
    assert r.state() is SafetyState.ENGAGED
    for _ in range(20):  # clutched commands do not move it
        assert r.servo("psm1", moved(far, dx=0.02), clutch=True).accepted
        r.tick()
    assert xs[-1] == r.tip().position[0] < far.position[0]


def test_a_new_console_session_restarts_sequence_and_needs_the_clutch() -> None:
    r = kinematic_rig()
    r.engage()
    for _ in range(30):
        r.servo("psm1", r.tip())
        r.tick()
    restarted = Console(session=0xC0FFEE)  # numbers from 1 again
    assert r.servo("psm1", moved(r.tip(), dx=0.01), console=restarted).reason is \
        Reason.NOT_ENGAGED
    assert r.state() is SafetyState.HOLD
    assert _change(r.events[-1]) == (SafetyCause.NEW_SESSION, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.HELD)
    assert r.sup.snapshot()["holds"] == 1
    r.tick()
    r.engage(console=restarted)
    assert r.sup.rejections()[Reason.OUT_OF_ORDER] == 0


def test_owner_change_holds_the_other_sessions_arms() -> None:
    r = kinematic_rig()
    r.engage()
    backup = Console(session=0xBAC)
    r.owner = backup.session
    r.sup.hold_others(backup.session, "control passed to the backup")
    assert r.state() is SafetyState.HOLD
    assert _change(r.events[-1]) == (SafetyCause.HANDOVER, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.HELD)
    assert r.servo("psm1", r.tip()).reason is Reason.WRONG_SESSION
    r.tick()
    r.engage(console=backup)


# ---- watchdog, ESTOP, robot faults ---------------------------------------------------

def test_watchdog_holds_after_silence_and_not_before() -> None:
    r = kinematic_rig()
    r.engage()
    arm = r.robot.arms["psm1"]
    r.servo("psm1", moved(r.tip(), dx=0.05))
    r.tick(50)  # 50 ms of silence is within the 50 ms limit
    assert r.state() is SafetyState.ENGAGED
    holds_before = arm.hold_calls
    r.tick(2)
    assert r.state() is SafetyState.HOLD
    assert arm.hold_calls == holds_before + 1
    assert _change(r.events[-1]) == (SafetyCause.WATCHDOG, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.HELD)
    assert r.events[-1].held
    stopped = r.tip()
    r.tick(100)
    assert r.tip() == stopped
    assert r.sup.snapshot()["holds"] == 1


def test_estop_latches_until_disable_and_enable() -> None:
    r = kinematic_rig()
    r.engage()
    r.servo("psm1", moved(r.tip(), dx=0.05))
    r.tick(10)
    r.sup.estop("test button")
    # The whole supervisor stops: no arm named, every arm held with it.
    assert _change(r.events[-1]) == (SafetyCause.ESTOP, None, None, None)
    assert r.events[-1].text() == "test button"
    r.tick()
    stopped = r.tip()
    assert r.state() is SafetyState.ESTOP
    assert r.servo("psm1", stopped, clutch=True).reason is Reason.ESTOPPED
    with pytest.raises(SafetyError, match="disable"):
        r.sup.enable()
    r.tick(100)
    assert r.tip() == stopped
    r.sup.disable()
    r.sup.enable()
    assert r.state() is SafetyState.HOLD
    r.tick()
    r.engage()
    assert r.sup.snapshot()["estops"] == 1


def test_robot_fault_holds_and_counts_once() -> None:
    r = kinematic_rig()
    r.engage()
    r.servo("psm1", moved(r.tip(), dx=0.05))
    r.tick(5)
    r.robot.fault()
    r.tick(10)
    assert r.state() is SafetyState.HOLD
    assert _change(r.events[-1]) == (SafetyCause.ROBOT_NOT_ENABLED, "psm1", ArmMode.FOLLOWING,
                                     ArmMode.HELD)
    assert r.events[-1].operating_state is OperatingState.FAULT
    assert r.sup.snapshot()["faults"] == 1
    r.robot.enable()
    r.tick()
    assert r.servo("psm1", r.tip()).reason is Reason.NOT_ENGAGED


def test_robot_error_latches_estop_and_tick_does_not_raise() -> None:
    r = kinematic_rig()
    r.engage()
    r.servo("psm1", moved(r.tip(), dx=0.05))
    r.tick(5)
    r.robot.arms["psm1"].disconnect()
    r.tick(3)  # servo_cp fails, then hold fails: one fault, no exception
    assert r.state() is SafetyState.ESTOP
    assert [_change(e) for e in r.events if e.state is SafetyState.ESTOP] == [
        (SafetyCause.ROBOT_ERROR, None, None, None)]
    assert r.sup.snapshot()["faults"] == 1
    assert r.robot.arms["psm2"].hold_calls == 2  # at enable, and at the ESTOP


def test_enable_refuses_a_disabled_robot() -> None:
    robot = KinematicRobot(HOME)
    sup = Supervisor(robot, SafetyConfig(), lambda e: None)
    with pytest.raises(SafetyError, match="enable the robot"):
        sup.enable()


# ---- figures: applied command, latencies, snapshot -----------------------------------

def test_applied_command_latency_and_tick_wait() -> None:
    r = kinematic_rig()
    r.engage()
    sample_ns = r.t_ns - 3_000_000  # input sampled 3 ms before sending
    msg = r.console.message(ServoCP("psm1", moved(r.tip(), dx=0.001), sample_ns), r.t_ns)
    r.t_ns += 200_000  # arrives 0.2 ms later, 0.8 ms before the next tick
    assert r.sup.submit(msg, r.t_ns).accepted
    r.t_ns += 800_000
    r.tick()
    assert r.sup.applied("psm1") == (msg.seq, sample_ns)
    assert r.sup.latency_ns.values()[-1] == 3_200_000
    assert r.sup.tick_wait_ns.values()[-1] == 800_000
    snap = r.sup.snapshot()
    json.dumps(snap, allow_nan=False)
    assert snap["state"] == "ENGAGED"
    assert snap["arms"]["psm1"]["mode"] == "following"
    assert snap["latency_ms"]["max"] == pytest.approx(3.2)
    # The engaging target was replaced before any tick: accepted, never applied.
    assert (snap["accepted"], snap["applied"]) == (3, 1)


def test_concurrent_submits_and_ticks_keep_counts_exact() -> None:
    r = kinematic_rig()
    r.engage()
    per_thread, threads = 2_000, 4
    consoles = [Console(session=r.console.session) for _ in range(threads)]
    stop = threading.Event()
    verdicts: list[list[bool]] = [[] for _ in range(threads)]

    def send(i: int) -> None:
        for k in range(per_thread):
            body = ServoCP("psm2" if i % 2 else "psm1", HOME["psm1"], r.t_ns)
            msg = Message(consoles[i].session, 10_000 + k * threads + i, r.t_ns, body)
            verdicts[i].append(r.sup.submit(msg, r.t_ns).accepted)

    def servo() -> None:
        while not stop.is_set():
            r.sup.tick(r.t_ns)
            r.robot.step(PERIOD_NS * 1e-9)

    ticker = threading.Thread(target=servo)
    ticker.start()
    senders = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(timeout=60)
        assert not t.is_alive(), f"{t.name} did not finish sending"
    stop.set()
    ticker.join(timeout=60)
    assert not ticker.is_alive(), "the ticking thread did not stop"
    snap = r.sup.snapshot()
    accepted = sum(sum(v) for v in verdicts)
    assert accepted + snap["rejected"] == per_thread * threads
    assert snap["accepted"] == accepted + 2  # plus the two of the engage cycle
    # psm2 was never engaged; each arm's sequence numbers interleave across two threads.
    assert set(snap["rejected_by_reason"]) <= {"not_engaged", "out_of_order"}
    assert snap["rejected_by_reason"]["not_engaged"] > 0


# ---- workspace ------------------------------------------------------------------------

def test_target_outside_the_box_is_clamped_and_the_tip_stops_at_the_wall() -> None:
    r = kinematic_rig()
    r.engage()
    for _ in range(600):
        assert r.servo("psm1", Pose((0.5, 0.0, -0.12))).accepted
        r.tick()
    assert r.tip().position == pytest.approx((0.12, 0.0, -0.12), abs=1e-12)
    assert r.sup.snapshot()["clamped"] == 600


def test_a_target_out_of_reach_leaves_the_setpoint_where_the_robot_stopped() -> None:
    reach = HOME["psm1"].position[0] + 0.005
    r = Rig(KinematicRobot(HOME, reach_x_m=reach))
    r.engage()
    beyond = moved(r.tip(), dx=0.03)  # inside the workspace, beyond what the joints reach
    for _ in range(200):
        assert r.servo("psm1", beyond).accepted
        r.tick()
    assert r.tip().position[0] == reach
    # Back inside the reach: the limiter goes on from the pose the robot applied, so the
    # tip leaves the limit at the next tick (from a setpoint left beyond it, the tip would
    # wait while the setpoint came back, then start at full speed).
    back = moved(r.tip(), dx=-0.01)
    history = r.robot.arms["psm1"].history
    start = len(history) - 1
    for _ in range(200):
        assert r.servo("psm1", back).accepted
        r.tick()
    xs = [p.position[0] for p in history[start:]]
    assert xs[0] == reach > xs[1]
    speeds = [(b - a) / 1e-3 for a, b in itertools.pairwise(xs)]
    accels = [abs(b - a) / 1e-3 for a, b in itertools.pairwise([0.0, *speeds])]
    assert max(accels) <= r.config.max_linear_accel_m_s2 * (1 + 1e-6)
    assert xs[-1] == pytest.approx(back.position[0])


def test_the_tip_slides_around_the_rcm_instead_of_through_it() -> None:
    config = SafetyConfig(workspace_min_m=(-0.06, -0.06, -0.12),
                          workspace_max_m=(0.06, 0.06, 0.03))
    r = kinematic_rig(config, {"psm1": Pose((0.05, 0.0, -0.01))})
    r.engage()
    goal = Pose((-0.05, 0.0, -0.01))  # straight through, it would pass 10 mm from the RCM
    for _ in range(1500):
        r.servo("psm1", goal)
        r.tick()
    assert r.tip().distance(goal) < 1e-9
    closest = min(math.dist(p.position, (0.0, 0.0, 0.0))
                  for p in r.robot.arms["psm1"].history)
    assert 0.045 - 1e-9 <= closest < 0.046


def test_clock_offset_moves_console_times_onto_the_local_clock() -> None:
    r = kinematic_rig()
    r.engage()
    # This console's clock runs 5 s behind ours: its stamps look 5 s old until corrected.
    behind_ns = 5_000_000_000
    assert r.servo("psm1", r.tip(), age_ns=behind_ns).reason is Reason.STALE
    r.sup.set_clock_offset(r.console.session, behind_ns)
    sample_ns = r.t_ns - behind_ns - 2_000_000  # sampled 2 ms before sending
    msg = r.console.message(ServoCP("psm1", r.tip(), sample_ns), r.t_ns - behind_ns)
    assert r.sup.submit(msg, r.t_ns).accepted
    assert r.sup.latency_ns.values()[-1] == 2_000_000


def test_the_age_limit_stands_above_the_paths_one_way_delay() -> None:
    # Over a geostationary satellite a command is 300 ms old when it lands: stale against
    # the bare limit (100 ms), fresh with the path's delay under it, stale again beyond.
    bare = kinematic_rig()
    bare.engage()
    assert bare.servo("psm1", bare.tip(), age_ns=300_000_000).reason is Reason.STALE
    geo = kinematic_rig(SafetyConfig(path_delay_ms=300.0))
    geo.engage()
    assert geo.servo("psm1", geo.tip(), age_ns=300_000_000).accepted
    assert geo.servo("psm1", geo.tip(), age_ns=390_000_000).accepted
    assert geo.servo("psm1", geo.tip(), age_ns=410_000_000).reason is Reason.STALE
