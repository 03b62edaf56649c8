"""Fixtures shared by every test folder: free loopback ports, Zenoh session pairs and a
headless browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh

from telesurgery.config import ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.transport.session import open_session


@pytest.fixture
def loopback_endpoint() -> str:
    """A tcp/ locator on 127.0.0.1 that nothing listens on yet."""
    return f"tcp/127.0.0.1:{free_port()}"


@pytest.fixture
def zenoh_pair(loopback_endpoint: str) -> Iterator[tuple[zenoh.Session, zenoh.Session]]:
    """Two real peer sessions on loopback: the first listens, the second connects to it."""
    a = open_session(ZenohConfig(listen=[loopback_endpoint], gossip=False))
    b = open_session(ZenohConfig(connect=[loopback_endpoint], gossip=False))
    try:
        yield a, b
    finally:
        b.close()
        a.close()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system's Chromium, headless, through Playwright (nothing is downloaded)."""
    if not CHROMIUM.exists():
        pytest.skip("the system Chromium (/usr/bin/chromium) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    from telesurgery.bench.page import CHROMIUM_ARGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()
