"""Each site in its own Linux network namespace, joined only through the WAN emulators.

For a deployment run on one machine (``demo --sites``): a namespace per site holds the
site's address on one end of a veth pair whose other end stays in this (the host's)
namespace with a link-local address of its own. Each side has one route, to the other
end's address: a site can reach the host end of its own veth, where the link emulators
listen, and nothing else. No site has a route to another site, so whatever the host
forwards, the only way from Rome to Beijing is through an emulator.

Needs root (``CAP_NET_ADMIN``) and the ``ip`` tool (iproute2); ``NamespaceError`` says
so in one line where either is missing.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from telesurgery.errors import ConfigError

HOST_NET = ipaddress.ip_network("169.254.77.0/24")
"""The host ends' addresses: link-local, one per site."""


class NamespaceError(ConfigError):
    """The namespaces cannot be made here (not root, no ``ip`` tool, a clash)."""


@dataclass(frozen=True, slots=True)
class SiteNet:
    """One site's namespace: its name, the site's address, the host end's address."""

    site: str
    namespace: str
    address: str
    host_address: str
    host_if: str

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """What runs a command inside the namespace."""
        return ("ip", "netns", "exec", self.namespace)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NamespaceError(f"`ip {' '.join(args)}` failed: "
                             f"{done.stderr.strip() or done.stdout.strip()}")


def check_permitted() -> None:
    """``NamespaceError`` unless this process can make namespaces."""
    if shutil.which("ip") is None:
        raise NamespaceError("the `ip` tool (iproute2) is missing; install it (apt-get install "
                             "iproute2), or run the session on loopback: telesurgery demo "
                             "--link PROFILE")
    if os.geteuid() != 0:
        raise NamespaceError("each site in its own network namespace needs root; run as "
                             "root, or run the session on loopback: telesurgery demo --link "
                             "PROFILE")


class Fabric:
    """The namespaces of ``sites`` (name and address each), made on ``__enter__`` and
    removed on ``__exit__``; ``tag`` keeps two runs' names apart (e.g. the process id)."""

    def __init__(self, sites: Sequence[tuple[str, str]], tag: str) -> None:
        hosts = list(HOST_NET.hosts())
        if len(sites) > len(hosts):
            raise NamespaceError(f"{len(sites)} sites: at most {len(hosts)} on one machine")
        self.nets: dict[str, SiteNet] = {}
        for i, (site, address) in enumerate(sites):
            if ipaddress.ip_address(address).version != 4:
                raise NamespaceError(f"site {site}: namespaces on one machine take IPv4 "
                                     f"addresses; {address} is not one")
            # Interface names are at most 15 characters.
            self.nets[site] = SiteNet(site, f"ts{tag}-{site}"[:40], address,
                                      str(hosts[i]), f"ts{tag}h{i}"[:15])

    def __enter__(self) -> Self:
        check_permitted()
        try:
            for net in self.nets.values():
                self._make(net)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()

    @staticmethod
    def _make(net: SiteNet) -> None:
        inner = "s" + net.host_if[1:]
        _ip("netns", "add", net.namespace)
        _ip("-n", net.namespace, "link", "set", "lo", "up")
        _ip("link", "add", net.host_if, "type", "veth", "peer", "name", inner,
            "netns", net.namespace)
        _ip("-n", net.namespace, "link", "set", inner, "name", "wan0")
        _ip("addr", "add", f"{net.host_address}/32", "dev", net.host_if)
        _ip("link", "set", net.host_if, "up")
        _ip("route", "add", f"{net.address}/32", "dev", net.host_if)
        _ip("-n", net.namespace, "addr", "add", f"{net.address}/32", "dev", "wan0")
        _ip("-n", net.namespace, "link", "set", "wan0", "up")
        _ip("-n", net.namespace, "route", "add", f"{net.host_address}/32", "dev", "wan0")

    def remove(self) -> None:
        """Delete every namespace and veth made (deleting one end deletes the pair)."""
        for net in self.nets.values():
            subprocess.run(["ip", "link", "del", net.host_if], capture_output=True,
                           check=False)
            subprocess.run(["ip", "netns", "del", net.namespace], capture_output=True,
                           check=False)
