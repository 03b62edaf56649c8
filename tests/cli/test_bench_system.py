"""``telesurgery bench system`` says in one line what it needs and lacks, and starts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", "bench", "system",
                           "--duration", "1", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def _one_line_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("telesurgery:")]
    assert len(errors) == 1, result.stderr
    assert says in errors[0]


def test_a_missing_chromium_is_one_line(tmp_path: Path) -> None:
    _one_line_error(_bench("--chromium", str(tmp_path / "no-such-browser")), "no browser at")


def test_a_missing_playwright_is_one_line(tmp_path: Path) -> None:
    # A 'playwright' package without its sync API shadows the installed one.
    (tmp_path / "playwright").mkdir()
    (tmp_path / "playwright" / "__init__.py").write_text("")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, (str(tmp_path),
                                                       os.environ.get("PYTHONPATH"))))}
    _one_line_error(_bench("--chromium", sys.executable, env=env), "needs Playwright")


def test_a_program_that_is_not_a_browser_is_one_line() -> None:
    pytest.importorskip("playwright.sync_api")
    _one_line_error(_bench("--chromium", "/bin/false"), "did not start")


def test_an_unknown_link_profile_is_one_line() -> None:
    _one_line_error(_bench("--link", "atlantis"), "atlantis")
