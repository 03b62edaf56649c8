"""Mutual TLS on Zenoh links: the config entries that move a node from tcp/ to tls/.

Everything here is a ``{json5 key: json5 value}`` mapping for ``zenoh.Config.insert_json5``
(key names of zenoh 1.10, ``transport/link/tls/...``), so the transport builds its config
as before and applies these on top. With them a node:

- presents its certificate when it accepts a link and when it opens one (``enable_mtls``:
  a peer without a certificate of the site CA is refused during the handshake);
- checks that the node it connects to holds a certificate naming the address it dialled
  (``verify_name_on_connect``);
- closes a link when the certificate it was opened with expires;
- speaks only tls/ and quic/ (``transport/link/protocols``): a plain tcp/ or udp/
  endpoint, its own or a peer's gossiped one, is refused, so no link bypasses TLS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import zenoh

from telesurgery.errors import ConfigError, TransportError
from telesurgery.security.pki import Identity

SECURE_PROTOCOLS = ("tls", "quic")
"""The Zenoh link protocols that carry TLS (quic/ uses the same certificates)."""

_TLS_EQUIVALENT = {"tcp": "tls", "udp": "quic", "tls": "tls", "quic": "quic"}


def tls_settings(identity: Identity, *, verify_name: bool = True) -> dict[str, str]:
    """The Zenoh config entries for mutual TLS with ``identity`` on every link.

    ``verify_name=False`` accepts any certificate of the site CA whatever address was
    dialled (for addresses the certificates do not name); the access control still
    applies. Raises ConfigError when the key file is readable by others.
    """
    identity.check()
    cert, key = json.dumps(str(identity.certificate)), json.dumps(str(identity.private_key))
    tls = "transport/link/tls"
    return {
        f"{tls}/root_ca_certificate": json.dumps(str(identity.ca_certificate)),
        f"{tls}/listen_certificate": cert,
        f"{tls}/listen_private_key": key,
        f"{tls}/connect_certificate": cert,
        f"{tls}/connect_private_key": key,
        f"{tls}/enable_mtls": "true",
        f"{tls}/verify_name_on_connect": json.dumps(verify_name),
        f"{tls}/close_link_on_expiration": "true",
        "transport/link/protocols": json.dumps(list(SECURE_PROTOCOLS)),
    }


def secure_locators(locators: Iterable[str]) -> list[str]:
    """``locators`` with tcp/ turned into tls/ and udp/ into quic/ (address unchanged).

    A udp/ endpoint becomes an *unreliable* quic/ one (``rel=0``: QUIC datagrams, as
    Zenoh 1.10 supports) unless its metadata says otherwise, so that a lossy path stays
    lossy instead of retransmitting stale commands. Raises ConfigError for a protocol
    that has no TLS form (e.g. unixsock-stream).
    """
    out = []
    for loc in locators:
        proto, sep, rest = loc.partition("/")
        if not sep or proto not in _TLS_EQUIVALENT:
            raise ConfigError(f"locator {loc!r} has no TLS form; use tcp/, udp/, tls/ or "
                              "quic/ endpoints with mutual TLS")
        if proto == "udp":
            rest = _with_metadata(rest, "rel", "0")
        out.append(f"{_TLS_EQUIVALENT[proto]}/{rest}")
    return out


def _with_metadata(address: str, key: str, value: str) -> str:
    """``address`` (``host:port?meta#config``) with ``key=value`` in its metadata unless
    the metadata already sets ``key``."""
    head, hash_, config = address.partition("#")
    host, _, meta = head.partition("?")
    entries = [e for e in meta.split(";") if e]
    if any(e.partition("=")[0] == key for e in entries):
        return address
    return f"{host}?{';'.join([*entries, f'{key}={value}'])}{hash_}{config}"


def apply_settings(config: zenoh.Config, settings: Mapping[str, str]) -> None:
    """Insert ``settings`` into the ``zenoh.Config`` ``config``; TransportError if refused."""
    for key, value in settings.items():
        try:
            config.insert_json5(key, value)
        except zenoh.ZError as exc:
            raise TransportError(f"Zenoh refused config {key}: {str(exc).split(' at ')[0]}; "
                                 "is eclipse-zenoh 1.10 or newer installed?") from exc
