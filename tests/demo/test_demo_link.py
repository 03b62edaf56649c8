"""The demo's link options: cut schedules, the summary's link section, command-line mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.config import PathConfig, PatientConfig, ZenohConfig, load
from telesurgery.demo.linkrig import Cut, CutSchedule, paths_toml
from telesurgery.demo.run import DemoOptions
from telesurgery.demo.summary import link_section
from telesurgery.errors import ConfigError


def test_cuts_parse_with_and_without_a_duration() -> None:
    assert Cut.parse("fibre@5") == Cut("fibre", 5.0, None)
    assert Cut.parse("5g@2.5:1") == Cut("5g", 2.5, 1.0)


@pytest.mark.parametrize("text", ["fibre", "@5", "fibre@", "fibre@x", "fibre@5:0",
                                  "fibre@-1", "fibre@5:y"])
def test_a_malformed_cut_is_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="PATH@T or PATH@T:DURATION"):
        Cut.parse(text)


def test_cuts_need_an_emulated_link() -> None:
    with pytest.raises(ConfigError, match="--cut needs --link"):
        CutSchedule(None, [Cut("fibre", 1.0)])


def test_paths_round_trip_through_a_node_config_file(tmp_path: Path) -> None:
    cfg = PatientConfig(paths=[
        PathConfig(name="fibre", zenoh=ZenohConfig(listen=["udp/127.0.0.1:7501"])),
        PathConfig(name="5g", zenoh=ZenohConfig(connect=["tcp/[::1]:7502"]))])
    path = tmp_path / "patient.toml"
    path.write_text(paths_toml(cfg.paths))
    assert load(PatientConfig, path).paths == cfg.paths


def test_the_link_section_has_the_contract_fields() -> None:
    report = {
        "rtt_ms": {"p50": 98.4, "p99": 101.0, "p999": 110.0, "max": 120.0, "count": 80},
        "paths": {
            "fibre": {"loss": 0.0, "rtt_ms": {"p50": 98.4, "p99": 101.0},
                      "commands": {"first": 900, "late": 100, "superseded": 1, "missed": 3},
                      "outages": 0},
            "5g": {"loss": 0.001, "rtt_ms": {"p50": 112.0, "p99": 118.0},
                   "commands": {"first": 100, "late": 900}, "outages": 1},
        },
        "clock": {"offset_ms": 0.1, "bound_ms": 49.2},
        "alarms": [{"state": "UP"}, {"state": "DOWN"}, {"state": "UP"}],
    }
    out = link_section("rome-beijing", report, {}, [])
    assert out["profile"] == "rome-beijing"
    assert out["rtt_ms"] == {"p50": 98.4, "p99": 101.0}
    assert out["paths"]["fibre"]["loss"] == 0.0
    assert out["paths"]["5g"]["rtt_ms"]["p50"] == 112.0
    assert out["paths"]["5g"]["first_arrivals"] == 100
    assert out["paths"]["fibre"]["superseded"] == 1
    assert (out["paths"]["fibre"]["missed"], out["paths"]["5g"]["missed"]) == (3, 0)
    assert out["alarms"] == 1
    # Without a link profile it is the one direct path, and says so.
    assert link_section(None, {}, {}, [])["profile"] is None


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--duration", "1", "--link", "mars"), "no link profile 'mars'"),
        (("demo", "--duration", "1", "--cut", "fibre@1"), "--cut needs --link"),
        (("demo", "--duration", "1", "--cut", "fibre"), "PATH@T or PATH@T:DURATION"),
        (("demo", "--duration", "1", "--link", "rome-beijing", "--cut", "copper@1"),
         "--cut copper: the profile has no such path; choose one of fibre, 5g"),
        (("demo", "--duration", "1", "--loss", "0.01"), "--loss needs --link PROFILE"),
    ],
)
def test_link_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_a_loss_override_is_a_probability() -> None:
    with pytest.raises(ConfigError, match=r"--loss is a probability from 0 to 1, got 1\.5"):
        DemoOptions(link="rome-beijing", loss=1.5).check()
    DemoOptions(link="rome-beijing", loss=0.01).check()
