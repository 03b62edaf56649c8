"""Time-domain passivity: the observer's bookkeeping, and controllers that never let a port
give out more energy than the other side has put in."""

from __future__ import annotations

import math
import random

import pytest

from telesurgery.haptics import (
    PassivityObserver,
    PortEnergy,
    admittance_pc,
    impedance_pc,
)

DT = 1e-3


def test_the_observer_splits_a_known_power_into_input_and_output_energy() -> None:
    obs = PassivityObserver(DT)
    # P(t) = 2 sin(2 pi t) W out of the network for 1.5 s: out 2/pi J over each positive
    # half-period, in the same over each negative one; 1.5 s holds two out and one in.
    for n in range(1500):
        obs.observe(2.0 * math.sin(2.0 * math.pi * (n + 0.5) * DT))
    assert obs.energy.e_out_j == pytest.approx(2 * 2.0 / math.pi, rel=1e-5)
    assert obs.energy.e_in_j == pytest.approx(2.0 / math.pi, rel=1e-5)


def test_a_controller_leaves_a_sample_alone_while_the_budget_holds() -> None:
    port = PortEnergy(e_in_j=0.0, e_out_j=0.001)
    c = impedance_pc(2.0, 0.1, port, received_in_j=0.002, dt_s=DT)  # 0.2 mJ of 1 mJ left
    assert (c.value, c.dissipated_j) == (2.0, 0.0)
    c = admittance_pc(0.1, 2.0, port, received_in_j=0.002, dt_s=DT)
    assert (c.value, c.dissipated_j) == (0.1, 0.0)


def test_a_controller_removes_exactly_the_excess() -> None:
    port = PortEnergy(e_in_j=0.0, e_out_j=0.001)
    # 0.2 mJ of output this sample against 0.05 mJ of budget left: 0.15 mJ too much.
    c = impedance_pc(2.0, 0.1, port, received_in_j=0.00105, dt_s=DT)
    assert c.dissipated_j == pytest.approx(0.00015)
    assert port.e_out_j + c.value * 0.1 * DT == pytest.approx(0.00105)
    assert c.value < 2.0, "the damping opposes the motion"
    a = admittance_pc(0.1, 2.0, port, received_in_j=0.00105, dt_s=DT)
    assert port.e_out_j + 2.0 * a.value * DT == pytest.approx(0.00105)
    assert 0.0 < a.value < 0.1, "the commanded motion slows"


def _active_channel(correct: bool, impedance: bool) -> tuple[list[float], list[float]]:
    """A synthetic active channel: the port's effort is a negative damper (it pushes along
    the motion, always giving energy out), the other side's input energy trickles in through
    a 150 ms delay with 20 % of the packets lost; returns the output energy and the budget
    at every sample."""
    rng = random.Random(4)
    obs = PassivityObserver(DT)
    sent: list[float] = []  # the other side's cumulative input energy, per sample
    heard = 0.0
    outs, budgets = [], []
    for n in range(3000):
        sent.append(1e-4 * n * DT)  # 0.1 mW put in at the far side
        if n >= 150 and rng.random() > 0.2:
            heard = max(heard, sent[n - 150])
        flow = 0.05 * math.sin(2.0 * math.pi * 3.0 * n * DT) + rng.gauss(0.0, 0.01)
        effort = 5.0 * flow
        if impedance:  # effort is a force on a device moving at flow
            if correct:
                effort = impedance_pc(effort, flow, obs.energy, heard, DT).value
        elif correct:  # flow is a commanded velocity against a force of effort
            flow = admittance_pc(flow, effort, obs.energy, heard, DT).value
        outs.append(obs.observe(effort * flow).e_out_j)
        budgets.append(heard)
    return outs, budgets


@pytest.mark.parametrize("impedance", [True, False])
def test_on_an_active_channel_the_output_never_exceeds_the_energy_received(
        impedance: bool) -> None:
    outs, budgets = _active_channel(correct=True, impedance=impedance)
    assert all(o <= b + 1e-12 for o, b in zip(outs, budgets, strict=True))
    assert outs[-1] > 0.5 * budgets[-1], "the port still passes what it may"
    # Without the controller the same channel gives out far more than it received.
    raw, budgets = _active_channel(correct=False, impedance=impedance)
    assert raw[-1] > 10.0 * budgets[-1]

