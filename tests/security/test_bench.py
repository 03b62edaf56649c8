"""The TLS-versus-TCP round-trip benchmark runs end to end and reports what it measured."""

from __future__ import annotations

import pytest

from telesurgery.security.bench import MODES, bench_tls


@pytest.mark.integration
def test_bench_measures_every_mode() -> None:
    result = bench_tls(duration_s=0.5, rate_hz=200.0, rounds=1)
    assert set(result["modes"]) == set(MODES)
    for mode in MODES:
        m = result["modes"][mode]
        assert m["sent"] >= 50, mode
        # Loopback loses nothing; a few late pongs on a loaded machine are tolerated.
        assert m["received"] >= 0.9 * m["sent"], mode
        assert m["rtt_ms"]["count"] == m["received"]
        assert 0.0 < m["rtt_ms"]["p50"] <= m["rtt_ms"]["p99"] <= m["rtt_ms"]["max"]
