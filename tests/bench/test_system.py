"""``bench system``'s bookkeeping: roles of processes, cores per role, lost commands, and
figures that could not be measured."""

from __future__ import annotations

import sys
import threading
from typing import Any, cast

import pytest

from telesurgery.bench import system
from telesurgery.bench.cpu import ProcessCpu, ThreadGroup
from telesurgery.bench.page import HeadlessPage
from telesurgery.bench.system import (
    Window,
    classify,
    control_section,
    cpu_cores,
    display_section,
    safety_section,
    telesurgery_verb,
)
from telesurgery.demo.monitor import Monitor

PY = sys.executable


def _proc(pid: int, ppid: int, cmdline: tuple[str, ...], cores: float, comm: str = "python",
          threads: dict[str, ThreadGroup] | None = None) -> ProcessCpu:
    return ProcessCpu(pid, ppid, comm, cmdline, cores, threads or {})


def test_the_verb_is_read_from_either_form_of_command_line() -> None:
    assert telesurgery_verb((PY, "-m", "telesurgery", "patient", "--mode", "peer")) == "patient"
    assert telesurgery_verb(("/venv/bin/telesurgery", "bench", "system")) == "bench"
    assert telesurgery_verb((PY, "/venv/bin/telesurgery", "link", "--path", "5g")) == "link"
    assert telesurgery_verb(("/usr/lib/chromium/chromium", "--type=renderer")) is None
    assert telesurgery_verb((PY, "-m", "telesurgery")) is None


def _tree() -> list[ProcessCpu]:
    video = {"servo": ThreadGroup(0.4, 1), "patient-video": ThreadGroup(0.1, 3),
             "llvmpipe-0": ThreadGroup(0.05, 1)}
    return [
        _proc(1, 0, (PY, "-m", "telesurgery", "bench", "system"), 0.01),
        _proc(2, 1, (PY, "-m", "telesurgery", "router"), 0.02),
        _proc(3, 1, (PY, "-m", "telesurgery", "patient"), 0.6, threads=video),
        _proc(4, 1, (PY, "-m", "telesurgery", "console"), 0.3),
        _proc(5, 1, (PY, "-m", "telesurgery", "link", "--path", "fibre"), 0.05),
        _proc(6, 1, (PY, "-m", "telesurgery", "link", "--path", "5g"), 0.07),
        _proc(7, 1, ("node", "cli.js", "run-driver"), 0.01, comm="node"),
        # Chromium rewrites its children's command lines; the OS name stays.
        _proc(8, 7, ("/usr/lib/chromium/chromium", "--headless=new"), 0.2, comm="chromium"),
        _proc(9, 8, ("playwright_profile", "--type=renderer"), 0.3, comm="chromium"),
        _proc(10, 9, ("helper",), 0.1, comm="helper"),
        _proc(11, 1, (PY, "-c", "while True: pass"), 0.9),
    ]


def test_processes_take_their_role_from_their_verb_or_their_parent() -> None:
    roles = classify(_tree(), own_pid=1, hogs={11})
    assert roles == {1: "harness", 2: "router", 3: "patient", 4: "console", 5: "emulators",
                     6: "emulators", 7: "harness", 8: "browser", 9: "browser", 10: "browser",
                     11: "hog"}


def test_the_camera_inside_the_patient_is_its_video_threads() -> None:
    procs = _tree()
    cores = cpu_cores(procs, classify(procs, own_pid=1, hogs={11}))
    assert cores["camera_in"] == "patient"
    assert cores["camera"] == 0.15
    assert cores["patient"] == 0.45
    assert cores["emulators"] == 0.12
    assert cores["emulators_each"] == {"link fibre": 0.05, "link 5g": 0.07}
    assert cores["browser"] == 0.6
    assert cores["hog"] == 0.9
    assert cores["harness"] == 0.02
    # Ours: router, patient, camera, console, emulators; neither browser, harness nor hog.
    assert cores["ours"] == 0.02 + 0.6 + 0.3 + 0.12


def test_a_camera_process_of_its_own_is_the_camera() -> None:
    procs = [*_tree(), _proc(12, 3, (PY, "-m", "telesurgery", "camera"), 0.25),
             _proc(13, 3, ("render",), 0.05, comm="camera-render")]
    roles = classify(procs, own_pid=1, hogs={11})
    assert (roles[12], roles[13]) == ("camera", "camera")
    cores = cpu_cores(procs, roles)
    assert cores["camera_in"] == "own process"
    assert (cores["camera"], cores["patient"]) == (0.3, 0.6)


