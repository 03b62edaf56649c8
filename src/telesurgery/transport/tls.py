"""TLS on Zenoh links, the transport's half: endpoints in their TLS form, settings applied.

The settings themselves (certificates, mutual TLS, the access control) come from the
security layer as a ``{json5 key: json5 value}`` mapping; the transport only applies them,
so it needs to know nothing of certificates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import zenoh

from telesurgery.errors import ConfigError, TransportError

SECURE_PROTOCOLS = ("tls", "quic")
"""The Zenoh link protocols that carry TLS (quic/ uses the same certificates)."""

_TLS_EQUIVALENT = {"tcp": "tls", "udp": "quic", "tls": "tls", "quic": "quic"}


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
