"""CPU time of a process tree, per process and per OS thread name, read from ``/proc``.

Two snapshots of ``utime + stime`` (``/proc/<pid>/stat`` and ``/proc/<pid>/task/<tid>/stat``)
taken at the ends of a measured window give each process's and each thread's share of
a core over it. Threads are known by their OS name (``/proc/<pid>/task/<tid>/comm``,
which ``clock.name_os_thread`` sets for ours) and grouped by it. A process that started
inside the window counts from zero; one that ended inside it is missing from the second
snapshot, and its time with it (``ProcessCpu`` lists only those alive at the end).
Linux only: elsewhere a snapshot is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")
TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""The unit of ``utime`` and ``stime`` in ``/proc/<pid>/stat`` [1/s] (100 on Linux)."""


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of one ``/proc/.../stat`` line used here: name, parent, CPU [ticks]."""

    comm: str
    ppid: int
    ticks: int


def read_stat(path: Path) -> Stat | None:
    """``path`` (a ``stat`` file) parsed; None when the process or thread is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    # The name sits in parentheses and may itself hold spaces or ')': split at the last.
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    # fields[0] is proc(5)'s field 3 (state): ppid is field 4, utime 14, stime 15.
    return Stat(head.partition("(")[2], int(fields[1]), int(fields[11]) + int(fields[12]))


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """One process at one instant: its command line, CPU [ticks] and its threads'."""

    pid: int
    at_ns: int
    """When it was read [ns, monotonic]: on a loaded machine reading a whole tree takes
    long enough that one instant for all would misstate each process's span."""
    stat: Stat
    cmdline: tuple[str, ...]
    threads: dict[int, Stat]
    """Thread id -> its stat (``comm`` the thread's OS name)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every process of a tree, read from ``at_ns`` [ns, monotonic] on."""

    at_ns: int
    processes: dict[int, ProcessTimes]


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)


def _threads(pid: int) -> dict[int, Stat]:
    out = {}
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return {}
    for task in tasks:
        st = read_stat(task / "stat") if task.name.isdigit() else None
        if st is not None:
            out[int(task.name)] = st
    return out


def subtree(root: int, parents: Iterable[tuple[int, int]]) -> list[int]:
    """``root`` and every process below it (children, theirs, ...), ``root`` first, from
    ``(pid, ppid)`` pairs."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents:
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def descendants(root: int) -> list[int]:
    """``root`` and every process below it now (``subtree`` of ``/proc``), ``root`` first."""
    try:
        entries = [e for e in PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return [root]
    stats = ((int(e.name), read_stat(e / "stat")) for e in entries)
    return subtree(root, ((pid, st.ppid) for pid, st in stats if st is not None))


def snapshot(root: int) -> Snapshot:
    """CPU times of ``root``'s tree now (a process gone while being read is left out)."""
    at = time.monotonic_ns()
    procs = {}
    for pid in descendants(root):
        read_at = time.monotonic_ns()
        st = read_stat(PROC / str(pid) / "stat")
        if st is not None:
            procs[pid] = ProcessTimes(pid, read_at, st, _cmdline(pid), _threads(pid))
    return Snapshot(at, procs)


@dataclass(frozen=True, slots=True)
class ThreadGroup:
    """Threads of one process sharing an OS name: their cores together, how many."""

    cores: float
    count: int


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    """One process's share of a core over a window [cores], and its threads' by name."""

    pid: int
    ppid: int
    comm: str
    cmdline: tuple[str, ...]
    cores: float
    threads: dict[str, ThreadGroup] = field(default_factory=dict)


def _since(before: Stat | None, after: Stat) -> int:
    """Ticks from ``before`` to ``after``; all of ``after`` for one born in between (or a
    reused id, whose count restarted)."""
    if before is None or before.ticks > after.ticks:
        return after.ticks
    return after.ticks - before.ticks


def usage(first: Snapshot, last: Snapshot) -> list[ProcessCpu]:
    """Each process alive at ``last``: cores [CPU s / s] used since ``first`` (over the
    span between its own two readings; from ``first``'s start for one born since), with
    its threads grouped by OS name; busiest first."""
    if last.at_ns <= first.at_ns:
        return []
    out = []
    for pid, now in last.processes.items():
        then = first.processes.get(pid)
        span_ns = now.at_ns - (then.at_ns if then else first.at_ns)
        if span_ns <= 0:
            continue
        scale = 1e9 / (TICKS_PER_S * span_ns)
        ticks: dict[str, list[int]] = {}
        for tid, st in now.threads.items():
            group = ticks.setdefault(st.comm, [0, 0])
            group[0] += _since(then.threads.get(tid) if then else None, st)
            group[1] += 1
        threads = {name: ThreadGroup(round(t * scale, 4), n)
                   for name, (t, n) in sorted(ticks.items(), key=lambda kv: -kv[1][0])}
        out.append(ProcessCpu(pid, now.stat.ppid, now.stat.comm, now.cmdline,
                              round(_since(then.stat if then else None, now.stat) * scale, 4),
                              threads))
    return sorted(out, key=lambda p: -p.cores)


__all__ = ["TICKS_PER_S", "ProcessCpu", "ProcessTimes", "Snapshot", "Stat", "ThreadGroup",
           "descendants", "read_stat", "snapshot", "subtree", "usage"]