def test_lost_commands_are_those_sent_and_never_applied_command_by_command() -> None:
    summary = {"control": {"sent": 1000, "applied": 985, "unreceived_at_stop": 4,
                           "rejected_by_reason": {"stale": 3, "not_engaged": 4}},
               "link": {"commands": {"lost": 3},
                        "paths": {"fibre": {"missed": 5, "loss": 0.005, "late_copies": 2,
                                            "superseded": 1},
                                  "5g": {"missed": 7, "loss": 0.007}}}}
    c = control_section(summary)
    # 7 rejected, 3 no path brought, 1 superseded; late copies and the stop's tail never.
    assert (c["sent"], c["applied"], c["lost"]) == (1000, 985, 11)
    assert c["lost_by_difference"] == 1000 - 985 - 4
    assert c["paths"]["fibre"]["lost"] == 5
    assert c["paths"]["5g"]["lost"] == 7
    assert c["not_applied"]["no_path_brought"] == 3
    assert control_section({})["lost_by_difference"] is None


def test_a_display_that_showed_nothing_has_no_figures_and_says_why() -> None:
    empty = display_section(None, 98.0, "the page reported no painted frame")
    assert empty["painted_fps"] is None
    assert empty["motion_to_photon_minus_rtt_ms"] is None
    assert empty["reason"] == "the page reported no painted frame"
    shown = display_section({"frames": 300, "fps": 29.5,
                             "glass_to_glass_ms": {"p50": 7.0, "p99": 12.0},
                             "motion_to_photon_ms": {"p50": 130.0, "p99": 150.0}}, 98.0, "-")
    assert shown["painted_fps"] == 29.5
    assert shown["motion_to_photon_minus_rtt_ms"] == {"p50": 32.0, "p99": 52.0}
    assert "reason" not in shown
    no_rtt = display_section({"frames": 3, "fps": 1.0, "motion_to_photon_ms": {"p50": 9.0}},
                             None, "-")
    assert no_rtt["motion_to_photon_minus_rtt_ms"] is None
    assert no_rtt["reason"] == "no link round trip measured"


class _Page:
    """Stands in for the headless page: opens at once, paints when told."""

    def __init__(self, paints: bool) -> None:
        self.page: object | None = None
        self.paints = paints

    def open(self, url: str) -> None:
        self.page = url

    def evaluate(self, _expression: str) -> int:
        return 30 if self.paints else 0


class _Monitor:
    def __init__(self, holds: list[int]) -> None:
        self.pages = {"console": "http://127.0.0.1:1/?token=t"}
        self._holds = holds

    @property
    def status(self) -> dict[str, Any]:
        return {"patient": {"safety": {"holds": self._holds.pop(0)}}}


def _drive(window: Window, monitor: _Monitor, stop: threading.Event) -> None:
    # The demo ticks four times a second; here as fast as it can, until the window stops it.
    while not stop.is_set():
        window.tick(cast(Monitor, monitor), 0.0)


def test_the_window_opens_at_the_first_paint_and_stops_the_demo_when_it_closes() -> None:
    stop, lines = threading.Event(), list[str]()
    page = _Page(paints=True)
    window = Window(0.05, cast(HeadlessPage, page), stop, lines.append)
    _drive(window, _Monitor([2, 5]), stop)
    assert page.page == "http://127.0.0.1:1/?token=t"
    assert window.first is not None
    assert window.last is not None
    assert (window.last.at_ns - window.first.at_ns) * 1e-9 >= 0.05
    assert window.page_reason is None
    assert safety_section({"holds": 9}, window.holds)["holds_in_window"] == 3
    assert any("measuring" in line for line in lines)


def test_a_page_that_never_paints_opens_the_window_anyway_and_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "PAINT_WAIT_S", 0.0)
    stop = threading.Event()
    window = Window(0.01, cast(HeadlessPage, _Page(paints=False)), stop, lambda _line: None)
    _drive(window, _Monitor([0, 0]), stop)
    assert window.page_reason is not None
    assert "painted nothing" in window.page_reason
