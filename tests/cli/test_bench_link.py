"""``telesurgery bench link`` runs the emulator accuracy benchmark and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_link_writes_the_emulator_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "link.json"
    result = subprocess.run([sys.executable, "-m", "telesurgery", "bench", "link",
                             "--duration", "1.5", "--json", str(out)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    for proto in ("udp", "tcp"):
        for kind in ("control", "video"):
            r = data[proto][kind]
            assert r["received"] == r["sent"] > 0
            assert r["error_ms"]["min"] >= 0.0, "released before its time"
    assert data["target"]["error_p99_ms"] == 0.5
    assert isinstance(data["within_target"], bool)
