"""Site PKIs, secure Zenoh nodes and sample collectors for the security tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import pytest
import zenoh

from telesurgery.config import ZenohConfig
from telesurgery.demo.processes import free_port
from telesurgery.security import Identity, Pki, Role, secure_settings
from telesurgery.security.zenoh_tls import tls_settings
from telesurgery.transport.session import zenoh_config
from telesurgery.transport.tls import apply_settings

TIMEOUT_S = 15.0
Mode = Literal["peer", "client", "router"]
SESSION = "or1"

MEMBERS = {
    Role.ROUTER: ["r1"],
    Role.SURGEON: ["dr-rossi", "dr-bianchi"],
    Role.BACKUP: ["bedside"],
    Role.ROBOT: ["patient"],
    Role.OBSERVER: ["obs1"],
    Role.RECORDER: ["rec"],
}


def make_pki(root: Path, site: str = "test-site") -> Pki:
    """A PKI with every identity of MEMBERS."""
    pki = Pki.init(root, site)
    for role, names in MEMBERS.items():
        for name in names:
            pki.issue(role, name)
    return pki


@pytest.fixture(scope="module")
def site_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The site's PKI, shared by the tests of a module (they only read it)."""
    return make_pki(tmp_path_factory.mktemp("site") / "pki")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another site's PKI, issuing the very same common names."""
    return make_pki(tmp_path_factory.mktemp("other") / "pki", "other-site")


class Collector:
    """Payloads received on one subscriber, with a wait on a condition."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self._cv = threading.Condition()

    def __call__(self, sample: zenoh.Sample) -> None:
        with self._cv:
            self.items.append(sample.payload.to_bytes())
            self._cv.notify_all()

    def wait_for(self, predicate: Callable[[list[bytes]], bool],
                 timeout: float = TIMEOUT_S) -> bool:
        """True once ``predicate(items)`` holds; False after ``timeout`` [s]."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self.items), timeout)

    def snapshot(self) -> list[bytes]:
        """A copy of what arrived so far."""
        with self._cv:
            return list(self.items)


class Nodes:
    """Opens secure Zenoh sessions for identities and closes them all at the end."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.sessions: list[zenoh.Session] = []

    def config(self, identity: Identity, mode: Mode, listen: Sequence[str] = (),
               connect: Sequence[str] = (), *, acl: bool = True,
               verify_name: bool = True) -> zenoh.Config:
        """The transport's config of a node, made secure as the nodes do it."""
        zc = zenoh_config(ZenohConfig(mode=mode, listen=list(listen), connect=list(connect)))
        settings = (secure_settings(identity, SESSION, self.pki.roster(),
                                    verify_name=verify_name) if acl
                    else tls_settings(identity, verify_name=verify_name))
        apply_settings(zc, settings)
        return zc

    def open(self, config: zenoh.Config) -> zenoh.Session:
        """Open ``config``; zenoh.ZError propagates (a refused link is a test outcome)."""
        session = zenoh.open(config)
        self.sessions.append(session)
        return session

    def node(self, role: Role, name: str, mode: Mode = "client",
             listen: Sequence[str] = (), connect: Sequence[str] = (),
             **kwargs: bool) -> zenoh.Session:
        """Open the node of ``name`` in ``role`` from the site PKI."""
        ident = self.pki.identity(role, name)
        return self.open(self.config(ident, mode, listen, connect, **kwargs))

    def close(self) -> None:
        """Close every session, the last opened first."""
        for s in reversed(self.sessions):
            s.close()


@pytest.fixture
def nodes(site_pki: Pki) -> Iterator[Nodes]:
    """Secure nodes of the site PKI, closed after the test."""
    n = Nodes(site_pki)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def router(nodes: Nodes) -> str:
    """A Zenoh router (mode router) with mutual TLS and the role ACL; its tls/ locator."""
    endpoint = f"tls/127.0.0.1:{free_port()}"
    nodes.node(Role.ROUTER, "r1", "router", listen=[endpoint])
    return endpoint
