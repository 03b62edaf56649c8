"""Who may use the console page, tested as an attacker on the same machine would try it.

A real ``WebConsole`` on loopback with a backend that records what reaches it; the
attacker is a local process (aiohttp, or a raw socket) that knows the port but not the
launch's secret. Each refusal is followed by a legitimate client whose message must
arrive, so "nothing reached the console" is checked after the server has handled the
attack, and the check could fail.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from telesurgery.config import WebConfig
from telesurgery.console.web.access import (
    MAX_PAGES,
    TOKEN_PARAM,
    announced_url,
    announcement,
    host_refusal,
    new_token,
    origin_refusal,
    token_matches,
    token_refusal,
)
from telesurgery.console.web.protocol import Action, HandInput, PageChecklist
from telesurgery.console.web.server import WebConsole

from ..waiting import wait_until

WAIT_S = 30.0  # generous: a loaded two-core machine
DRIVE = json.dumps({"t": "input", "arm": "psm1", "move": [1, 0, 0], "grip": 1})
TAKE = json.dumps({"t": "action", "a": "take_control"})


class Backend:
    """A console that records the hand input and the buttons that reached it."""

    def __init__(self) -> None:
        self.inputs: list[HandInput] = []
        self.actions: list[Action] = []
        self.lock = threading.Lock()

    def hello(self) -> dict[str, Any]:
        return {"session": "t", "width": 64, "height": 48, "arms": ["psm1"], "drives": True}

    def hud(self) -> dict[str, Any]:
        return {}

    def on_input(self, hand: HandInput, now_ns: int) -> None:
        with self.lock:
            self.inputs.append(hand)

    def on_action(self, action: Action) -> None:
        with self.lock:
            self.actions.append(action)

    def request_keyframe(self) -> None:
        pass

    def on_checklist(self, msg: PageChecklist) -> None:
        pass

    def seen(self) -> tuple[int, int]:
        with self.lock:
            return len(self.inputs), len(self.actions)


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def web(backend: Backend) -> Iterator[WebConsole]:
    console = WebConsole(WebConfig(port=0), backend, 1_000_000)
    console.start()
    try:
        yield console
    finally:
        console.stop()


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    wait_until(condition, what, timeout_s)


def _ws(web: WebConsole, token: str | None) -> str:
    query = "" if token is None else f"?{TOKEN_PARAM}={token}"
    return f"ws://127.0.0.1:{web.port}/ws{query}"


async def _handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
    """What the server answered a WebSocket handshake (101: it upgraded), after trying to
    drive psm1 and take control through it."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers=headers) as ws:
                await ws.send_str(DRIVE)
                await ws.send_str(TAKE)
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def _legit_then_nothing_else(web: WebConsole, backend: Backend) -> None:
    """The page with the secret drives once; then exactly that one input has arrived."""
    before = backend.seen()

    async def drive() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_ws(web, web.token)) as ws:
            await ws.send_str(DRIVE)

    asyncio.run(drive())
    _wait(lambda: backend.seen()[0] > before[0], "the legitimate page's input")
    assert backend.seen() == (before[0] + 1, before[1])


def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as bytes on a fresh connection: the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"the server closed without an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:])
                       if k.strip().lower() == "content-length"), 0)
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk, "the server closed in the middle of its answer"
            body += chunk
    return int(lines[0].split()[1]), body


