"""The security benchmarks run end to end and report what they measured."""

from __future__ import annotations

import pytest

from telesurgery.bench.security import MODES, bench_tags, bench_tls


@pytest.mark.integration
def test_bench_measures_every_mode() -> None:
    result = bench_tls(duration_s=1.0, rate_hz=200.0, rounds=1)
    assert set(result["modes"]) == set(MODES)
    for mode in MODES:
        m = result["modes"][mode]
        assert m["sent"] >= 50, mode
        # Loopback loses nothing; a few late pongs on a loaded machine are tolerated.
        assert m["received"] >= 0.9 * m["sent"], mode
        assert m["rtt_ms"]["count"] == m["received"]
        assert 0.0 < m["rtt_ms"]["p50"] <= m["rtt_ms"]["p99"] <= m["rtt_ms"]["max"]


def test_tag_bench_reports_each_stage_per_message() -> None:
    result = bench_tags(batches=3)
    per = result["us_per_message"]
    assert set(per) == {"encode", "seal", "decode", "verify"}
    for stage in per.values():
        assert stage["count"] == 3
        assert 0.0 < stage["p50"] <= stage["max"]
    assert set(result["tag_cost_us"]) == {"send", "receive"}
