"""Percentile summaries against NumPy's own percentile (the reference they replace)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.stats import PERCENTILES, Samples, summarize

_FINITE = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@given(st.lists(_FINITE, min_size=1, max_size=300),
       st.sampled_from([1.0, 1e-3, 1e-6, -2.5]))
def test_summary_matches_numpy_linear_percentiles(values: list[float], scale: float) -> None:
    v = np.array(values, dtype=np.float64)
    out = summarize(v, scale, digits=12)
    for name, q in PERCENTILES.items():
        expected = float(np.percentile(v * scale, q))
        assert abs(out[name] - expected) <= 1e-9 * max(1.0, abs(expected)), \
            (name, out[name], expected)
    assert out["max"] == round(float((v * scale).max()), 12)
    assert out["count"] == len(values)


def test_an_empty_buffer_reports_nothing() -> None:
    assert Samples().summary() == {}
    assert summarize(np.array([], dtype=np.float64)) == {}


def test_live_window_covers_the_last_samples_only() -> None:
    s = Samples()
    for x in range(100):
        s.add(float(x))
    assert s.summary(last=10) == {"p50": 94.5, "p99": 98.91, "p999": 98.991, "max": 99.0,
                                  "count": 10}
