"""Fixtures shared by every test folder: free loopback ports and Zenoh session pairs."""

from __future__ import annotations

from collections.abc import Iterator

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
