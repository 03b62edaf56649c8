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

from telesurgery.clock import normal_priority_workers
from telesurgery.demo.monitor import Monitor
from telesurgery.errors import ConfigError, TelesurgeryError

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
            from playwright.sync_api import Error, sync_playwright
        except ImportError as exc:
            raise ConfigError("measuring at the page needs Playwright for Python ('pip "
                              "install playwright'; no browser download is needed)") from exc
        self._error: type[Exception] = Error
        self._chromium = chromium
        self._manager = sync_playwright()
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None

    def __enter__(self) -> Self:
        # The browser is the surgeon's screen, not control: started from a real-time
        # thread, Playwright's driver and Chromium would inherit SCHED_FIFO, and a driver
        # spinning at it starves whatever shares its CPU at that priority or below.
        with normal_priority_workers():
            self._playwright = self._manager.start()
        try:
            with normal_priority_workers():
                self._browser = self._playwright.chromium.launch(
                    executable_path=str(self._chromium), args=list(CHROMIUM_ARGS))
        except self._error as exc:
            self._playwright.stop()
            # Playwright's message runs to pages of browser log; its first line says why.
            raise ConfigError(f"the browser at {self._chromium} did not start: "
                              f"{_first_line(exc)}; pass --chromium PATH") from exc
        return self

    def open(self, url: str) -> None:
        """Load the console page at ``url`` (once): the URL the console printed, which
        carries its secret (``?token=``); the page passes it on to its WebSocket."""
        if self.page is None:
            self.page = self._browser.new_page()
            self.page.goto(url)

    def evaluate(self, expression: str) -> Any:
        """The value of the JavaScript ``expression`` in the open page (None before one
        opened); ``TelesurgeryError`` when the page cannot answer (closed, crashed)."""
        if self.page is None:
            return None
        try:
            return self.page.evaluate(expression)
        except self._error as exc:
            raise TelesurgeryError(f"the page did not answer: {_first_line(exc)}") from exc

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()


def open_console_page(page: HeadlessPage, monitor: Monitor, query: str = "") -> bool:
    """Open the demo's console page in ``page`` once the console printed its URL (with
    its secret; ``query`` appended, e.g. ``&codec=jpeg``): for ``run_demo``'s ticks.
    True once the page is open."""
    url = monitor.pages.get("console")
    if page.page is None and url is not None:
        page.open(url + query)
    return page.page is not None


def _first_line(exc: Exception) -> str:
    return next(iter(str(exc).strip().splitlines()), type(exc).__name__)


__all__ = ["CHROMIUM_ARGS", "HeadlessPage", "find_chromium", "open_console_page"]
