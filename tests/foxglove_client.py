"""A client of the Foxglove WebSocket protocol, as Foxglove itself connects: subscribe, read."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

import aiohttp

from telesurgery.clock import now_ns

# foxglove-sdk speaks the protocol's successor subprotocol and refuses a client that offers
# only the first; Foxglove offers both, and so does this client.
SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
MESSAGE_DATA = 0x01
UNKNOWN_CHANNEL = "Unknown channel ID: "
"""foxglove-sdk 0.30 may advertise a channel created while a client connects a moment
before it accepts subscriptions to it, and refuses them with this status meanwhile."""


async def first_frames(url: str, topics: set[str], publish: Callable[[], None],
                       timeout_s: float) -> dict[str, dict[str, Any]]:
    """Connect as Foxglove does (again and again until the server listens), subscribe to
    ``topics`` once advertised and return the first message frame of each, decoded, with
    its channel; ``publish`` runs between reads, so the server has something to send."""
    deadline = now_ns() + int(timeout_s * 1e9)
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                ws = await http.ws_connect(url, protocols=SUBPROTOCOLS)
                break
            except aiohttp.ClientConnectorError:
                assert now_ns() < deadline, f"nothing listens on {url}"
                await asyncio.sleep(0.05)
        async with ws:
            return await _read(ws, topics, publish, deadline)


async def _read(ws: aiohttp.ClientWebSocketResponse, topics: set[str],
                publish: Callable[[], None], deadline: int) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    channels: dict[str, dict[str, Any]] = {}
    subscribed: dict[int, str] = {}
    next_id = 1
    assert ws.protocol in SUBPROTOCOLS
    first = await ws.receive_json(timeout=(deadline - now_ns()) / 1e9)
    assert first["op"] == "serverInfo"
    while len(got) < len(topics):
        assert now_ns() < deadline, f"frames of {topics - set(got)} never came"
        publish()
        wanted = [channels[t] for t in topics if t in channels and t not in subscribed.values()]
        if wanted:
            subs = [{"id": next_id + i, "channelId": c["id"]} for i, c in enumerate(wanted)]
            next_id += len(subs)
            subscribed.update((s["id"], c["topic"]) for s, c in zip(subs, wanted, strict=True))
            await ws.send_json({"op": "subscribe", "subscriptions": subs})
        try:
            msg = await ws.receive(timeout=0.05)
        except TimeoutError:
            continue
        if msg.type == aiohttp.WSMsgType.TEXT:
            op = json.loads(msg.data)
            if op["op"] == "advertise":
                channels.update((c["topic"], c) for c in op["channels"])
            elif op["op"] == "status" and op["message"].startswith(UNKNOWN_CHANNEL):
                # Asked again at the next turn of the loop, until it is known.
                refused = int(op["message"].removeprefix(UNKNOWN_CHANNEL))
                subscribed = {i: t for i, t in subscribed.items()
                              if channels[t]["id"] != refused}
        elif msg.type == aiohttp.WSMsgType.BINARY:
            assert msg.data[0] == MESSAGE_DATA
            sub_id, log_ns = struct.unpack_from("<IQ", msg.data, 1)
            assert log_ns > 0
            topic = subscribed[sub_id]
            got.setdefault(topic, {"channel": channels[topic],
                                   "message": json.loads(msg.data[13:])})
    return got
