"""``telesurgery demo`` as a user runs it: Ctrl-C stops every process and keeps the summary."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from telesurgery.console.web.access import announced_url

from ..waiting import wait_until

pytestmark = pytest.mark.integration


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    tick = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, "the demo exited before it was streaming"
        tick.wait(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_ctrl_c_stops_every_node_and_writes_the_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    work = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "telesurgery", "demo", "--headless", "--duration", "600",
         "--summary", str(summary), "--workdir", str(work), "--log-level", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    stream = proc.stderr
    assert stream is not None
    reader = threading.Thread(target=lambda: chunks.extend(iter(stream.readline, b"")),
                              daemon=True)
    reader.start()
    try:
        _wait_for(work / "console.log", "streaming commands", proc, 90.0)
        # The demo names the page once its monitor has heard the console, a moment after the
        # console streams; Ctrl-C before that would stop a demo that had not named it yet.
        wait_until(lambda: b"surgeon console page: " in b"".join(chunks) or proc.poll() is not None,
                   "the demo to print the console page's URL", 90.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        stream.close()
    err = b"".join(chunks)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err
    data = json.loads(summary.read_text())
    control = data["control"]
    assert control["sent"] > 0
    # The nodes stop together: what the console sent after the patient stopped listening
    # was never lost on the way, only unheard; of the rest nothing may go missing.
    unheard = control["unreceived_at_stop"]
    assert unheard is not None
    assert 0 <= unheard < control["sent"]
    assert control["applied"] >= 0.99 * (control["sent"] - unheard), json.dumps(control)
    assert b"summary written to" in err
    # The console page's URL, with the console's secret, as the console printed it; the
    # logs that hold it are the user's alone.
    console_log = work / "console.log"
    url = announced_url(console_log.read_text(errors="replace"))
    assert url is not None
    assert "?token=" in url
    assert f"surgeon console page: {url}" in err.decode(errors="replace")
    assert console_log.stat().st_mode & 0o077 == 0
    # No node outlives the demo: every child's command line names the work folder.
    left = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True,
                          check=False)
    assert left.stdout.strip() == "", f"processes left behind: {left.stdout}"
