"""Motion scaling follows the measured delay in a running session: over a geostationary
satellite link (RTT about 600 ms) the console scales the hand's motion down by the law of
``console.scaling``; over Rome-Beijing (about 100 ms) it keeps its own scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.console.scaling import delay_fraction

pytestmark = pytest.mark.integration

DEMO_S = 10.0
TIMEOUT_S = 180.0  # generous: a loaded 2-core machine (about 20 s when idle)


@pytest.mark.parametrize("profile", ["geo-satellite", "rome-beijing"])
def test_the_console_scales_motion_by_the_measured_round_trip(tmp_path: Path,
                                                               profile: str) -> None:
    work = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "telesurgery", "demo", "--headless", "--link", profile,
         "--no-video", "--duration", str(DEMO_S), "--workdir", str(work),
         "--summary", str(tmp_path / "summary.json")],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    scaling = json.loads((work / "console.json").read_text())["motion_scale"]
    rtt = scaling["rtt_ms"]
    assert rtt is not None, scaling  # the console read the round trip from the patient
    assert scaling["with_delay"] is True  # on by default
    # The scale slews to the law's value within 2 s and the run lasts 10.
    expected = scaling["base"] * delay_fraction(rtt)
    assert scaling["scale"] == pytest.approx(expected, abs=0.01 * scaling["base"]), scaling
    if profile == "geo-satellite":
        assert 500.0 < rtt < 700.0, scaling
        assert scaling["scale"] < 0.75 * scaling["base"]
    else:
        assert rtt < 250.0, scaling
        assert scaling["scale"] == scaling["base"]