def _upgrade(path: str, host: str | None, drive: bool = False) -> bytes:
    """A WebSocket handshake as bytes; with ``drive``, a masked text frame that would drive
    psm1 sent right behind it, without waiting for the answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    head += (f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n")
    payload = DRIVE.encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    return head.encode() + (frame if drive else b"")


# ---- the pure checks -------------------------------------------------------------------


def test_each_launch_has_its_own_secret_and_only_it_matches() -> None:
    token = new_token()
    assert len(token) >= 43
    assert new_token() != token
    assert token_matches(token, token)
    for wrong in (None, "", token[:-1], token + "x", token[:-1] + ("A" if token[-1] != "A"
                                                                   else "B"),
                  new_token(), "é" * 43, "\udcff"):
        assert not token_matches(wrong, token), wrong
    why = token_refusal(None, token, "http://127.0.0.1:1/")
    assert why is not None
    assert "http://127.0.0.1:1/?token=..." in why
    assert token not in why


def test_the_host_must_be_the_bound_address_and_port() -> None:
    assert host_refusal("127.0.0.1:8000", "127.0.0.1", 8000) is None
    assert host_refusal("localhost:8000", "127.0.0.1", 8000) is None
    assert host_refusal("[::1]:8000", "::1", 8000) is None
    for host in (None, "", "127.0.0.1", "127.0.0.1:8001", "evil.example:8000",
                 "127.0.0.1.evil.example:8000", "[::1]:8000"):
        assert host_refusal(host, "127.0.0.1", 8000) is not None, host
    assert origin_refusal(None, "127.0.0.1:8000") is None
    assert origin_refusal("http://127.0.0.1:8000", "127.0.0.1:8000") is None
    assert origin_refusal("http://127.0.0.1:8001", "127.0.0.1:8000") is not None
    assert origin_refusal("null", "127.0.0.1:8000") is not None


def test_the_printed_line_carries_the_secret_and_is_found_in_output() -> None:
    token = new_token()
    url = f"http://127.0.0.1:5000/?token={token}"
    output = f"INFO something\n{announcement('surgeon console', url)}\nWARNING later\n"
    assert announced_url(output) == url
    assert announced_url("surgeon console page: http://127.0.0.1:5000/\n") is None
    assert announced_url("") is None


# ---- a local attacker against a real server ---------------------------------------------


def test_the_page_url_carries_the_secret(web: WebConsole) -> None:
    assert web.page_url == f"http://127.0.0.1:{web.port}/?{TOKEN_PARAM}={web.token}"
    assert web.token not in web.url
    assert web.token not in json.dumps(web.status())


def test_a_socket_without_the_secret_is_refused_and_moves_nothing(
        web: WebConsole, backend: Backend) -> None:
    # No Origin header and no token: what any local process sends.
    assert asyncio.run(_handshake_status(_ws(web, None))) == 401
    assert asyncio.run(_handshake_status(_ws(web, ""))) == 401
    # Forging the page's own Origin does not help.
    own = {"Origin": f"http://127.0.0.1:{web.port}"}
    assert asyncio.run(_handshake_status(_ws(web, None), own)) == 401
    assert web.refused["token"] == 3
    assert web.status()["pages_opened"] == 0
    _legit_then_nothing_else(web, backend)
    assert backend.seen() == (1, 0)


def test_a_wrong_secret_is_refused_and_moves_nothing(web: WebConsole, backend: Backend) -> None:
    other = WebConsole(WebConfig(port=0), Backend(), 1_000_000)  # another console's secret
    for wrong in (new_token(), other.token, web.token[:-1], web.token + "0",
                  web.token.upper() if web.token != web.token.upper() else web.token.lower()):
        assert asyncio.run(_handshake_status(_ws(web, wrong))) == 401, wrong
    assert web.refused["token"] == 5
    _legit_then_nothing_else(web, backend)
    assert backend.seen() == (1, 0)


def test_a_raw_handshake_without_the_secret_gets_401_before_any_upgrade(
        web: WebConsole, backend: Backend) -> None:
    status, body = _raw(web.port, _upgrade("/ws", f"127.0.0.1:{web.port}", drive=True))
    assert status == 401
    assert b"console printed" in body
    _legit_then_nothing_else(web, backend)
    assert backend.seen() == (1, 0)


def test_the_secret_does_not_excuse_a_foreign_origin(web: WebConsole, backend: Backend) -> None:
    evil = {"Origin": "http://evil.example"}
    assert asyncio.run(_handshake_status(_ws(web, web.token), evil)) == 403
    assert web.refused["origin"] == 1
    _legit_then_nothing_else(web, backend)
    assert backend.seen() == (1, 0)


def test_a_request_without_host_or_with_another_is_refused(web: WebConsole,
                                                           backend: Backend) -> None:
    port, token = web.port, web.token
    # HTTP/1.0 may leave the Host out; even with the secret that is not this page.
    assert _raw(port, b"GET / HTTP/1.0\r\n\r\n")[0] == 400
    assert _raw(port, f"GET /?token={token} HTTP/1.0\r\n\r\n".encode())[0] == 400
    assert _raw(port, _upgrade(f"/ws?token={token}", None))[0] == 400
    assert _raw(port, _upgrade(f"/ws?token={token}", f"127.0.0.1:{port + 1}"))[0] == 403
    assert _raw(port, _upgrade(f"/ws?token={token}", f"evil.example:{port}"))[0] == 403
    # (HTTP/1.1 without Host is refused by aiohttp's parser already, before the guard.)
    assert web.refused["host"] >= 4
    # The right Host and the secret: the page.
    ok = f"GET /?token={token} HTTP/1.0\r\nHost: localhost:{port}\r\n\r\n".encode()
    status, body = _raw(port, ok)
    assert status == 200
    assert b"<canvas" in body
    _legit_then_nothing_else(web, backend)
    assert backend.seen() == (1, 0)


def test_the_page_without_the_secret_says_how_to_get_in(web: WebConsole) -> None:
    async def get(path: str) -> tuple[int, str, dict[str, str]]:
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{web.port}{path}") as r:
            return r.status, await r.text(), dict(r.headers)

    status, text, _ = asyncio.run(get("/"))
    assert status == 401
    assert len(text.strip().splitlines()) == 1
    assert f"http://127.0.0.1:{web.port}/?token=..." in text
    assert asyncio.run(get("/api/status"))[0] == 401
    assert asyncio.run(get(f"/?token={new_token()}"))[0] == 401
    status, text, headers = asyncio.run(get(f"/?token={web.token}"))
    assert status == 200
    assert "<canvas" in text
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in headers
    status, text, _ = asyncio.run(get(f"/api/status?token={web.token}"))
    assert status == 200
    assert json.loads(text)["web"]["requests_refused"]["token"] == 3
    # The script holds nothing of the console's.
    assert asyncio.run(get("/app.js"))[0] == 200


def test_one_page_more_than_the_cap_is_refused_with_a_reason(web: WebConsole,
                                                             backend: Backend) -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}

    async def fill() -> tuple[int, str, int, int]:
        async with aiohttp.ClientSession() as http:
            # Knocking without the secret takes no place.
            for _ in range(2 * MAX_PAGES):
                assert await _handshake_status(_ws(web, None)) == 401
            pages = [await http.ws_connect(_ws(web, web.token)) for _ in range(MAX_PAGES)]
            async with http.get(_ws(web, web.token).replace("ws:", "http:", 1),
                                headers=upgrade) as r:
                status, text = r.status, await r.text()
            late = await _handshake_status(_ws(web, web.token))
            await pages[0].close()
            _wait(lambda: web.status()["pages_open"] < MAX_PAGES, "a page to leave")
            again = await _handshake_status(_ws(web, web.token))
            for p in pages[1:]:
                await p.close()
            return status, text, late, again

    status, text, late, again = asyncio.run(fill())
    assert status == 503
    assert text == (f"this console already serves {MAX_PAGES} pages, the most it does; "
                    "close one and reload")
    assert late == 503
    assert again == 101
    figures = web.status()
    assert figures["requests_refused"]["full"] == 2
    assert figures["requests_refused"]["token"] == 2 * MAX_PAGES
    assert figures["max_pages"] == MAX_PAGES
    assert figures["pages_opened"] == MAX_PAGES + 1
    # The page let in after one left drove psm1 and took control, as a page may.
    _wait(lambda: backend.seen() == (1, 1), "the last page's input and action")
