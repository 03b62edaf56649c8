"""Security: the site PKI, mutual TLS on Zenoh links, access control by role, and commands
authenticated end to end.

A node made secure (what every node does from its ``[security]`` config)::

    sec = node_security(cfg.security, "patient node")   # None only with insecure = true
    z = open_session(cfg.zenoh, sec.zenoh_settings())   # tls/ endpoints, mTLS, the ACL

Commands: ``command_keys.ConsoleKeys`` agrees a key with the patient node
(``handshake``) and seals each command (``tags.seal``); ``command_keys.PatientKeys``
verifies every command before the dual-path layer. (``command_keys`` uses the
transport's sessions and is imported from its module, not from here.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from telesurgery.security.acl import (
    GRANTS,
    Grant,
    access_control,
    acl_settings,
    load_acl_settings,
)
from telesurgery.security.handshake import Credentials, Initiator, Responder
from telesurgery.security.node import (
    NodeSecurity,
    Site,
    node_security,
    throwaway_site,
)
from telesurgery.security.pki import (
    CertInfo,
    Identity,
    Pki,
    Role,
    common_name,
    parse_common_name,
    throwaway_pki,
)
from telesurgery.security.tags import CommandVerifier, TagKey, seal
from telesurgery.security.zenoh_tls import tls_settings


def secure_settings(identity: Identity, session: str, roster: Mapping[Role, Sequence[str]],
                    *, verify_name: bool = True) -> dict[str, str]:
    """Mutual TLS with ``identity`` plus the access control of ``session`` for ``roster``."""
    return tls_settings(identity, verify_name=verify_name) | acl_settings(session, roster)


__all__ = [
    "GRANTS",
    "CertInfo",
    "CommandVerifier",
    "Credentials",
    "Grant",
    "Identity",
    "Initiator",
    "NodeSecurity",
    "Pki",
    "Responder",
    "Role",
    "Site",
    "TagKey",
    "access_control",
    "acl_settings",
    "common_name",
    "load_acl_settings",
    "node_security",
    "parse_common_name",
    "seal",
    "secure_settings",
    "throwaway_pki",
    "throwaway_site",
    "tls_settings",
]
