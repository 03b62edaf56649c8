"""``bench link``: how precisely the emulator applies its delay under surgical traffic.

A ``telesurgery link`` child process emulates a path with a fixed one-way delay
(no jitter, loss or cap) while this process sends 1 kHz control messages through
it in the forward direction and 30 video-sized frames a second back the other
way, over UDP and then over TCP. Each message carries its send time; the
receiver, on the same monotonic clock, subtracts the delay the profile asks for.
The error therefore includes the two loopback hops and the receiver's own
wake-up, as a user of the emulator sees it; the emulator's own lateness (release
time to send) is reported beside it. Maxima are set by the VM's stalls.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from telesurgery.bench.machine import machine_info
from telesurgery.clock import now_ns, set_realtime
from telesurgery.link.control import EmulatorProcess
from telesurgery.link.impairment import NS_PER_MS, NS_PER_S
from telesurgery.link.locator import Locator, precise_loop
from telesurgery.stats import summarize

CONTROL_HZ = 1000.0
CONTROL_BYTES = 100
"""About the size of an encoded servo_cp command [bytes]."""
VIDEO_FPS = 30.0
VIDEO_BYTES = 20_000
"""About the size of a 640x480 H.264 frame at a few Mbit/s [bytes]."""
DELAY_MS = 20.0
WARMUP_S = 0.5
TARGET_P99_MS = 0.5

_HEAD = struct.Struct("<BIq")  # kind, sequence, send time [ns]
_LEN = struct.Struct("<I")
_CONTROL, _VIDEO = 0, 1


class _Recorder:
    """Errors [ns] of the messages received, per kind, after the warm-up."""

    def __init__(self, delay_ns: int, since_ns: int) -> None:
        self.delay_ns = delay_ns
        self.since_ns = since_ns
        self.errors: dict[int, list[int]] = {_CONTROL: [], _VIDEO: []}
        self.sent: dict[int, int] = {_CONTROL: 0, _VIDEO: 0}

    def message(self, data: bytes | memoryview, t: int) -> None:
        kind, _, sent = _HEAD.unpack_from(data)
        if sent >= self.since_ns:
            self.errors[kind].append(t - sent - self.delay_ns)

    def summary(self, kind: int) -> dict[str, Any]:
        errors = np.array(self.errors[kind], dtype=np.float64)
        error_ms = summarize(errors, 1e-6)
        if errors.size:
            # Negative would mean released early, which the emulator must never do.
            error_ms["min"] = round(float(errors.min()) * 1e-6, 3)
        return {"sent": self.sent[kind], "received": len(errors), "error_ms": error_ms}


def _message(kind: int, seq: int, size: int, t: int) -> bytes:
    head = _HEAD.pack(kind, seq, t)
    return head + bytes(size - len(head))


async def _pace(rec: _Recorder, until_ns: int, send_control: Callable[[bytes], object],
                send_video: Callable[[bytes], object] | None) -> None:
    """Send control at 1 kHz forward and video frames back, on absolute deadlines."""
    start = now_ns()
    periods = {_CONTROL: round(NS_PER_S / CONTROL_HZ), _VIDEO: round(NS_PER_S / VIDEO_FPS)}
    next_at = {_CONTROL: start, _VIDEO: start}
    seq = 0
    while True:
        kind = min(next_at, key=lambda k: next_at[k])
        at = next_at[kind]
        if at >= until_ns:
            return
        delay_s = (at - now_ns()) / NS_PER_S
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        sender = send_control if kind == _CONTROL else send_video
        if sender is not None:
            seq += 1
            # The receiver counts by the send time in the message, so the sender must too:
            # a message due before the warm-up ended may leave after it.
            t = now_ns()
            sender(_message(kind, seq, CONTROL_BYTES if kind == _CONTROL else VIDEO_BYTES, t))
            if t >= rec.since_ns:
                rec.sent[kind] += 1
        next_at[kind] += periods[kind]


async def _run_udp(listen: Locator, target: socket.socket, duration_s: float,
                   delay_ns: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    client.connect(listen.address)
    target.setblocking(False)
    rec = _Recorder(delay_ns, now_ns() + round(WARMUP_S * NS_PER_S))
    peer: list[Any] = []

    def drain(sock: socket.socket, learn: bool) -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65_535)
            except BlockingIOError:
                return
            rec.message(data, now_ns())
            if learn and not peer:
                peer.append(addr)

    loop.add_reader(target, drain, target, True)
    loop.add_reader(client, drain, client, False)

    def video(data: bytes) -> None:
        if peer:
            target.sendto(data, peer[0])

    try:
        await _pace(rec, now_ns() + round(duration_s * NS_PER_S), client.send, video)
        await asyncio.sleep(delay_ns / NS_PER_S + 0.3)
    finally:
        loop.remove_reader(target)
        loop.remove_reader(client)
        client.close()
    return {"control": rec.summary(_CONTROL), "video": rec.summary(_VIDEO)}


class _Framed(asyncio.Protocol):
    """Length-prefixed messages on a TCP stream, each timed when its last byte arrives."""

    def __init__(self, rec: _Recorder) -> None:
        self.rec = rec
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        t = now_ns()
        self.buf += data
        while len(self.buf) >= _LEN.size:
            (n,) = _LEN.unpack_from(self.buf)
            if len(self.buf) < _LEN.size + n:
                return
            self.rec.message(memoryview(self.buf)[_LEN.size:_LEN.size + n], t)
            del self.buf[:_LEN.size + n]

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_LEN.pack(len(data)) + data)


async def _run_tcp(listen: Locator, server: socket.socket, duration_s: float,
                   delay_ns: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rec = _Recorder(delay_ns, now_ns() + round(WARMUP_S * NS_PER_S))
    accepted: list[_Framed] = []

    def factory() -> _Framed:
        accepted.append(_Framed(rec))
        return accepted[-1]

    srv = await loop.create_server(factory, sock=server)
    _, client = await loop.create_connection(lambda: _Framed(rec), *listen.address)
    await asyncio.wait_for(client.connected, 10.0)
    while not accepted:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(accepted[0].connected, 10.0)
    try:
        await _pace(rec, now_ns() + round(duration_s * NS_PER_S), client.send, accepted[0].send)
        await asyncio.sleep(delay_ns / NS_PER_S + 0.3)
    finally:
        for side in (client, *accepted):
            if side.transport is not None:
                side.transport.close()
        srv.close()
        await srv.wait_closed()
    return {"control": rec.summary(_CONTROL), "video": rec.summary(_VIDEO)}


def _realtime_thread(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a thread of its own at SCHED_FIFO where permitted (the policy is per
    thread on Linux), as the nodes run their loops, so that the receiver's wake-up is timed
    like theirs."""
    out: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def body() -> None:
        set_realtime()
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name="bench-link")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def _bench_one(protocol: str, duration_s: float) -> dict[str, Any]:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    target = socket.socket(socket.AF_INET, kind)
    target.bind(("127.0.0.1", 0))
    if protocol == "tcp":
        target.listen()
    port = target.getsockname()[1]
    delay_ns = round(DELAY_MS * NS_PER_MS)
    emu = EmulatorProcess(f"{protocol}/127.0.0.1:0", f"{protocol}/127.0.0.1:{port}",
                          ["--delay-ms", str(DELAY_MS)])
    emu.start()
    try:
        run = _run_udp if protocol == "udp" else _run_tcp

        def traffic() -> dict[str, Any]:
            with asyncio.Runner(loop_factory=precise_loop) as runner:
                return runner.run(run(emu.listen_address, target, duration_s, delay_ns))

        result = _realtime_thread(traffic)
        stats = emu.stats()["directions"]
    finally:
        emu.stop()
        target.close()
    result["emulator"] = {
        d: {k: stats[d][k] for k in ("packets", "dropped", "applied_delay_ms", "lateness_ms")}
        for d in ("forward", "reverse")
    }
    return result


def bench_link(duration_s: float = 10.0) -> dict[str, Any]:
    """Emulator delay error [ms] (p50/p99/p99.9/max) over UDP and TCP, ``duration_s`` [s] each,
    carrying 1 kHz control forward and 30 x 20 kB video frames a second back."""
    results = {p: _bench_one(p, duration_s) for p in ("udp", "tcp")}
    worst_p99 = max(results[p][k]["error_ms"].get("p99", float("inf"))
                    for p in results for k in ("control", "video"))
    return {
        "what": "applied one-way delay minus the profile's delay, sender stamp to receiver read "
                "on one monotonic clock, through a `telesurgery link` process",
        "machine": machine_info(),
        "duration_s": duration_s,
        "delay_ms": DELAY_MS,
        "traffic": {"control_hz": CONTROL_HZ, "control_bytes": CONTROL_BYTES,
                    "video_fps": VIDEO_FPS, "video_bytes": VIDEO_BYTES},
        **results,
        "target": {"error_p99_ms": TARGET_P99_MS},
        "worst_error_p99_ms": worst_p99,
        "within_target": abs(worst_p99) <= TARGET_P99_MS,
    }
