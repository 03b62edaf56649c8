"""A patient node SIGKILLed and restarted: the same surgeon console drives the new one.

The new patient node is a new process with a new session id on the same endpoints, and
knows no command key. The console must see the new session, agree a new key with it and
seal under that key from then on; the new node's arms start held, and the console's
autopilot re-clutches on its own. Real processes on loopback over mutual TLS, with the
commands and the state on a control path through a link emulator, as in the bench.

The control path is cut while the patient node restarts and restored once the new node
has heard the console's key offer (resent on the main session as a keep-alive): the
order in which the bench's console never drove again (its keep-alive reached the new
node before the new node's state reached the console), made certain here.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from telesurgery.clock import now_ns
from telesurgery.demo.processes import NodeProcess
from telesurgery.types import SafetyState

from .test_link_paths import Linked

pytestmark = pytest.mark.integration

ONE_PATH = """
name = "one-path"
description = "One lossless path, 5 ms each way (test profile)."
[paths.wire]
delay_ms = 5.0
"""
STARTUP_S = 60.0
RESTART_S = 90.0
"""Generous: a patient node took 12 s to start on a loaded two-core machine, then the
control path waits out the dead node's lease, then the key and the clutch cycle [s]."""


def test_a_restarted_patient_node_is_driven_again_by_the_same_console(
        tmp_path: Path) -> None:
    linked = Linked(tmp_path, ONE_PATH)
    try:
        linked.trace.wait_state(SafetyState.ENGAGED, after=0, timeout_s=STARTUP_S)
        old = linked.patient
        assert old.proc is not None
        linked.rig.cut("wire")
        os.kill(old.proc.pid, signal.SIGKILL)
        old.proc.wait(timeout=10.0)
        old_session = linked.monitor.status["patient"]["session_id"]

        # The same site identity and endpoints, a new process (hence a new session id).
        linked.patient = NodeProcess("patient-restarted", old.args, tmp_path)
        restarted = now_ns()
        linked.patient.start()

        def new_node_keyed(status: dict[str, Any]) -> bool:
            return bool(status["session_id"] != old_session
                    and status["security"]["keys_agreed"] >= 1)

        linked.wait_status("the new patient node to answer the console's offer",
                           new_node_keyed, RESTART_S)
        linked.rig.restore("wire")
        # ENGAGED from the new node: it applied a command of the same console (an arm
        # follows it again).
        linked.trace.wait_state(SafetyState.ENGAGED, after=restarted, timeout_s=RESTART_S)
        assert linked.console.alive(), linked.console.last_log_line()
    finally:
        report = linked.stop()
    assert report["safety"]["applied"] > 0, report["safety"]
    # One offer, one binding: the console never offered the new node a second key.
    assert report["security"]["offers_refused"]["session_taken"] == 0, report["security"]
    keys = linked.console.report()["security"]
    assert keys["patient_changes"] == 1, keys
    assert keys["key_current"] is True, keys
