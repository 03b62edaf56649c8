"""Who may use the console page: the launch's secret, the Host, the Origin, the page cap.

Pure checks (no I/O), each returning the one-line reason for a refusal or None; the
server (``server.py``) answers a refusal before anything reaches the console.

- The secret: ``new_token()`` makes one per console launch; the page's URL carries it
  (``http://127.0.0.1:PORT/?token=...``, printed by the console at start, one line that
  ``announced_url`` finds in its output), the page's script passes it on to ``/ws``.
  It is compared in constant time. No cookie carries it: a browser sends a cookie for
  127.0.0.1 to every port on 127.0.0.1, that is to any other local server.
- The Host must be the bound loopback address and port (or ``localhost`` and the port),
  and must be there: an HTTP/1.0 request may leave it out.
- A request that names an Origin must come from the page's own origin.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Final

TOKEN_PARAM: Final = "token"
"""The query parameter of the page URL and of ``/ws`` that carries the secret."""
TOKEN_BYTES: Final = 32
"""Random bytes in the secret (43 URL-safe characters)."""
MAX_PAGES: Final = 8
"""Pages open at once on one console. A surgeon needs one; a reloaded tab, a second
screen or a benchmark's headless page add a few. Each page costs the console a sender
task and a copy of every frame on the video thread's fan-out, so a runaway script or a
tab restored twenty times must not be able to slow the pages that matter."""

_ANNOUNCED: Final = re.compile(r"console page: (http://\S+[?&]" + TOKEN_PARAM + r"=\S+)")


def new_token() -> str:
    """A fresh secret for one console launch."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_matches(given: str | None, token: str) -> bool:
    """True when ``given`` is ``token``, compared in constant time (None never matches)."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def base_url(host: str, port: int) -> str:
    """The page's address without its secret (``host`` as bound; IPv6 in brackets)."""
    return f"http://{_netloc(host)}:{port}/"


def page_url(host: str, port: int, token: str) -> str:
    """The page's address with its secret: what the console prints and a browser opens."""
    return f"{base_url(host, port)}?{TOKEN_PARAM}={token}"


def announcement(what: str, url: str) -> str:
    """The line a console prints at start: ``surgeon console page: URL``."""
    return f"{what} page: {url}"


def announced_url(output: str) -> str | None:
    """The page URL of the last ``announcement`` in a console's output (None before it)."""
    found = _ANNOUNCED.findall(output)
    return str(found[-1]) if found else None


def host_refusal(host: str | None, bound_host: str, port: int) -> str | None:
    """Why a request with Host header ``host`` is refused by a page bound to
    ``bound_host``:``port`` (None: it is not)."""
    if host is None:
        return "a request to the console page must name its Host (HTTP/1.1)"
    allowed = {f"{_netloc(bound_host)}:{port}", f"localhost:{port}"}
    if host.lower() not in allowed:
        return (f"the console page answers at {_netloc(bound_host)}:{port} only, not at "
                f"{host[:80]}")
    return None


def origin_refusal(origin: str | None, host: str) -> str | None:
    """Why a request from ``origin`` to the page at ``host`` is refused (None: it is not;
    a request without an Origin does not come from a web site's script)."""
    if origin is not None and origin != f"http://{host.lower()}":
        return f"origin {origin[:80]} may not use the console page"
    return None


def token_refusal(given: str | None, token: str, url_hint: str) -> str | None:
    """Why a request carrying ``given`` as the secret is refused (None: it is not);
    ``url_hint`` is the page URL with the secret left out."""
    if token_matches(given, token):
        return None
    what = "no" if not given else "a wrong"
    return (f"{what} console page token: open the URL the console printed at start "
            f"({url_hint}?{TOKEN_PARAM}=...)")


def _netloc(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["MAX_PAGES", "TOKEN_BYTES", "TOKEN_PARAM", "announced_url", "announcement",
           "base_url", "host_refusal", "new_token", "origin_refusal", "page_url",
           "token_matches", "token_refusal"]
