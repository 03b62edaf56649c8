"""The summary's count of commands the patient never heard before the run stopped."""

from __future__ import annotations

from telesurgery.demo.summary import unreceived_at_stop

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
