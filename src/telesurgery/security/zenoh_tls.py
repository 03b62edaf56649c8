"""Mutual TLS on Zenoh links: the config entries that move a node from tcp/ to tls/.

Everything here is a ``{json5 key: json5 value}`` mapping for ``zenoh.Config.insert_json5``
(key names of zenoh 1.10, ``transport/link/tls/...``), handed to the transport, which builds
its config as before and applies these on top (``transport.tls``). With them a node:

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

from telesurgery.security.pki import Identity
from telesurgery.transport.tls import SECURE_PROTOCOLS


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
