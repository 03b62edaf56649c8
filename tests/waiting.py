"""Waiting on a condition with a generous deadline, never on a fixed pause."""

from __future__ import annotations

import threading
from collections.abc import Callable

from telesurgery.clock import now_ns


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Return once ``predicate()`` holds; fail the test naming ``what`` after
    ``timeout_s`` [s]. Polls every 10 ms: the conditions waited on (a count, a pose, a
    node listening) have no event of their own to wait on."""
    tick = threading.Event()
    deadline = now_ns() + int(timeout_s * 1e9)
    while not predicate():
        assert now_ns() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        tick.wait(0.01)
