"""Property: no sequence of commands, timings and operator actions makes the tool tip exceed
the speed limits, leave the workspace or come within 45 mm of the RCM."""

from __future__ import annotations

import itertools
import math
from typing import Any

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from telesurgery.config import SafetyConfig
from telesurgery.geometry import quat_angle
from telesurgery.messages import JawServoJP, Message, ServoCP
from telesurgery.safety import Workspace
from telesurgery.types import Pose

from .rig import PERIOD_NS, Console, KinematicRig, kinematic_rig

# The default box lies below the RCM sphere; the second one surrounds the RCM, so that
# the 45 mm exclusion is what stops the tip.
CONFIGS = [
    SafetyConfig(),
    SafetyConfig(workspace_min_m=(-0.06, -0.06, -0.12), workspace_max_m=(0.06, 0.06, 0.03)),
]
STARTS = {"psm1": Pose((0.03, 0.0, -0.1)), "psm2": Pose((0.0, 0.0, -0.05))}

anything = st.floats(allow_nan=True, allow_infinity=True)
metres = st.floats(-0.4, 0.4)
quat_parts = st.floats(-1.0, 1.0)
any_quat = st.tuples(quat_parts, quat_parts, quat_parts, quat_parts)
arms = st.sampled_from(["psm1", "psm2"])
ages_ns = st.one_of(st.just(0), st.integers(-150, 150).map(lambda ms: ms * 1_000_000))
near_rcm = st.floats(-0.06, 0.06)
targets = st.one_of(st.tuples(metres, metres, metres), st.tuples(near_rcm, near_rcm, near_rcm))

actions = st.lists(st.one_of(
    # The clutch cycle on the tool where it is: the arm engages.
    st.tuples(st.just("engage"), arms),
    # A console streaming one target every tick: far, any orientation, possibly late.
    st.tuples(st.just("stream"), arms, targets, any_quat,
              st.integers(1, 250), ages_ns),
    # Arbitrary numbers: NaN, infinities, huge values, non-unit quaternions.
    st.tuples(st.just("wild"), arms, st.tuples(anything, anything, anything),
              st.tuples(anything, anything, anything, anything), st.booleans(), ages_ns),
    # Targets within the engage tolerance of the tool, clutched or not.
    st.tuples(st.just("near"), arms, st.tuples(*[st.floats(-0.008, 0.008)] * 3),
              st.booleans()),
    st.tuples(st.just("jaw"), arms, st.one_of(anything, st.floats(-3.0, 3.0)), ages_ns),
    st.tuples(st.just("tick"), st.integers(1, 80)),
    st.tuples(st.just("replay"), st.integers(0, 50)),
    st.sampled_from([("estop",), ("reset",), ("hold",), ("new_console",)]),
), max_size=40)


def _unit_or_raw(q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    n = math.sqrt(sum(v * v for v in q))
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n) if n > 1e-3 else q


def _play(rig: KinematicRig, script: list[tuple[Any, ...]]) -> None:
    sent: list[Message] = []

    def send(body: ServoCP | JawServoJP, age_ns: int = 0) -> None:
        sent.append(rig.console.message(body, rig.t_ns - age_ns))
        rig.sup.submit(sent[-1], rig.t_ns)

    for action in [("engage", "psm1"), ("engage", "psm2"), *script]:
        kind = action[0]
        if kind == "engage":
            send(ServoCP(action[1], rig.tip(action[1]), rig.t_ns, clutch=True))
            rig.tick()
            send(ServoCP(action[1], rig.tip(action[1]), rig.t_ns))
        elif kind == "stream":
            _, arm, p, q, ticks, age = action
            for _ in range(ticks):
                send(ServoCP(arm, Pose(p, _unit_or_raw(q)), rig.t_ns - age), age)
                rig.tick()
        elif kind == "wild":
            _, arm, p, q, clutch, age = action
            send(ServoCP(arm, Pose(p, q), rig.t_ns - age, clutch), age)
        elif kind == "near":
            _, arm, d, clutch = action
            tip = rig.tip(arm)
            x, y, z = tip.position
            send(ServoCP(arm, Pose((x + d[0], y + d[1], z + d[2]), tip.orientation), rig.t_ns,
                         clutch))
        elif kind == "jaw":
            _, arm, angle, age = action
            send(JawServoJP(arm, angle, rig.t_ns - age), age)
        elif kind == "tick":
            rig.tick(action[1])
        elif kind == "replay" and sent:
            rig.sup.submit(sent[-1 - action[1] % len(sent)], rig.t_ns)
        elif kind == "estop":
            rig.sup.estop("drill")
        elif kind == "reset":
            rig.sup.disable()
            rig.sup.enable()
        elif kind == "hold":
            rig.sup.hold("drill")
        elif kind == "new_console":
            rig.console = Console(session=rig.console.session + 1)
    rig.tick(3)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONFIGS), actions)
def test_no_sequence_exceeds_limits_or_leaves_workspace(config: SafetyConfig,
                                                        script: list[tuple[Any, ...]]) -> None:
    rig = kinematic_rig(config, STARTS)
    _play(rig, script)
    ws = Workspace.from_config(config)
    dt = PERIOD_NS * 1e-9
    fastest, closest = 0.0, math.inf
    for arm in rig.robot.arms.values():
        poses = arm.history
        for a, b in itertools.pairwise(poses):
            step = a.distance(b)
            fastest = max(fastest, step)
            assert step <= config.max_linear_speed_m_s * dt * (1 + 1e-9)
            assert quat_angle(a.orientation, b.orientation) <= \
                config.max_angular_speed_rad_s * dt + 1e-9
        for p in poses:
            assert ws.contains(p.position)
            closest = min(closest, math.dist(p.position, (0.0, 0.0, 0.0)))
            assert closest >= config.rcm_min_distance_m - 1e-9
        for a_j, b_j in itertools.pairwise(arm.jaw_history):
            assert abs(b_j - a_j) <= config.max_jaw_speed_rad_s * dt + 1e-12
    # Steer the search toward scripts that press on the limits.
    target(fastest / dt, label="fastest tip speed [m/s]")
    target(-closest, label="closest approach to the RCM [m], negated")
