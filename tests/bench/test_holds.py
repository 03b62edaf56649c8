"""The hold is tight: the safety supervisor over the MuJoCo robot stops each tool within the
bounds of docs/safety.md, at full speed and pressed on the board, for every cause."""

from __future__ import annotations

import pytest

from telesurgery.bench.holds import (
    CAUSES,
    CREEP_BOUND_M,
    DRIFT_BOUND_M,
    STOP_BOUND_M,
    STOP_BOUND_MS,
    bench_holds,
    hold_trials,
)
from telesurgery.config import SafetyConfig
from telesurgery.errors import ConfigError


def test_every_cause_stops_the_tools_within_the_bounds_free_and_in_contact() -> None:
    trials = list(hold_trials(3, seed=7))
    assert {(t.cause, t.contact) for t in trials} == {(c, k) for c in CAUSES
                                                      for k in (False, True)}
    for t in trials:
        where = f"{t.arm} held by {t.cause}{' in contact' if t.contact else ''}"
        assert t.stop_m <= STOP_BOUND_M, f"{where} travelled {t.stop_m * 1e3:.2f} mm"
        assert t.stop_ms <= STOP_BOUND_MS, f"{where} came to rest after {t.stop_ms} ms"
        assert t.drift_m <= DRIFT_BOUND_M, f"{where} drifted {t.drift_m * 1e3:.3f} mm"
        assert t.creep_m <= CREEP_BOUND_M, f"{where} crept {t.creep_m * 1e3:.4f} mm"
    # The trials test what they claim: holds at speed, and holds pressed on the board.
    v_max = SafetyConfig().max_linear_speed_m_s
    free = [t for t in trials if not t.contact and t.cause != "watchdog"]
    assert max(t.speed_m_s for t in free) > 0.8 * v_max
    assert min(t.force_n for t in trials if t.contact and t.cause != "watchdog") > 1.0
    assert all(t.silent_m is not None for t in trials if t.cause == "watchdog")


def test_the_bench_judges_against_its_bounds_and_reports_every_case() -> None:
    result = bench_holds(trials_per_cause=1, observe_s=1.2, seed=3)
    assert set(result["cases"]) == {f"{c}{s}" for c in CAUSES for s in ("", "_contact")}
    for case in result["cases"].values():
        assert case["holds"] == 2  # both arms
        assert case["passed"] is (case["stop_mm"]["max"] <= result["bounds"]["stop_mm"]
                                  and case["drift_mm"]["max"] <= result["bounds"]["drift_mm"]
                                  and case["creep_mm"]["max"] <= result["bounds"]["creep_mm"]
                                  and case["stop_ms"]["max"] <= result["bounds"]["stop_ms"])
    assert result["passed"] is all(c["passed"] for c in result["cases"].values())


def test_a_window_too_short_to_judge_creep_is_refused_with_the_minimum() -> None:
    with pytest.raises(ConfigError, match=r"at least 1\.1 s"):
        next(hold_trials(1, observe_s=0.5))
