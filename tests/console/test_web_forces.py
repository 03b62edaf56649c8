"""The force gauges of the console page in headless Chromium: colour, alarm, cue, unknowns.

A real ``WebConsole`` on loopback whose backend keeps a real ``ForceBook`` fed with
``MeasuredCP`` states at 50 Hz (as the console node feeds it from the state bundle, at a
tenth of the rate), and the system's Chromium (never a downloaded one) through
Playwright. No patient node: the page reads only what the HUD message carries.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from telesurgery.clock import now_ns
from telesurgery.config import WebConfig
from telesurgery.console.forces import ForceBook
from telesurgery.console.web.protocol import Action, HandInput, PageChecklist
from telesurgery.console.web.server import WebConsole
from telesurgery.geometry import Vec3
from telesurgery.messages import MeasuredCP
from telesurgery.types import ArmMode, OperatingState, Pose

from ..waiting import wait_until

WAIT_S = 20.0  # generous: a loaded two-core machine
CAP = 8.0
HOME = Pose((0.0, 0.0, -0.1), (1.0, 0.0, 0.0, 0.0))


class Backend:
    """A console whose HUD is the force book's section, fed by a 50 Hz thread."""

    def __init__(self) -> None:
        self.book = ForceBook(["psm1", "psm2"], CAP)
        self.book.register("psm1", HOME)
        self.forces: dict[str, tuple[Vec3, float]] = {"psm1": ((0.0, 0.0, 0.0), 0.0),
                                                      "psm2": ((0.0, 0.0, 0.0), 0.0)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="force-feed", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        while not self._stop.wait(0.02):
            for arm, (force, grip) in list(self.forces.items()):
                self.book.observe(MeasuredCP(arm, HOME, HOME, 0.0, 1, 0, OperatingState.ENABLED,
                                             ArmMode.FOLLOWING, force, grip), now_ns())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def hello(self) -> dict[str, Any]:
        return {"session": "t", "console": "console", "role": "surgeon",
                "console_session": "0" * 16, "width": 64, "height": 48, "video": False,
                "arms": ["psm1", "psm2"], "drives": False, "device": "autopilot"}

    def hud(self) -> dict[str, Any]:
        forces, alarms = self.book.hud(now_ns())
        return {"forces": forces, "alarms": alarms}

    def on_input(self, hand: HandInput, now_ns: int) -> None:
        pass

    def on_action(self, action: Action) -> None:
        pass

    def request_keyframe(self) -> None:
        pass

    def on_checklist(self, msg: PageChecklist) -> None:
        pass




@pytest.fixture
def served() -> Iterator[tuple[Backend, WebConsole]]:
    backend = Backend()
    web = WebConsole(WebConfig(port=0), backend, 1_000_000)
    try:
        web.start()
        yield backend, web
    finally:
        web.stop()
        backend.close()


@pytest.fixture
def page(browser: Any, served: tuple[Backend, WebConsole]) -> Iterator[Any]:
    p = browser.new_page()
    try:
        p.goto(served[1].page_url)
        yield p
    finally:
        p.close()


def _attr(page: Any, selector: str, name: str) -> str | None:
    value = page.get_attribute(selector, name)
    return None if value is None else str(value)


def _until(condition: Callable[[], bool], what: str | Callable[[], str]) -> None:
    wait_until(condition, what, WAIT_S)


def _gauges(page: Any) -> str:
    return str(page.inner_html("#hud-forces"))


def test_above_the_cap_the_gauge_is_red_the_alarm_is_in_the_dom_and_the_cue_sounds(
        served: tuple[Backend, WebConsole], page: Any) -> None:
    backend, _web = served
    backend.forces["psm1"] = ((9.5, 0.0, 0.0), 2.25)
    backend.forces["psm2"] = ((0.0, 2.0, 0.0), 0.0)
    _until(lambda: _attr(page, "#hud-forces", "data-force-alarm") == "psm1",
           lambda: f"the alarm on psm1 in the DOM: {_gauges(page)}")
    assert _attr(page, "#force-psm1", "data-level") == "over"
    assert _attr(page, "#force-psm2", "data-level") == "ok"
    assert page.text_content("#force-psm1 .value") == "9.5 N"
    assert "grip 2.3 N" in str(page.text_content("#force-psm1 .grip"))
    # psm1 is registered (identity): its direction is drawn; psm2's is not known.
    assert _attr(page, "#force-psm1 .dir", "data-view") == "9.50 0.00 0.00"
    assert _attr(page, "#force-psm2 .dir", "data-view") == ""
    assert "force psm1" in str(page.text_content("#hud-alarms"))
    assert "force-over" in str(page.get_attribute("#stage", "class"))  # a red frame
    assert page.evaluate("getComputedStyle(document.querySelector('#force-psm1 .arm')).color"
                         ) == "rgb(248, 81, 73)"
    # No sound before the user touched the page (browsers forbid it); a key press allows it.
    assert _attr(page, "#hud-forces", "data-force-cue") == "waiting"
    page.keyboard.press("x")
    _until(lambda: _attr(page, "#hud-forces", "data-force-cue") == "sounding",
           lambda: f"the cue to sound: {_attr(page, '#hud-forces', 'data-force-cue')}")
    page.click("#mute")
    _until(lambda: _attr(page, "#hud-forces", "data-force-cue") == "muted", "the cue muted")
    # Easing off below the cap ends the alarm.
    backend.forces["psm1"] = ((1.0, 0.0, 0.0), 0.0)
    _until(lambda: _attr(page, "#hud-forces", "data-force-alarm") == "",
           lambda: f"the alarm to end: {_gauges(page)}")
    assert _attr(page, "#force-psm1", "data-level") == "ok"
    assert _attr(page, "#hud-forces", "data-force-cue") == "off"
    assert "force-over" not in str(page.get_attribute("#stage", "class"))


def test_below_the_cap_no_alarm_amber_near_it_and_unknown_is_no_number(
        served: tuple[Backend, WebConsole], page: Any) -> None:
    backend, _web = served
    backend.forces["psm1"] = ((0.0, 0.0, 7.0), 0.5)   # 87 % of the cap: amber
    backend.forces["psm2"] = ((math.nan, 0.0, 0.0), math.nan)
    _until(lambda: _attr(page, "#force-psm1", "data-level") == "near",
           lambda: f"psm1 amber: {_gauges(page)}")
    _until(lambda: _attr(page, "#force-psm2", "data-level") == "unknown",
           lambda: f"psm2 unknown: {_gauges(page)}")
    assert page.text_content("#force-psm1 .value") == "7.0 N"
    assert page.text_content("#force-psm2 .value") == "? N"
    assert "grip ? N" in str(page.text_content("#force-psm2 .grip"))
    assert _attr(page, "#hud-forces", "data-force-alarm") == ""
    assert _attr(page, "#hud-forces", "data-force-cue") == "off"
    assert "force" not in str(page.text_content("#hud-alarms"))
    assert "cap 8 N" in str(page.text_content("#hud-force-cap"))
