"""Waiting on a condition with a generous deadline, never on a fixed pause."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from telesurgery.clock import now_ns


def wait_until(predicate: Callable[[], bool], what: str | Callable[[], str],
               timeout_s: float) -> None:
    """Return once ``predicate()`` holds; fail the test naming ``what`` (or what it returns,
    built only then) after ``timeout_s`` [s]. Polls every 10 ms: the conditions waited on
    (a count, a pose, a node listening) have no event of their own to wait on."""
    tick = threading.Event()
    deadline = now_ns() + int(timeout_s * 1e9)
    while not predicate():
        if now_ns() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for "
                        f"{what() if callable(what) else what}")
        tick.wait(0.01)
