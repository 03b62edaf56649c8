"""``bench soak``'s arithmetic: memory growth, late ticks against the machine's stalls."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from telesurgery.bench import soak
from telesurgery.bench.stallprobe import run_probe
from telesurgery.clock import LATE_TICK_NS, LATE_TICKS_KEPT, LateTicks

MS = 1_000_000


def test_growth_compares_the_last_window_with_the_first_after_warm_up() -> None:
    # Start-up climbs to 100, then a leak adds 1 a second: the warm-up is left out.
    series = [(0.0, 10.0), (5.0, 50.0)] + [(float(t), 90.0 + t) for t in range(10, 101)]
    # First window t 10..20 (mean 105), last window t 90..100 (mean 185).
    assert soak.growth(series, warmup_s=10.0, window_s=10.0) == pytest.approx(80 / 105)
    flat = [(float(t), 100.0) for t in range(0, 101)]
    assert soak.growth(flat, warmup_s=10.0, window_s=10.0) == 0.0
    # First window t 0..10 (mean 195), last t 90..100 (mean 105).
    shrinking = [(float(t), 200.0 - t) for t in range(0, 101)]
    assert soak.growth(shrinking, warmup_s=0.0, window_s=10.0) == pytest.approx(-90 / 195)


def test_growth_needs_two_samples_after_warm_up_and_a_base_above_zero() -> None:
    assert soak.growth([(0.0, 1.0), (5.0, 2.0)], warmup_s=4.0, window_s=1.0) is None
    assert soak.growth([(5.0, 0.0), (6.0, 2.0)], warmup_s=0.0, window_s=0.5) is None
    assert soak.growth([], warmup_s=0.0, window_s=1.0) is None


def test_the_slope_is_per_hour_after_warm_up() -> None:
    series = [(0.0, 0.0)] + [(float(t), 10.0 + 0.5 * t) for t in range(10, 20)]
    assert soak.slope_per_hour(series, 10.0) == pytest.approx(1800.0)
    assert soak.slope_per_hour([(1.0, 1.0), (1.0, 2.0)], 0.0) is None


def test_short_runs_sample_often_and_warm_up_for_a_fifth_of_the_run() -> None:
    assert soak.sample_every(3600.0) == 5.0
    assert soak.sample_every(10.0) == 0.5
    assert soak.warmup(3600.0) == 60.0
    assert soak.warmup(10.0) == 2.0


def test_a_gap_runs_from_the_previous_tick_to_the_late_one() -> None:
    # A 1 kHz tick at 100 ms whose period ran 6 ms over: the tick before began at 93 ms.
    assert soak.gaps([100 * MS], [6 * MS], 1e6) == [(93 * MS, 100 * MS)]


def test_a_miss_is_the_machines_only_where_a_stall_overlaps_it() -> None:
    stalls = [(10 * MS, 17 * MS), (50 * MS, 60 * MS)]
    misses = [(12 * MS, 20 * MS),   # overlaps the first stall
              (30 * MS, 37 * MS),   # between the stalls
              (17 * MS + MS // 2, 25 * MS),  # just after the first, within the slack
              (61 * MS + MS // 2, 70 * MS),  # after the last, beyond the slack
              (0, 9 * MS + MS // 2)]  # just before the first, within the slack
    assert soak.coincide(misses, stalls, slack_ns=MS) == [True, False, True, False, True]
    assert soak.coincide(misses, [], slack_ns=MS) == [False] * 5


def _late(ticks: list[tuple[int, int]]) -> dict[str, Any]:
    late = LateTicks()
    for at, err in ticks:
        late.add(at, err)
    return late.report()


def test_misses_are_set_beside_the_probe_and_counted_after_warm_up() -> None:
    began = 1000 * MS
    patient = {"servo": {"rate_hz": 1000.0,
                         "late": _late([(began - 500 * MS, 20 * MS),   # start-up, alone
                                        (began + 3000 * MS, 8 * MS),   # with a stall
                                        (began + 4000 * MS, 6 * MS)])}}  # alone
    console: dict[str, Any] = {"loop": {"rate_hz": 1000.0}}  # an older console: no count
    probe = _late([(began + 2995 * MS, 7 * MS)])
    out = soak.misses_section({"patient": patient, "console": console}, probe, began,
                              warmup_s=2.0)
    servo = out["patient_servo"]
    assert (servo["count"], servo["with_machine_stall"], servo["without_machine_stall"],
            servo["after_warmup"], servo["worst_ms"]) == (3, 1, 2, 2, 20.0)
    assert [m["machine_stall"] for m in servo["listed"]] == [False, True, False]
    assert servo["listed"][0]["at_s"] == -0.5
    assert out["console_loop"]["count"] is None
    assert "no late ticks" in out["console_loop"]["reason"]


def test_late_ticks_keep_their_times_up_to_a_bound_and_count_on() -> None:
    late = LateTicks()
    for i in range(LATE_TICKS_KEPT + 5):
        late.add(i, LATE_TICK_NS + 1)
    report = late.report()
    assert report["count"] == LATE_TICKS_KEPT + 5
    assert len(report["at_ns"]) == len(report["error_ms"]) == LATE_TICKS_KEPT
    assert report["over_ms"] == 5.0


def test_memory_section_per_node() -> None:
    series = {"patient": [soak.ProcSample(float(t), 1024 * (100 + t), 30 + t // 50)
                          for t in range(0, 101)]}
    out = soak.memory_section(series, warmup_s=0.0, window_s=10.0)
    rss, fds = out["rss"]["patient"], out["fds"]["patient"]
    assert (rss["first_mib"], rss["last_mib"], rss["max_mib"]) == (100.0, 200.0, 200.0)
    assert rss["growth"] == pytest.approx(90 / 105, abs=1e-4)
    assert rss["slope_mib_per_h"] == pytest.approx(3600.0)
    assert (fds["first"], fds["last"], fds["max"]) == (30, 32, 32)


def test_read_proc_reads_this_process_and_none_for_one_gone() -> None:
    got = soak.read_proc(os.getpid())
    assert got is not None
    rss_kib, fds = got
    assert rss_kib > 1000
    assert fds >= 3
    assert soak.read_proc(2**22 + 1) is None  # above Linux's largest process id


def test_the_probe_reports_its_ticks_when_stopped() -> None:
    stop = threading.Event()
    stop.set()  # one pass: nothing to wait for, the report's shape is what is checked
    reports: list[dict[str, Any]] = []
    # A thread of its own, as in the probe's process: the loop asks for real-time
    # priority, which every process this test run starts afterwards would inherit.
    worker = threading.Thread(target=lambda: reports.append(run_probe(stop)))
    worker.start()
    worker.join(timeout=60.0)
    assert not worker.is_alive()
    report = reports[0]
    assert report["late"]["count"] == 0
    assert report["rate_hz"] == 1000.0
    assert isinstance(report["realtime"], bool)
