"""Config files: the shipped examples load, and every mistake is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from telesurgery.config import ConsoleConfig, PatientConfig, load
from telesurgery.errors import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"


def test_shipped_examples_equal_the_defaults() -> None:
    assert load(PatientConfig, CONFIGS / "patient.toml") == PatientConfig()
    assert load(ConsoleConfig, CONFIGS / "console.toml") == ConsoleConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servo_rate_hz = -1", "servo_rate_hz: Input should be greater than 0"),
        ("session = 'or/1'", "session: session 'or/1' must be ASCII without '/'"),
        ("arms = []", "arms: at least one arm is needed"),
        ("robot = 'raven'", "robot: Input should be 'sim'"),
        ("[safety]\nwatchdog_ms = 0", "safety.watchdog_ms: Input should be greater than 0"),
        ("[safety]\nworkspace_min_m = [0, 0, 0]\nworkspace_max_m = [0, 1, 1]",
         "safety: workspace_min_m must be below workspace_max_m on every axis"),
        ("[zenoh]\nlisten = ['127.0.0.1:7447']",
         "zenoh.listen: '127.0.0.1:7447' is not a Zenoh locator like 'tcp/127.0.0.1:7447'"),
        ("servo_rate = 1000", "servo_rate: Extra inputs are not permitted"),
        ("servo_rate_hz = ", "not valid TOML"),
    ],
)
def test_bad_patient_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "patient.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(PatientConfig, path)
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(str(path))
    assert message in line


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file; check the path"):
        load(ConsoleConfig, tmp_path / "absent.toml")


def test_overrides_apply_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text("session = 'or2'\nscale = 0.5\n")
    cfg = load(ConsoleConfig, path, session="or3", device=None)
    assert (cfg.session, cfg.scale, cfg.device) == ("or3", 0.5, "autopilot")
