"""A drill's score sheet from scripted observations with known outcomes (no processes)."""

from __future__ import annotations

import pytest

from telesurgery.bench.faults.judge import Hold, TipSample
from telesurgery.bench.faults.observe import Observation
from telesurgery.errors import ConfigError
from telesurgery.training.drill import DrillEvent, DrillFile, score_event
from telesurgery.types import ArmMode, Pose

S = 1_000_000_000
ARMS = ("psm1",)


def _tip(t_s: float, x_m: float, mode: ArmMode, seq: int) -> TipSample:
    return TipSample(1, seq, round(t_s * S), Pose((x_m, 0.0, -0.1)), mode, seq)


def _seen(samples: list[TipSample]) -> Observation:
    seen = Observation()
    seen.tips["psm1"] = samples
    return seen


def test_both_paths_down_alarm_and_resume() -> None:
    # Following, held 0.2 s into the fault, following a new command 1.5 s after its end; a
    # hold at the session's end 30 s later is not the fault's.
    samples = [_tip(9.0, 0.0, ArmMode.FOLLOWING, 1), _tip(10.2, 0.0, ArmMode.HELD, 1),
               _tip(11.0, 0.0, ArmMode.ARMED, 1), _tip(12.5, 0.001, ArmMode.FOLLOWING, 2),
               _tip(42.0, 0.001, ArmMode.HELD, 2)]
    seen = _seen(samples)
    seen.holds.append(Hold(round(10.2 * S), "psm1", "watchdog"))
    event = DrillEvent(at_s=10.0, fault="both_paths_cut", duration_s=1.0, alarm="hold",
                       alarm_within_s=0.5, response_within_s=2.0)
    out = score_event(event, seen, (10 * S, 11 * S), None, ARMS)
    assert out["alarm_s"] == pytest.approx(0.2)
    assert out["resume_s"] == out["response_s"] == pytest.approx(1.5)
    assert out["modes_at_fault"] == {"psm1": "following"}
    assert out["passed"]
    slow = event.model_copy(update={"response_within_s": 1.0})
    assert not score_event(slow, seen, (10 * S, 11 * S), None, ARMS)["passed"]


def test_a_hold_of_the_next_event_is_not_this_ones() -> None:
    samples = [_tip(4.0, 0.0, ArmMode.FOLLOWING, 1), _tip(7.2, 0.0, ArmMode.FOLLOWING, 2),
               _tip(9.3, 0.0, ArmMode.HELD, 2), _tip(10.0, 0.0, ArmMode.FOLLOWING, 3)]
    seen = _seen(samples)
    seen.link_alarm_times.append((round(4.3 * S), "fibre DOWN"))
    event = DrillEvent(at_s=4.0, fault="path_cut", duration_s=3.0, alarm="link",
                       response_within_s=2.0)
    out = score_event(event, seen, (4 * S, 7 * S), None, ARMS, next_begin_ns=9 * S)
    assert out["alarm_s"] == pytest.approx(0.3)
    assert out["resume_s"] == pytest.approx(0.2)
    assert out["passed"]


def test_a_take_over_that_moves_the_tips_fails() -> None:
    samples = [_tip(4.0, 0.0, ArmMode.FOLLOWING, 1), _tip(5.0, 0.0, ArmMode.HELD, 1),
               _tip(5.5, 0.002, ArmMode.HELD, 1), _tip(6.0, 0.004, ArmMode.HELD, 1)]
    seen = _seen(samples)
    seen.owners += [(round(3.0 * S), "surgeon:dr-rossi"), (round(5.0 * S), "backup:bed")]
    event = DrillEvent(at_s=4.0, fault="console_crash", alarm="takeover",
                       alarm_within_s=3.0, response_within_s=3.0, takeover_motion_mm=1.0)
    out = score_event(event, seen, (4 * S, 7 * S), round(4.9 * S), ARMS)
    assert (out["alarm_s"], out["response_s"], out["team_acted_s"]) == pytest.approx(
        (1.0, 1.0, 0.9))
    assert out["takeover_motion_mm"] == pytest.approx(4.0)
    assert not out["passed"]


def test_a_drill_the_demo_cannot_run_is_one_line() -> None:
    crash = DrillEvent(at_s=1.0, fault="console_crash")
    with pytest.raises(ConfigError, match="needs the bedside console and no emulated paths"):
        DrillFile(name="x", events=[crash]).check()
    with pytest.raises(ConfigError, match="starts before the one before it ends"):
        DrillFile(name="x", events=[DrillEvent(at_s=1.0, fault="path_cut", duration_s=3.0),
                                    DrillEvent(at_s=2.0, fault="path_cut")]).check()
