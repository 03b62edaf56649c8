"""``telesurgery demo`` is secure by default, and says so loudly when asked not to be."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TAG_REASONS = ("untagged", "bad_tag", "unknown_key", "replayed")


def _demo(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], str]:
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "telesurgery", "demo", "--headless", "--duration", "3",
         "--no-video", "--summary", str(summary), "--workdir", str(tmp_path / "run"),
         *extra], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    data: dict[str, Any] = json.loads(summary.read_text())
    return data, proc.stderr


def test_the_demo_runs_mutual_tls_and_tagged_commands_by_default(tmp_path: Path) -> None:
    data, err = _demo(tmp_path)
    sec = data["security"]
    assert sec["mtls"] is True
    assert sec["insecure"] is False
    assert sec["command_tags"] is True
    assert sec["owner"] == "surgeon:dr-rossi"
    assert sec["keys_agreed"] == 1
    assert sec["offers_refused"] == {"session_taken": 0, "identity_in_use": 0, "superseded": 0}
    assert "INSECURE" not in err
    control = data["control"]
    assert control["applied"] > 0
    # Every command the console sent carried a valid tag (a short run on a loaded machine
    # may lose or hold a few for other reasons: what is checked here is the tags).
    assert not set(TAG_REASONS) & set(control["rejected_by_reason"])
    # The throwaway PKI sits in the work folder, keys private.
    key = tmp_path / "run" / "security" / "pki" / "robot" / "patient" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0


def test_insecure_is_explicit_red_and_recorded(tmp_path: Path) -> None:
    data, err = _demo(tmp_path, "--insecure")
    sec = data["security"]
    # Without certificates a console is named by the role it claims and its session id.
    assert re.fullmatch(r"surgeon:[0-9a-f]{16}", sec.pop("owner"))
    assert sec | {"mtls": False, "insecure": True, "command_tags": False, "plain_paths": [],
                  "keys_agreed": 0, "offers_refused": {}} == sec
    assert "INSECURE: plain TCP" in err
    assert data["control"]["applied"] > 0
    assert not (tmp_path / "run" / "security").exists()
