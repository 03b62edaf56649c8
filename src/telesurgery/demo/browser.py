"""Opening the console page in the user's browser, only where a graphical one can show it."""

from __future__ import annotations

import logging
import os
import sys
import webbrowser

log = logging.getLogger(__name__)


def graphical_session() -> bool:
    """True where a browser window can appear: a desktop (X11, Wayland), macOS or Windows.

    Elsewhere (a server, a container, an SSH session) ``webbrowser`` would fall back to a
    text browser that takes over the terminal, so the page's URL is only printed.
    """
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_page(url: str) -> bool:
    """Open ``url`` in a browser if a graphical session has one; False where it did not."""
    if not graphical_session():
        return False
    try:
        opened = webbrowser.open(url, new=2)
    except webbrowser.Error as exc:
        log.info("no browser to open the console page (%s); open %s by hand", exc, url)
        return False
    return bool(opened)
