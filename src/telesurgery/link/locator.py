"""Endpoints written as Zenoh locators (``udp/127.0.0.1:7447``, ``tcp/[::1]:7447``) and the
precise event loop the link tools run on.

asyncio's default selector (epoll) rounds its timeout up to whole milliseconds, so
its timers fire up to 1 ms late; ``select()`` takes microseconds, and with a 1 ns
timer slack the same timers fire within tens of microseconds. Every link tool
therefore runs on ``precise_loop()``.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
from dataclasses import dataclass
from typing import Literal

from telesurgery.clock import set_timer_slack
from telesurgery.errors import ConfigError

Protocol = Literal["udp", "tcp"]


@dataclass(frozen=True, slots=True)
class Locator:
    """A transport endpoint: protocol, host (IP address or name) and port."""

    protocol: Protocol
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, allowed: tuple[Protocol, ...] = ("udp", "tcp")) -> Locator:
        """Parse ``proto/host:port``; ``ConfigError`` saying what is expected otherwise."""
        proto, sep, rest = text.partition("/")
        host, colon, port_text = rest.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not colon or not host or proto not in allowed:
            raise ConfigError(
                f"{text!r} is not an endpoint like '{allowed[0]}/127.0.0.1:7447' "
                f"(protocol {' or '.join(allowed)})"
            )
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise ConfigError(f"{text!r}: port must be a number from 0 to 65535")
        return cls(proto, host, port)

    @property
    def family(self) -> socket.AddressFamily:
        """The socket address family of ``host``."""
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` as sockets take it."""
        return (self.host, self.port)

    def with_port(self, port: int) -> Locator:
        """The same endpoint on another port (e.g. the one the OS chose for port 0)."""
        return Locator(self.protocol, self.host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}/{host}:{self.port}"


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire within tens of microseconds (call it in its thread)."""
    set_timer_slack(1)
    return asyncio.SelectorEventLoop(selectors.SelectSelector())
