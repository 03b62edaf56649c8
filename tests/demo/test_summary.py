"""The summary: the count of commands the patient never heard before the run stopped, and the
forces."""

from __future__ import annotations

from rich.console import Console

from telesurgery.demo.summary import build_summary, unreceived_at_stop
from telesurgery.demo.view import render_summary

_SESSION = "00000000000000aa"


def _arm(received: int, session: str | None = _SESSION) -> dict[str, object]:
    return {"mode": "following", "session": session, "received": received}


def test_commands_sent_but_never_received_are_unheard() -> None:
    console = {"session_id": _SESSION, "sent": 4000}
    safety = {"arms": {"PSM1": _arm(1998), "PSM2": _arm(1998)}}
    assert unreceived_at_stop(console, safety) == 4


def test_an_arm_that_last_heard_another_console_leaves_it_unknown() -> None:
    console = {"session_id": _SESSION, "sent": 4000}
    safety = {"arms": {"PSM1": _arm(2000), "PSM2": _arm(10, "00000000000000bb")}}
    assert unreceived_at_stop(console, safety) is None


def test_nothing_heard_means_everything_sent_is_unheard() -> None:
    console = {"session_id": _SESSION, "sent": 12}
    safety = {"arms": {"PSM1": _arm(0, None)}}
    assert unreceived_at_stop(console, safety) is None
    safety = {"arms": {"PSM1": _arm(0)}}
    assert unreceived_at_stop(console, safety) == 12


def test_the_summary_carries_the_forces_and_the_table_shows_them() -> None:
    patient = {"safety": {"state": "ENGAGED", "holds": 0, "force_cap_n": 8.0,
                          "force_limits": 2, "force_capped_s": 0.4, "grip_limits": 1,
                          "arms": {"psm1": {"peak_force_n": 9.6, "received": 0},
                                   "psm2": {"peak_force_n": 0.3, "received": 0}}}}
    summary = build_summary(10.0, patient, {"sent": 0}, {})
    forces = summary["safety"]["forces"]
    assert forces == {"cap_n": 8.0, "limits": 2, "capped_s": 0.4, "grip_limits": 1,
                      "peak_n": {"psm1": 9.6, "psm2": 0.3}}
    console = Console(width=120, record=True)
    console.print(render_summary(summary))
    row = next(line for line in console.export_text().splitlines() if "forces" in line)
    assert "peak psm1 9.6 N, psm2 0.3 N" in row
    assert "8 N cap reached 2 times (0.4 s)" in row
