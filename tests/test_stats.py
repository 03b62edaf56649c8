"""Percentile summaries against NumPy's own percentile (the reference they replace)."""

from __future__ import annotations

import threading

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from telesurgery.stats import FOLD_AT, KEEP_RAW, PERCENTILES, Samples, summarize

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


def test_a_long_record_folds_into_bounded_memory_within_half_a_percent() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.lognormal(12.0, 1.0, 60_000), -rng.exponential(1e3, 40_000)])
    rng.shuffle(values)
    s = Samples()
    for v in values:
        s.add(float(v))
    assert len(s) == values.size
    assert len(s.values()) < FOLD_AT  # the rest is folded
    assert len(s.values(last=KEEP_RAW)) == KEEP_RAW  # live views still reach back
    out, exact = s.summary(1e-6, digits=9), summarize(values, 1e-6, digits=9)
    assert out["count"] == exact["count"]
    assert out["max"] == exact["max"]
    for name in PERCENTILES:
        assert abs(out[name] - exact[name]) <= 0.006 * abs(exact[name]) + 1e-9, (
            name, out[name], exact[name])


def test_samples_added_from_many_threads_during_folds_are_all_counted() -> None:
    s = Samples()
    per_thread = FOLD_AT * 2

    def feed(offset: float) -> None:
        for i in range(per_thread):
            s.add(offset + i)

    threads = [threading.Thread(target=feed, args=(k * 1e7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60.0)
        assert not t.is_alive()
    assert len(s) == 4 * per_thread
    assert s.summary()["count"] == 4 * per_thread
    assert s.summary()["max"] == 3e7 + per_thread - 1


def test_extend_records_every_value_and_folds_past_the_mark() -> None:
    s = Samples()
    chunk = np.arange(1.0, 1001.0)
    for _ in range(FOLD_AT // 1000 + 10):
        s.extend(chunk)
    assert len(s) == (FOLD_AT // 1000 + 10) * 1000
    assert len(s.values()) < FOLD_AT
    out = s.summary()
    assert out["max"] == 1000.0
    assert abs(out["p50"] - 500.0) <= 0.006 * 500.0
