"""The FLS-style scores and the proficiency rule, on scripted attempts with known outcomes."""

from __future__ import annotations

import pytest

from telesurgery.errors import ConfigError
from telesurgery.tasks import TASKS, Attempt, proficiency, rules_for, score

PEG = TASKS["peg_transfer"]


def test_a_clean_peg_transfer_scores_cutoff_minus_time_normalised() -> None:
    s = score(PEG, 60.0, 6, {"drops": 0})
    assert (s.raw, s.penalty_s, s.timed_out) == (240.0, 0.0, False)
    assert s.score == pytest.approx(100.0 * 240.0 / 300.0)


def test_a_drop_costs_what_the_rules_say() -> None:
    clean = score(PEG, 60.0, 6, {"drops": 0})
    dropped = score(PEG, 60.0, 6, {"drops": 2})
    assert dropped.penalty_s == 2 * PEG.penalty("drops").cost_s
    assert clean.raw - dropped.raw == pytest.approx(dropped.penalty_s)


@pytest.mark.parametrize(("time_s", "done"), [(None, 4), (301.0, 6), (120.0, 5)])
def test_an_attempt_not_finished_within_the_cutoff_scores_zero(time_s: float | None,
                                                                done: int) -> None:
    s = score(PEG, time_s, done, {"drops": 0})
    assert (s.score, s.raw, s.timed_out, s.time_s) == (0.0, 0.0, True, None)


def test_penalties_never_make_a_score_negative() -> None:
    assert score(PEG, 290.0, 6, {"drops": 3}).score == 0.0


def test_each_task_scores_its_own_penalties() -> None:
    hand = TASKS["handover"]
    s = score(hand, 100.0, 3, {"drops": 0, "unpassed": 1})
    assert s.penalty_s == hand.penalty("unpassed").cost_s
    with pytest.raises(ConfigError, match="no penalty 'excursions'; its penalties are drops"):
        score(hand, 100.0, 3, {"excursions": 1})
    with pytest.raises(ConfigError, match="0 or more"):
        score(hand, 100.0, 3, {"drops": -1})


def test_an_unknown_task_names_the_tasks() -> None:
    with pytest.raises(ConfigError, match="choose one of handover, peg_transfer, precision"):
        rules_for("suturing")


def _at(time_s: float | None, drops: int = 0) -> Attempt:
    return Attempt(time_s, {"drops": drops})


GOOD, SLOW, DROPPED = _at(40.0), _at(60.0), _at(40.0, drops=1)


def test_proficiency_needs_two_in_a_row_and_ten_more() -> None:
    # Twelve at level but never two in a row: not met.
    alternating = [GOOD, SLOW] * 12
    p = proficiency(PEG, alternating)
    assert (p.count, p.streak, p.met_at) == (12, 1, None)
    # Two in a row, then ten more scattered among misses: met at the twelfth at level.
    seq = [SLOW, GOOD, GOOD, *([DROPPED, GOOD] * 10)]
    p = proficiency(PEG, seq)
    assert p.met_at == len(seq)
    assert p.at_level[:3] == (False, True, True)
    # One fewer: not yet.
    assert proficiency(PEG, seq[:-1]).met_at is None


def test_proficiency_counts_the_ten_before_the_pair_too() -> None:
    seq = [*([GOOD, SLOW] * 10), GOOD, GOOD]
    assert proficiency(PEG, seq).met_at == len(seq)


def test_at_level_needs_the_time_and_no_drops() -> None:
    p = proficiency(PEG, [_at(48.0), _at(48.1), _at(30.0, 1), _at(None)])
    assert p.at_level == (True, False, False, False)
