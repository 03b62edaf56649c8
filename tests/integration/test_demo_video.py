"""The headless demo's summary: the video section, measured at the console's decoder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from telesurgery.demo.run import DemoOptions, run_demo

pytestmark = pytest.mark.integration


def test_a_headless_demo_reports_video_latency_at_the_console_decoder(tmp_path: Path) -> None:
    summary = run_demo(DemoOptions(duration_s=8.0, workdir=tmp_path / "on"), threading.Event())
    video = summary["video"]
    assert (video["width"], video["height"]) == (640, 480)
    assert video["measured_at"] == "console-decoder"
    assert video["fps"] > 0.0
    assert video["frames"]["shown"] > 0
    g2g, m2p = video["glass_to_glass_ms"], video["motion_to_photon_ms"]
    assert g2g["count"] == video["frames"]["shown"]
    assert 0.0 < g2g["p50"] <= g2g["p99"]
    # Motion-to-photon spans the control path, the wait for a frame and the render too.
    assert m2p["count"] > 0
    assert m2p["p50"] > g2g["p50"]
    assert {"command_to_snapshot", "render", "encode", "transport", "decode"} <= \
        set(video["stages_ms"])
    assert summary["safety"]["faults"] == 0


def test_without_video_the_summary_has_no_video_section(tmp_path: Path) -> None:
    summary = run_demo(DemoOptions(duration_s=2.0, workdir=tmp_path / "off", video=False),
                       threading.Event())
    assert "video" not in summary
    assert summary["control"]["sent"] > 0
