"""A node's security from its config, and the throwaway site the demo and tests run on.

``node_security(cfg.security, "patient node")`` is what every node calls before it
opens Zenoh: None when the config says ``insecure = true``, otherwise the checked
identity and access control (a ConfigError names the missing piece: secure is the
default, plain TCP the explicit exception).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurgery.config import SecurityConfig
from telesurgery.errors import ConfigError
from telesurgery.security.acl import access_control, load_acl_settings
from telesurgery.security.credential import Licence
from telesurgery.security.handshake import Credentials
from telesurgery.security.pki import Identity, Pki, Role, throwaway_pki
from telesurgery.security.zenoh_tls import tls_settings

DEMO_SURGEON = "dr-rossi"
DEMO_MEMBERS: Mapping[Role, tuple[str, ...]] = {
    Role.ROUTER: ("site",),
    Role.ROBOT: ("patient",),
    Role.SURGEON: (DEMO_SURGEON,),
    Role.RECORDER: ("recorder",),
    Role.OBSERVER: ("monitor", "observer"),
}
"""Who the demo's throwaway PKI issues identities to: the router, the patient node, the
surgeon console, the recorder, the demo's own monitor and one observer."""
DEMO_AUTHORITY = "demo-medical-board"
DEMO_JURISDICTION = "XX"
"""The demo's licensing authority and jurisdiction: made up (``XX`` is no country), so
that nobody takes a demo licence for a real one."""
DEMO_LICENCES: Mapping[str, Licence] = {
    f"{Role.SURGEON.value}:{DEMO_SURGEON}": Licence(
        "DEMO-0001", DEMO_AUTHORITY, DEMO_JURISDICTION, "urology", dt.date(2099, 12, 31)),
    f"{Role.BACKUP.value}:bedside-team": Licence(
        "DEMO-0002", DEMO_AUTHORITY, DEMO_JURISDICTION, "urology", dt.date(2099, 12, 31)),
}
"""The demo's surgeon's and bedside lead's licences, in their certificates."""
DEMO_POLICY = f"""# The demo site's credential policy: its own made-up board, nothing else.
[surgeon]
authorities = ["{DEMO_AUTHORITY}"]
jurisdictions = ["{DEMO_JURISDICTION}"]

[backup]
authorities = ["{DEMO_AUTHORITY}"]
jurisdictions = ["{DEMO_JURISDICTION}"]
"""


@dataclass(frozen=True, slots=True)
class NodeSecurity:
    """A node's identity, the access control it enforces and the site's revocation list."""

    identity: Identity
    acl: Mapping[str, str]
    """The ``access_control`` entry for Zenoh (``load_acl_settings``)."""
    credentials: Credentials
    """What the node signs command-key handshakes with and checks peers against."""
    crl: Path | None = None

    @classmethod
    def load(cls, identity: Identity, acl: Path, crl: Path | None) -> NodeSecurity:
        """Load and check the access-control file and the handshake credentials."""
        return cls(identity, load_acl_settings(acl), Credentials.load(identity, crl), crl)

    def zenoh_settings(self) -> dict[str, str]:
        """Zenoh config entries: mutual TLS with the identity and the access control."""
        return tls_settings(self.identity) | dict(self.acl)

    def commanders(self) -> dict[Role, list[str]]:
        """Common names that may command, by role, as the access control lists them."""
        block: dict[str, Any] = json.loads(self.acl["access_control"])
        out: dict[Role, list[str]] = {}
        for subject in block.get("subjects", []):
            if subject.get("id") in (Role.SURGEON.value, Role.BACKUP.value):
                out[Role(subject["id"])] = list(subject.get("cert_common_names", []))
        return out

    def describe(self) -> dict[str, Any]:
        """The status section: mutual TLS on, who this node is."""
        return {"mtls": True, "insecure": False, "identity": self.identity.common_name}


INSECURE_STATUS: Mapping[str, Any] = {"mtls": False, "insecure": True, "identity": None}
"""The status section of a node run with ``insecure = true``."""


def node_security(cfg: SecurityConfig, what: str) -> NodeSecurity | None:
    """The security of node ``what`` from its config; None when ``cfg.insecure``.

    Raises ConfigError when neither an identity nor ``insecure`` is given, when the
    identity has no access-control file, or when the identity is unusable (key
    readable by others, not issued by its CA, expired, revoked).
    """
    if cfg.insecure:
        return None
    if cfg.identity is None:
        raise ConfigError(f"the {what} has no identity: pass --identity DIR and --acl FILE "
                          "(from 'telesurgery pki issue' and 'telesurgery pki acl'), or "
                          "[security] identity/acl in its config; --insecure runs plain "
                          "TCP without authentication")
    if cfg.acl is None:
        raise ConfigError(f"the {what} has an identity but no access-control file: pass "
                          "--acl FILE written by 'telesurgery pki acl PKI --session S --out "
                          "FILE'")
    return NodeSecurity.load(Identity.from_dir(cfg.identity, crl=cfg.crl), cfg.acl, cfg.crl)


def security_status(security: NodeSecurity | None) -> dict[str, Any]:
    """The ``security`` status section of a node (``describe`` or the insecure one)."""
    return security.describe() if security is not None else dict(INSECURE_STATUS)


@dataclass(frozen=True, slots=True)
class Site:
    """A PKI and the access-control file of one session: what a node needs to join."""

    pki: Pki
    acl: Path

    def config(self, role: Role, name: str) -> SecurityConfig:
        """The ``[security]`` section of ``name`` in ``role``."""
        return SecurityConfig(identity=self.pki.root / role.value / name, acl=self.acl,
                              crl=self.pki.crl_path)

    def args(self, role: Role, name: str) -> list[str]:
        """The command-line flags that make ``telesurgery <verb>`` run as ``name``."""
        cfg = self.config(role, name)
        return ["--identity", str(cfg.identity), "--acl", str(self.acl),
                "--crl", str(self.pki.crl_path)]

    def security(self, role: Role, name: str) -> NodeSecurity:
        """The checked security of ``name`` in ``role``."""
        return NodeSecurity.load(self.pki.identity(role, name), self.acl, self.pki.crl_path)


def throwaway_site(root: Path, session: str,
                   members: Mapping[Role, tuple[str, ...]] = DEMO_MEMBERS,
                   licences: Mapping[str, Licence] = DEMO_LICENCES) -> Site:
    """A fresh PKI in ``root/pki`` issuing ``members`` (with ``licences``, by common
    name), and its access control for ``session`` in ``root/acl.json`` (the demo's and
    the tests' secure default)."""
    pki = throwaway_pki(root / "pki", "demo", {r: list(n) for r, n in members.items()},
                        licences)
    return Site(pki, write_acl(root / "acl.json", session, pki))


def write_acl(path: Path, session: str, pki: Pki) -> Path:
    """Write the access control of ``session`` for ``pki``'s valid certificates to
    ``path`` (the file ``telesurgery pki acl --out`` writes); returns ``path``."""
    block = {"access_control": access_control(session, pki.roster())}
    try:
        path.write_text(json.dumps(block, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; choose a writable "
                          "folder") from exc
    return path
