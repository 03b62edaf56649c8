"""The command line turns every mistake into one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telesurgery", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("patient", "--config", "absent.toml"), "absent.toml: no such config file"),
        (("console", "--device", "haptic"),
         "device: Input should be 'autopilot', 'scripted' or 'web'"),
        (("console", "--device", "scripted"), "the scripted device needs a trajectory file"),
        (("patient", "--listen", "localhost"), "'localhost' is not a Zenoh locator"),
        (("demo", "--headless"), "--headless needs --duration S"),
        (("demo", "--duration", "-3"), "--duration must be positive"),
        (("patient",), "the patient node has no identity: pass --identity DIR"),
        (("console", "--insecure", "--identity", "x"), "--insecure cannot go with"),
    ],
)
def test_mistakes_are_one_line_without_traceback(tmp_path: Path, args: tuple[str, ...],
                                                 message: str) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telesurgery: error: ")
    assert message in lines[0]


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = _run("patient", "--listen", f"tcp/127.0.0.1:{port}", "--duration", "1",
                      "--log-level", "error", "--insecure", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is another node already using the port?" in result.stderr
