"""``--force-cap`` reaches the configs it names: the console's, the patient's safety, and
the demo's check before anything starts (a wrong value is one line naming the field)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.demo.run import DemoOptions
from telesurgery.errors import ConfigError


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("console", "--insecure", "--force-cap", "-1"), "force_cap_n: Input should be "
                                                          "greater than 0"),
        (("backup", "--insecure", "--force-cap", "0"), "force_cap_n: Input should be "
                                                        "greater than 0"),
        (("patient", "--insecure", "--force-cap", "-2"), "safety.force_cap_n: Input should "
                                                          "be greater than 0"),
        (("demo", "--headless", "--duration", "1", "--force-cap", "0"),
         "--force-cap is a force in N above 0, got 0.0"),
    ],
)
def test_a_cap_that_is_no_force_is_one_line_naming_the_field(
        tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_the_demo_checks_its_cap_before_starting() -> None:
    DemoOptions(force_cap_n=5.0).check()
    DemoOptions().check()
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="--force-cap"):
            DemoOptions(force_cap_n=bad).check()
