"""CPU per process and per thread name from /proc snapshots."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from telesurgery.bench import cpu
from telesurgery.clock import name_os_thread


def test_a_stat_line_with_spaces_and_parentheses_in_the_name_parses(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # Fields after the name: state, ppid, ... utime (14th), stime (15th).
    stat.write_text("42 (a (b) c) S 7 1 1 0 -1 0 0 0 0 0 120 30 0 0 20 0 1 0\n")
    assert cpu.read_stat(stat) == cpu.Stat("a (b) c", 7, 150)
    assert cpu.read_stat(tmp_path / "gone") is None


def _times(pid: int, ppid: int, ticks: int, threads: dict[int, tuple[str, int]],
           at_ns: int) -> cpu.ProcessTimes:
    return cpu.ProcessTimes(pid, at_ns, cpu.Stat("p", ppid, ticks), ("p",),
                            {tid: cpu.Stat(name, pid, t) for tid, (name, t) in threads.items()})


def test_usage_is_the_difference_over_the_window_grouped_by_thread_name() -> None:
    tick = cpu.TICKS_PER_S
    first = cpu.Snapshot(0, {10: _times(10, 1, 5 * tick, {10: ("main", 5 * tick),
                                                          11: ("rx", 0)}, 0)})
    # Two seconds later: 10 busy one core (main 0.5, two rx threads 0.25 each, one of them
    # born in the window); 20 born in the window, half a core over the window, read half
    # a second after the snapshot began (its span runs to its own reading).
    last = cpu.Snapshot(2_000_000_000, {
        10: _times(10, 1, 7 * tick, {10: ("main", 6 * tick), 11: ("rx", tick // 2),
                                     12: ("rx", tick // 2)}, 2_000_000_000),
        20: _times(20, 10, tick * 5 // 4, {20: ("child", tick * 5 // 4)}, 2_500_000_000)})
    by_pid = {p.pid: p for p in cpu.usage(first, last)}
    assert by_pid[10].cores == 1.0
    assert by_pid[10].threads == {"main": cpu.ThreadGroup(0.5, 1), "rx": cpu.ThreadGroup(0.5, 2)}
    assert by_pid[20].cores == 0.5
    assert [p.pid for p in cpu.usage(first, last)] == [10, 20], "busiest first"
    assert cpu.usage(last, last) == []


def test_a_snapshot_of_this_process_sees_its_named_threads() -> None:
    ready, done = threading.Event(), threading.Event()

    def spin() -> None:
        name_os_thread("cpu-test-spin")
        ready.set()
        done.wait(10.0)

    t = threading.Thread(target=spin)
    t.start()
    try:
        assert ready.wait(10.0)
        snap = cpu.snapshot(os.getpid())
    finally:
        done.set()
        t.join(10.0)
    assert not t.is_alive(), "the spinning thread did not end within 10 s"
    assert os.getpid() in cpu.descendants(os.getpid())
    mine = snap.processes[os.getpid()]
    assert "cpu-test-spin" in {st.comm for st in mine.threads.values()}
    assert mine.stat.ticks >= 0
