"""A headless Chromium showing the console page, for benchmarks that measure up to the paint.

Driven through Playwright with the system's Chromium (found on PATH or given):
a browser is never downloaded. Playwright is a test dependency, so this module
imports it only when a page is asked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from telesurgery.errors import ConfigError

CHROMIUM_ARGS: Final = ("--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run",
                        # A page nobody looks at must not have its timers throttled.
                        "--disable-background-timer-throttling",
                        "--disable-renderer-backgrounding",
                        "--disable-backgrounding-occluded-windows")
_CANDIDATES: Final = ("chromium", "chromium-browser", "google-chrome")


def find_chromium(path: Path | None = None) -> Path:
    """``path``, or the first Chromium on PATH; ``ConfigError`` saying how to get one."""
    if path is not None:
        if not path.exists():
            raise ConfigError(f"no browser at {path}; give the path of a Chromium executable")
        return path
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ConfigError("no Chromium on PATH for the page measurement; install it (Debian: "
                      "'apt-get install chromium') or pass --chromium PATH")


class HeadlessPage:
    """Opens ``url`` in a headless Chromium on ``open()``; closes it on exit."""

    def __init__(self, chromium: Path) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise ConfigError("measuring at the page needs Playwright for Python ('pip "
                              "install playwright'; no browser download is needed)") from exc
        self._chromium = chromium
        self._manager = sync_playwright()
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None

    def __enter__(self) -> Self:
        self._playwright = self._manager.start()
        self._browser = self._playwright.chromium.launch(executable_path=str(self._chromium),
                                                         args=list(CHROMIUM_ARGS))
        return self

    def open(self, url: str) -> None:
        """Load the console page at ``url`` (once): the URL the console printed, which
        carries its secret (``?token=``); the page passes it on to its WebSocket."""
        if self.page is None:
            self.page = self._browser.new_page()
            self.page.goto(url)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()


__all__ = ["CHROMIUM_ARGS", "HeadlessPage", "find_chromium"]
