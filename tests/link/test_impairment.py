"""The pure impairment model: exact statistics with seeded generators."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from pydantic import ValidationError

from telesurgery.link.impairment import (
    NS_PER_MS,
    NS_PER_S,
    DropReason,
    GilbertElliott,
    Impairment,
    ImpairmentModel,
)

MS = NS_PER_MS


def _run(model: ImpairmentModel, n: int, period_ns: int, size: int = 100) -> list[tuple[int, ...]]:
    return [model.decide(i * period_ns, size).releases_ns for i in range(n)]


def test_default_spec_is_transparent() -> None:
    model = ImpairmentModel(Impairment(), seed=1)
    assert _run(model, 100, MS) == [(i * MS,) for i in range(100)]


def test_fixed_delay_is_exact() -> None:
    model = ImpairmentModel(Impairment(delay_ms=49.0), seed=1)
    assert _run(model, 100, 333_333) == [(i * 333_333 + 49 * MS,) for i in range(100)]


def test_random_loss_matches_its_probability() -> None:
    n, p = 100_000, 0.05
    model = ImpairmentModel(Impairment(loss=p), seed=7)
    verdicts = [model.decide(i * MS, 100) for i in range(n)]
    lost = [v for v in verdicts if not v.releases_ns]
    assert {v.dropped for v in lost} == {DropReason.LOSS}
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(len(lost) / n - p) < 5 * sigma


def _bursts(delivered: list[bool]) -> list[int]:
    runs, run = [], 0
    for ok in delivered:
        if ok:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    return runs


def test_gilbert_elliott_mean_loss_and_burst_length() -> None:
    ge = GilbertElliott(p_enter_bad=0.01, p_leave_bad=0.25)
    model = ImpairmentModel(Impairment(burst_loss=ge), seed=3)
    n = 400_000
    delivered = [bool(model.decide(i * MS, 100).releases_ns) for i in range(n)]
    loss = 1 - sum(delivered) / n
    assert ge.mean_loss == pytest.approx(0.01 / 0.26)
    assert loss == pytest.approx(ge.mean_loss, rel=0.05)
    bursts = _bursts(delivered)
    assert statistics.fmean(bursts) == pytest.approx(1 / ge.p_leave_bad, rel=0.05)
    # Burst lengths are geometric: a burst of one ends at its first step.
    assert bursts.count(1) / len(bursts) == pytest.approx(ge.p_leave_bad, rel=0.1)


def test_random_loss_alone_has_no_bursts_beyond_chance() -> None:
    model = ImpairmentModel(Impairment(loss=0.0385), seed=3)
    delivered = [bool(model.decide(i * MS, 100).releases_ns) for i in range(200_000)]
    # Independent loss: mean run 1 / (1 - p) ~ 1.04, far below the 4 of the chain above.
    assert statistics.fmean(_bursts(delivered)) < 1.1


def test_jitter_distribution_has_the_asked_mean_and_deviation() -> None:
    spec = Impairment(delay_ms=10.0, jitter_ms=1.0, reorder=True)
    model = ImpairmentModel(spec, seed=11)
    n = 50_000
    delays = [(r[0] - i * 100 * MS) / MS for i, r in enumerate(_run(model, n, 100 * MS))]
    assert statistics.fmean(delays) == pytest.approx(10.0, abs=5 / math.sqrt(n))
    assert statistics.stdev(delays) == pytest.approx(1.0, rel=0.03)


def test_jitter_never_makes_the_delay_negative() -> None:
    model = ImpairmentModel(Impairment(delay_ms=1.0, jitter_ms=5.0, reorder=True), seed=2)
    delays = [r[0] - i * 10 * MS for i, r in enumerate(_run(model, 10_000, 10 * MS))]
    assert min(delays) == 0
    assert max(delays) > 10 * MS


def _inversions(releases: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(releases) if b < a)


@pytest.mark.parametrize("reorder", [False, True])
def test_reordering_only_when_allowed(reorder: bool) -> None:
    spec = Impairment(delay_ms=20.0, jitter_ms=5.0, reorder=reorder)
    releases = [r[0] for r in _run(ImpairmentModel(spec, seed=5), 5_000, MS // 2)]
    if reorder:
        assert _inversions(releases) > 100
    else:
        assert _inversions(releases) == 0


def test_correlated_jitter_follows_its_time_constant() -> None:
    period, tau = MS, 10.0
    spec = Impairment(delay_ms=50.0, jitter_ms=2.0, jitter_correlation_ms=tau, reorder=True)
    jit = [r[0] - i * period - 50 * MS for i, r in
           enumerate(_run(ImpairmentModel(spec, seed=9), 100_000, period))]
    assert statistics.stdev(jit) / MS == pytest.approx(2.0, rel=0.05)
    lag1 = statistics.correlation(jit[:-1], jit[1:])
    assert lag1 == pytest.approx(math.exp(-1.0 / tau), abs=0.01)


def test_bandwidth_cap_paces_and_tail_drops() -> None:
    # 8 Mbit/s: 1000 bytes take exactly 1 ms; a 10 ms queue takes ten of them.
    model = ImpairmentModel(Impairment(delay_ms=5.0, rate_mbit_s=8.0, queue_ms=10.0), seed=1)
    verdicts = [model.decide(0, 1000) for _ in range(20)]
    kept = [v.releases_ns[0] for v in verdicts if v.releases_ns]
    assert kept == [(k + 1) * MS + 5 * MS for k in range(10)]
    assert [v.dropped for v in verdicts[10:]] == [DropReason.QUEUE_FULL] * 10
    # Once drained, the link takes packets again without queueing.
    assert model.decide(100 * MS, 1000).releases_ns == (101 * MS + 5 * MS,)


def test_traffic_under_the_cap_is_not_queued() -> None:
    model = ImpairmentModel(Impairment(rate_mbit_s=8.0), seed=1)
    assert _run(model, 100, 2 * MS, 1000) == [(i * 2 * MS + MS,) for i in range(100)]


def test_an_empty_queue_always_takes_one_packet() -> None:
    model = ImpairmentModel(Impairment(rate_mbit_s=1.0, queue_ms=1.0), seed=1)
    assert model.decide(0, 20_000).releases_ns == (160 * MS,)
    assert model.decide(1, 100).dropped is DropReason.QUEUE_FULL


def test_duplicates_follow_their_original() -> None:
    model = ImpairmentModel(Impairment(delay_ms=3.0, duplicate=0.1), seed=4)
    verdicts = _run(model, 50_000, MS)
    twice = [r for r in verdicts if len(r) == 2]
    assert len(twice) / len(verdicts) == pytest.approx(0.1, abs=5 * math.sqrt(0.09 / 50_000))
    assert all(a <= b for a, b in twice)


def test_scheduled_outage_drops_then_recovers() -> None:
    start = 7 * NS_PER_S
    model = ImpairmentModel(Impairment(delay_ms=1.0, outages=((1.0, 0.5),)), seed=1,
                            start_ns=start)
    at = [start + round(t * NS_PER_S) for t in (0.999, 1.0, 1.25, 1.4999, 1.5)]
    verdicts = [model.decide(t, 100) for t in at]
    assert [v.dropped for v in verdicts] == [None, DropReason.OUTAGE, DropReason.OUTAGE,
                                             DropReason.OUTAGE, None]
    assert verdicts[-1].releases_ns == (at[-1] + MS,)


def test_cut_and_restore() -> None:
    model = ImpairmentModel(Impairment(), seed=1)
    model.set_cut(True)
    assert model.decide(0, 100).dropped is DropReason.CUT
    assert not model.is_open(0)
    model.set_cut(False)
    assert model.decide(1, 100).releases_ns == (1,)


def test_reliable_stream_turns_loss_into_retransmission_delay() -> None:
    spec = Impairment(delay_ms=10.0, loss=0.3, duplicate=0.5, jitter_ms=3.0)
    model = ImpairmentModel(spec, seed=8, reliable=True)
    releases = _run(model, 10_000, MS)
    assert all(len(r) == 1 for r in releases)
    flat = [r[0] for r in releases]
    assert _inversions(flat) == 0
    delays = [(t - i * MS) / MS for i, t in enumerate(flat)]
    # A lost chunk waits one round trip (2 x 10 ms) more, and holds up those behind it.
    assert max(delays) > 25.0


def test_reliable_stream_waits_out_an_outage() -> None:
    model = ImpairmentModel(Impairment(delay_ms=2.0, outages=((0.0, 0.1),)), reliable=True)
    assert model.decide(50 * MS, 100).releases_ns == (100 * MS + 2 * MS,)


def test_same_seed_same_decisions() -> None:
    spec = Impairment(delay_ms=5.0, jitter_ms=2.0, loss=0.1, duplicate=0.05,
                      burst_loss=GilbertElliott(p_enter_bad=0.01, p_leave_bad=0.3))
    a = _run(ImpairmentModel(spec, seed=42), 5_000, MS)
    b = _run(ImpairmentModel(spec, seed=42), 5_000, MS)
    c = _run(ImpairmentModel(spec, seed=43), 5_000, MS)
    assert a == b
    assert a != c


@pytest.mark.parametrize("bad", [{"loss": 1.5}, {"delay_ms": -1.0}, {"queue_ms": 0.0},
                                 {"delay": 3.0}, {"burst_loss": {"p_enter_bad": 0.1}}])
def test_invalid_specs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Impairment.model_validate(bad)
