"""A site's router process: one Zenoh router per plane, and the state of its WAN links.

The main plane's router speaks mutual TLS and enforces the role access control (given the
site's security); a path plane's router is plain: the commands it carries are tagged end
to end under keys the two ends agreed, so a router sees them but cannot forge one the
patient would accept, and the state and clock sync on it carry nothing secret.

The main plane dials the far router once per WAN path between its two sites
(``Plane.routes``), and Zenoh keeps one link to a router: the first to connect carries
the plane, the others are refused and retried every ``CONNECT_RETRY``. When the lease
ends a cut link, the next retry over another path takes over (measured between two
routers over the rome-beijing emulators: 1.4-2.0 s without delivery at a fibre cut, then
on 5G). The plane does not move back when the fibre returns, and a standby path cut and
restored disturbs nothing. Zenoh's several links per transport (``max_links``) moved in
0.8-1.0 s, but in two bench runs of three the console's picture froze for 25-30 s
after a link rejoined.

Leases are short (``LEASE_MS``): a link whose far side went silent (a cut WAN path, a site
router gone without closing its connections) ends after the lease instead of Zenoh's
default 10 s, and is dialled again at once. Presence and path loss in surgery are the
application's to notice (the patient node's path watch and the supervisor's watchdog:
milliseconds); the lease only bounds how soon a link is rebuilt.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zenoh

from telesurgery.clock import now_ns
from telesurgery.config import ZenohConfig
from telesurgery.errors import TransportError
from telesurgery.sites.deployment import Deployment, Plane, url_host
from telesurgery.transport.session import Security, zenoh_config

log = logging.getLogger(__name__)

LEASE_MS = 1000
"""Zenoh's lease on a site router's links [ms]: a far side silent this long is gone."""
KEEP_ALIVES_PER_LEASE = 4
"""Keep-alives sent per lease (one every 250 ms): four lost in a row end a link."""
ROUTER_PRIORITY = 45
"""SCHED_FIFO priority of a site router's threads: below the nodes' loops (50), above
everything at normal priority (where permitted; otherwise it runs at normal priority)."""
WATCH_PERIOD_S = 0.05
"""How often [s] the router looks at its WAN links (their changes are timed to this)."""


def plane_config(dep: Deployment, site: str, plane: Plane, via: Mapping[str, str],
                 security: Security | None) -> zenoh.Config:
    """The Zenoh config of ``site``'s router on ``plane``.

    ``via``: per plane and route (``Plane.via_key``), the endpoint to dial in place of
    the far site's address (the link emulator on one machine, a NAT's public address in a
    hospital). A plane with more than one route dials once per route named in ``via``.
    """
    listen = [f"tcp/{url_host(dep.sites[site].address)}:{plane.port}"]
    connect: list[str] = []
    if plane.dials is not None:
        far = url_host(dep.sites[plane.dials].address)
        direct = f"{plane.wan_protocol}/{far}:{plane.port}"
        connect = list(dict.fromkeys(via.get(plane.via_key(r), direct) for r in plane.routes))
    cfg = ZenohConfig(mode="router", listen=listen, connect=connect, gossip=False)
    zc = zenoh_config(cfg, security if plane.name == "main" else None)
    try:
        zc.insert_json5("transport/link/tx/lease", str(LEASE_MS))
        zc.insert_json5("transport/link/tx/keep_alive", str(KEEP_ALIVES_PER_LEASE))
    except zenoh.ZError as exc:
        raise TransportError(f"invalid Zenoh configuration for plane {plane.name}: {exc}") \
            from exc
    return zc


@dataclass
class PlaneWatch:
    """What one plane's router has seen of its WAN link: up or down, and when it changed."""

    plane: Plane
    up: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, routers: int, t_s: float) -> None:
        """Note ``routers`` linked routers at ``t_s`` [s] since the start."""
        up = routers > 0
        if up != self.up:
            self.up = up
            self.changes.append({"at_s": round(t_s, 3), "up": up})
            log.warning("plane %s: WAN link %s", self.plane.name, "up" if up else "down")


class SiteRouter:
    """The routers of one site, one per plane, and a thread that watches their WAN links."""

    def __init__(self, dep: Deployment, site: str, via: Mapping[str, str] | None = None,
                 security: Security | None = None) -> None:
        self.site = site
        self._sessions: dict[str, zenoh.Session] = {}
        self.watches = {p.name: PlaneWatch(p) for p in dep.planes(site)}
        try:
            for p in dep.planes(site):
                self._sessions[p.name] = zenoh.open(plane_config(dep, site, p, via or {},
                                                                 security))
        except zenoh.ZError as exc:
            self.close()
            raise TransportError(f"site {site}: cannot open its router ({str(exc).split(' at ')[0]}"
                                 "); is another router on its ports, or is its address not "
                                 "on this machine?") from exc
        self._stop = threading.Event()
        self._started = now_ns()
        self._thread = threading.Thread(target=self._watch, name="site-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_PERIOD_S):
            t = (now_ns() - self._started) * 1e-9
            for name, z in list(self._sessions.items()):
                try:
                    routers = sum(1 for _ in z.info.routers_zid())
                except zenoh.ZError:
                    continue
                self.watches[name].saw(routers, t)

    def status(self) -> dict[str, Any]:
        """Per plane: its port, whether it dials, its WAN link's state and changes."""
        return {name: {"port": w.plane.port, "dials": w.plane.dials, "up": w.up,
                       "changes": list(w.changes)} for name, w in self.watches.items()}

    def close(self) -> None:
        """Stop watching and close every plane's router."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._thread.join(timeout=1.0)
        for z in self._sessions.values():
            z.close()
        self._sessions.clear()


def report_line(router: SiteRouter) -> str:
    """The router's status as one JSON line (its report file)."""
    return json.dumps({"site": router.site, "planes": router.status()})
