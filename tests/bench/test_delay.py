"""``bench delay`` writes the ladder's contract, and its rig counts what happened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from telesurgery.robots.sim.task import new_drops as _new_drops

TIMEOUT_S = 600.0  # two peg transfers on simulated time: about a minute idle


def test_one_rung_off_and_on_writes_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "delay.json"
    done = subprocess.run([sys.executable, "-m", "telesurgery", "bench", "delay", "--rtt", "0",
                           "--trials", "1", "--jobs", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["bench"] == "delay"
    rungs = result["rungs"]
    assert [(r["rtt_ms"], r["compensation"]) for r in rungs] == [(0.0, False), (0.0, True)]
    for r in rungs:
        assert r["trials"] == 1
        assert set(r["task_time_s"]) == {"mean", "p50"}
        for key in ("transfers", "drops", "path_length_m", "clutches"):
            assert isinstance(r[key], int | float), key
        # Every ring across, within the time allowed, and the tips went somewhere.
        assert r["finished"] == 1, r
        assert r["transfers"] >= 3
        assert 0.0 < r["task_time_s"]["mean"] < result["timeout_s"]
        assert r["path_length_m"] > 0.3
    assert "RTT ms" in done.stderr  # the table


def test_a_ring_lying_off_the_pegs_is_one_drop_until_it_is_back() -> None:
    lying: set[int] = set()
    rest = 0.0015
    on_board = [(0.0, 0.0, 0.0015), (0.05, 0.0, 0.0015)]
    assert _new_drops(on_board, [None, 3], rest, lying) == 1  # ring 0 off the pegs
    assert _new_drops(on_board, [None, 3], rest, lying) == 0  # the same drop
    lifted = [(0.0, 0.0, 0.03), (0.05, 0.0, 0.0015)]
    assert _new_drops(lifted, [None, 3], rest, lying) == 0  # picked up again
    assert _new_drops(on_board, [None, 3], rest, lying) == 1  # and dropped again
