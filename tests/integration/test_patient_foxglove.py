"""``telesurgery patient --foxglove``: a Foxglove client sees the robot's frames while the node
runs, and the server's process ends with the node."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.cli.record import foxglove_beside
from telesurgery.config import SecurityConfig
from telesurgery.demo.processes import free_port
from telesurgery.errors import ConfigError

from ..foxglove_client import first_frames

pytestmark = pytest.mark.integration

TIMEOUT_S = 120.0  # generous: a loaded 2-core machine


def _serving(port: int) -> bool:
    """Whether a ``record --foxglove PORT`` process runs."""
    found = subprocess.run(["pgrep", "-f", f"record --foxglove {port} "], capture_output=True,
                           text=True, check=False)
    return found.stdout.strip() != ""


def test_the_patient_serves_its_frames_live_and_takes_the_server_down_with_it() -> None:
    port = free_port()
    patient = subprocess.Popen(
        [sys.executable, "-m", "telesurgery", "patient", "--insecure", "--no-video",
         "--listen", f"tcp/127.0.0.1:{free_port()}", "--foxglove", str(port),
         "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        tf = "telesurgery/or1/foxglove/tf"
        got = asyncio.run(first_frames(f"ws://127.0.0.1:{port}", {tf}, lambda: None,
                                       TIMEOUT_S))
        assert _serving(port), "no server process seen while the node runs"
        patient.send_signal(signal.SIGINT)
        _out, err = patient.communicate(timeout=TIMEOUT_S)
    finally:
        if patient.poll() is None:
            patient.kill()
            patient.wait()
    assert patient.returncode == 0, err[-2000:]
    frames = {t["child_frame_id"] for t in got[tf]["message"]["transforms"]}
    assert frames & {"psm1_rcm", "psm1_tip"}
    # The server's process is gone with the node: nothing serves the port any more.
    log = Path(err.split("(log: ", 1)[1].split(")", 1)[0])
    assert "recorded" in log.read_text()  # it stopped cleanly, and said what it served
    assert not _serving(port)


def test_a_secure_node_without_a_recorder_identity_is_one_clear_error() -> None:
    secure = SecurityConfig(identity=Path("id"), acl=Path("acl.json"))
    with pytest.raises(ConfigError, match="--foxglove-identity"):
        foxglove_beside(0, "or1", ["tcp/127.0.0.1:7448"], secure, None, "info")
    with pytest.raises(ConfigError, match="--listen or --connect"):
        foxglove_beside(0, "or1", [], SecurityConfig(insecure=True), None, "info")
