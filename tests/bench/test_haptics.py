"""``bench haptics``: passivity keeps the force loop stable at 135 and 700 ms of round trip;
without it, 700 ms oscillates and generates energy; the JSON has the contract's keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from telesurgery.bench.haptics import ENERGY_TOL_J, OSCILLATION_BOUND_N, bench_haptics

CONTRACT = {"rtt_ms", "passivity", "passive", "oscillation_pp_n", "transparency", "drift_mm",
            "stable"}


def test_passivity_keeps_the_loop_stable_where_without_it_the_loop_oscillates() -> None:
    rungs = {(r["rtt_ms"], r["passivity"]): r
             for r in bench_haptics(seed=1, rtts_ms=(135, 700))["rungs"]}
    assert set(rungs) == {(135, True), (135, False), (700, True), (700, False)}
    for rtt in (135, 700):
        on = rungs[(rtt, True)]
        assert on["passive"], on
        assert on["stable"], on
        assert on["energy_generated_j"] <= ENERGY_TOL_J
        assert on["oscillation_pp_n"] <= OSCILLATION_BOUND_N
        assert on["contact_at_s"] is not None
        assert on["mean_contact_n"] > 1.0, "the tool presses"
        assert on["drift_mm"] < 0.1
    off = rungs[(700, False)]
    assert not off["passive"], off
    assert not off["stable"], off
    assert off["oscillation_pp_n"] > 10 * OSCILLATION_BOUND_N


def test_the_command_writes_the_contract_and_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "h.json"
    result = subprocess.run([sys.executable, "-m", "telesurgery", "bench", "haptics",
                             "--rtt", "70", "--seed", "3", "--json", str(out)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "rtt_ms passivity" in result.stderr, "the table"
    data = json.loads(out.read_text())
    assert [(r["rtt_ms"], r["passivity"]) for r in data["rungs"]] == [(70, True), (70, False)]
    for r in data["rungs"]:
        assert set(r) >= CONTRACT
        assert all(isinstance(r[k], bool) for k in ("passivity", "passive", "stable"))
    again = bench_haptics(seed=3, rtts_ms=(70,))["rungs"]
    assert again == data["rungs"]
