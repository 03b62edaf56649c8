"""Each site of a one-machine session on its own CPUs (``demo --pin-sites``)."""

from __future__ import annotations

import os
import subprocess
import sys

from telesurgery.demo.processes import PATIENT_SITE, SURGEON_SITE, pin, site_cpus


def test_the_sites_split_the_cpus_in_halves() -> None:
    cpus = frozenset({0, 1, 2, 3})
    assert site_cpus(PATIENT_SITE, cpus) == {0, 1}
    assert site_cpus(SURGEON_SITE, cpus) == {2, 3}
    assert site_cpus(PATIENT_SITE, frozenset({4, 7})) == {4}
    assert site_cpus(SURGEON_SITE, frozenset({4, 7})) == {7}
    # One CPU: both sites share it rather than one going without.
    assert site_cpus(PATIENT_SITE, frozenset({3})) == site_cpus(SURGEON_SITE, frozenset({3}))


def test_a_pinned_process_and_the_threads_it_starts_run_on_its_cpus() -> None:
    cpus = site_cpus(SURGEON_SITE)
    # The child starts a thread after it has been pinned and prints that thread's CPUs.
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, threading\n"
         "sys.stdin.readline()\n"
         "t = threading.Thread(target=lambda: print(sorted(os.sched_getaffinity(0))))\n"
         "t.start(); t.join()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pin(child.pid, cpus)
        assert os.sched_getaffinity(child.pid) == cpus
        out, _ = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.strip() == str(sorted(cpus))


def test_pinning_a_process_that_is_gone_is_no_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pin(child.pid, site_cpus(PATIENT_SITE))
