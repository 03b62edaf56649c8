"""Security: the site PKI, mutual TLS on Zenoh links and access control by role.

A node made secure::

    zc = zenoh_config(cfg)                       # transport/session.py, endpoints tls/
    apply_settings(zc, secure_settings(identity, session, pki.roster()))
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
from telesurgery.security.pki import (
    CertInfo,
    Identity,
    Pki,
    Role,
    common_name,
    parse_common_name,
    throwaway_pki,
)
from telesurgery.security.zenoh_tls import apply_settings, secure_locators, tls_settings


def secure_settings(identity: Identity, session: str, roster: Mapping[Role, Sequence[str]],
                    *, verify_name: bool = True) -> dict[str, str]:
    """Mutual TLS with ``identity`` plus the access control of ``session`` for ``roster``."""
    return tls_settings(identity, verify_name=verify_name) | acl_settings(session, roster)


__all__ = [
    "GRANTS",
    "CertInfo",
    "Grant",
    "Identity",
    "Pki",
    "Role",
    "access_control",
    "acl_settings",
    "apply_settings",
    "common_name",
    "load_acl_settings",
    "parse_common_name",
    "secure_locators",
    "secure_settings",
    "throwaway_pki",
    "tls_settings",
]
