"""The surgeon model looks before it moves: under delay it moves and waits, learning the
lag from what it sees; with the predictive display it waits only where it must."""

from __future__ import annotations

import math

import numpy as np
import pytest

from telesurgery.bench.delay import LADDER, run_trial
from telesurgery.errors import ConfigError
from telesurgery.input.surgeon import Act, Surgeon
from telesurgery.robots.sim.robot import SimRobot

GEO = next(r for r in LADDER if r.rtt_ms == 500.0)


class Watch:
    """What the model did, tick by tick: its learnt lag, and how long its hands stood
    still between moves [s]."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.still: list[float] = []
        self._since: dict[str, float | None] = {}

    def __call__(self, t_ns: int, _robot: SimRobot, surgeon: Surgeon) -> None:
        self.lags.append(surgeon.lag_s)
        for arm in surgeon.arms:
            moving = surgeon.act(arm) is Act.MOVE
            since = self._since.get(arm)
            if moving and since is not None:
                self.still.append(t_ns * 1e-9 - since)
                self._since[arm] = None
            elif not moving and since is None and arm in self._since:
                self._since[arm] = t_ns * 1e-9
            self._since.setdefault(arm, None if moving else t_ns * 1e-9)


class Hands:
    """psm1's hand position every 100 ms [m]."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float, float]] = []

    def __call__(self, t_ns: int, _robot: SimRobot, model: Surgeon) -> None:
        if t_ns % 100_000_000 == 0:  # read at the tick's own time: it does not advance
            self.seen.append(model.read(t_ns)["psm1"].pose.position)


@pytest.fixture(scope="module")
def watched() -> dict[bool, Watch]:
    """Twelve seconds of the peg transfer at 500 ms, without and with the ghost."""
    out = {}
    for compensation in (False, True):
        out[compensation] = Watch()
        run_trial(GEO, compensation, seed=1, timeout_s=12.0, on_tick=out[compensation])
    return out


def test_under_half_a_second_of_delay_it_moves_and_waits_for_what_it_sees(
        watched: dict[bool, Watch]) -> None:
    watch = watched[False]
    # It learnt the delay from its own moves: the round trip, near enough.
    assert watch.lags[-1] == pytest.approx(0.5, abs=0.15)
    waits = [s for s in watch.still if s > 0.0]
    assert len(waits) >= 3
    # Between moves it waits for the view: the lag, the view standing still, a reaction.
    assert float(np.median(waits)) > 0.5 + 0.1


def test_with_the_ghost_it_waits_less_between_moves(watched: dict[bool, Watch]) -> None:
    blind, seeing = watched[False], watched[True]
    assert float(np.median(seeing.still)) < 0.6 * float(np.median(blind.still))


def test_the_same_seed_gives_the_same_hands() -> None:
    runs = []
    for _ in range(2):
        hands = Hands()
        runs.append((run_trial(GEO, False, seed=3, timeout_s=3.0, on_tick=hands), hands.seen))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) == 30


def test_bad_parameters_are_refused_with_what_to_give() -> None:
    with pytest.raises(ConfigError, match="reaction_s"):
        Surgeon(reaction_s=-0.1)
    with pytest.raises(ConfigError, match="aim_error"):
        Surgeon(aim_error=math.nan)
    with pytest.raises(ConfigError, match="max_moves"):
        Surgeon(max_moves=0)
