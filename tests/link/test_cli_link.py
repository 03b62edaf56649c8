"""`telesurgery link` options: profile, path and impairment flags resolve to one path spec."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from telesurgery.cli.link import _burst, _outage, resolve_path
from telesurgery.errors import ConfigError
from telesurgery.link.impairment import GilbertElliott


def test_flags_override_the_profile_in_both_directions() -> None:
    profile, path, spec = resolve_path("rome-beijing", "5g", {
        "delay_ms": 80.0, "burst_loss": _burst("0.01:0.5"), "outages": [_outage("3:0.25")]})
    assert (profile, path) == ("rome-beijing", "5g")
    for direction in (spec.forward, spec.reverse):
        assert direction.delay_ms == 80.0
        assert direction.burst_loss == GilbertElliott(p_enter_bad=0.01, p_leave_bad=0.5)
        assert direction.outages == ((3.0, 0.25),)
        assert direction.jitter_ms == 2.0  # untouched: from the profile


def test_first_path_by_default_and_flags_alone() -> None:
    assert resolve_path("rome-beijing", None, {})[1] == "fibre"
    name, path, spec = resolve_path(None, None, {"loss": 0.5})
    assert (name, path, spec.forward.loss, spec.reverse.delay_ms) == ("flags", "path", 0.5, 0.0)


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--burst-loss: "):
        resolve_path(None, None, {"burst_loss": _burst("2:0.5")})
    with pytest.raises(ConfigError, match=r"^--queue-ms: "):
        resolve_path(None, None, {"queue_ms": 0.0})


@pytest.mark.parametrize(("parse", "text"), [(_burst, "0.1"), (_burst, "a:b"),
                                             (_outage, "3"), (_outage, "x:1")])
def test_malformed_pairs_say_how_to_write_them(parse: Callable[[str], object],
                                               text: str) -> None:
    with pytest.raises(ConfigError, match="write"):
        parse(text)


def test_path_needs_a_profile() -> None:
    with pytest.raises(ConfigError, match="--path needs --profile"):
        resolve_path(None, "fibre", {})
