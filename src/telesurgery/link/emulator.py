"""The link emulator: a UDP or TCP proxy that applies one path's impairments per direction.

It listens on one endpoint and forwards to another; *forward* is the traffic from
the side that connects to it towards the target, *reverse* the way back. Each
direction has its own ``ImpairmentModel``.

Accuracy: the emulator runs on ``precise_loop()`` (``select()`` with a 1 ns timer
slack), takes each datagram's arrival time from the kernel (``SO_TIMESTAMPNS``), and
keeps every pending release in one heap with a single loop timer armed for the
earliest, so a packet leaves within tens of microseconds of its release time; it
records that lateness and the applied delay (release minus arrival) per direction.
Run it as its own process (``telesurgery link``): in a thread beside busy Python
code it would wait for the interpreter lock.

Cost: on the 2-core VM a wake-up of the loop costs ~40 us of CPU (~20 us the kernel's
context switch, ~20 us asyncio), more than the Python work on a datagram (~15 us, the
impairment decision 2-3.5 us of it), and reading each datagram as it arrived meant two
wake-ups per datagram (102-134 us a datagram in all). Since the arrival time comes
from the kernel, a datagram may wait in its socket as long as it is read before it is
due: while releases are pending, a direction with room in its delay is read when the
release timer fires, every ``POLL_MAX_MS`` at most (and well inside the shortest delay
its delay and jitter can give), and arrivals wake the loop only while nothing is
pending: one wake-up per datagram, 82-104 us a datagram (``python -m
telesurgery.link.cost``). A direction with under ``POLL_MIN_MS`` to spare is read on
arrival; a cut or restore first reads what has arrived, so that it is judged as it
was then.

UDP: one upstream socket per client address, so replies find their way back;
flows idle for ``FLOW_IDLE_S`` are forgotten. Every impairment applies.

TCP: bytes are never dropped, reordered or duplicated (TCP would retransmit
them): each chunk read is delayed as a whole, a chunk the model loses arrives one
retransmission later and holds up the chunks behind it, and a chunk that meets
a scheduled outage leaves when it ends. A cut stops reading from that
direction's sockets (the data waits in the senders' buffers, as it would behind
a dead link) and a restore resumes; what was already in flight is delivered. A
full queue in front of a bandwidth cap also stops reading until it drains.

Live control: ``cut()`` / ``restore()`` / ``retune()`` / ``reset()`` here, or text
commands on the optional UDP control port (bind it to loopback): ``cut``, ``cut forward``,
``restore``, ``restore reverse``, ``set [forward|reverse] NAME=VALUE ...`` (the
impairments in ``RETUNABLE``, e.g. ``set loss=0.1 duplicate=0.05``), ``reset
[forward|reverse]`` (back to the profile), ``stats``; each reply is the JSON of
``stats()`` with ``"ok": true``, or ``{"ok": false, "error": ...}``. A retune keeps the
read schedule the profile set: a direction given more jitter than its delay absorbs
may release a datagram up to ``POLL_MAX_MS`` late.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import heapq
import json
import logging
import random
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import ValidationError

from telesurgery.clock import now_ns
from telesurgery.errors import TransportError
from telesurgery.link.impairment import NS_PER_MS, NS_PER_S, Impairment, ImpairmentModel
from telesurgery.link.locator import Locator
from telesurgery.link.profiles import PathSpec
from telesurgery.stats import summarize

log = logging.getLogger(__name__)

FLOW_IDLE_S = 60.0
"""A UDP client silent this long [s] loses its upstream socket (Zenoh keeps links alive more
often than this)."""
MAX_FLOWS = 256
"""UDP clients served at once; datagrams from more are dropped and counted."""
TCP_HOLD_BYTES = 4 * 1024 * 1024
"""Bytes of one TCP direction held for release before reading pauses, when there is no cap."""
POLL_MIN_MS = 1.0
"""A direction whose datagrams may wait less than this [ms] in the socket is read on arrival."""
POLL_MAX_MS = 5.0
"""The longest a datagram waits in the socket before it is read [ms], however long the delay:
at 1 kHz a read finds ~5 datagrams, so the ``select()`` and the empty read that end it cost
little per datagram, and a batch holds the next release up by well under 0.1 ms."""
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
"""Receive and send buffer of each forwarding socket [bytes] (the kernel caps it at
``net.core.rmem_max`` / ``wmem_max``): a poll interval of traffic and a
burst of video fragments fit many times over, so that a command never meets a full buffer."""
_READ_BURST = 256
_MAX_DATAGRAM = 65_535
_SO_TIMESTAMPNS = 35
"""Linux's SO_TIMESTAMPNS (socket.h), which Python 3.11's socket module does not name."""
_TIMESPEC = struct.Struct("@qq")
_ANC_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_SAMPLE_WINDOW = 100_000
RETUNABLE = ("delay_ms", "jitter_ms", "jitter_correlation_ms", "reorder", "loss", "duplicate",
             "rate_mbit_s", "queue_ms")
"""The impairments ``set`` changes while the emulator runs (scheduled outages and bursty loss
stay as the profile has them)."""


class Direction(enum.Enum):
    """Which way traffic goes through the emulator."""

    FORWARD = "forward"
    """From the side that connects to the emulator towards the target."""
    REVERSE = "reverse"
    """From the target back to the side that connected."""

    @classmethod
    def parse(cls, text: str | None) -> tuple[Direction, ...]:
        """``forward``, ``reverse`` or ``both``/None as a tuple of directions."""
        if text is None or text == "both":
            return (cls.FORWARD, cls.REVERSE)
        try:
            return (cls(text),)
        except ValueError:
            raise ValueError(
                f"direction {text!r} is unknown; use forward, reverse or both") from None


class DirectionStats:
    """Counters and the recent delay samples of one direction."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.delivered = 0
        self.duplicated = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._applied: collections.deque[int] = collections.deque(maxlen=_SAMPLE_WINDOW)
        self._late: collections.deque[int] = collections.deque(maxlen=_SAMPLE_WINDOW)

    def released(self, arrival_ns: int, release_ns: int, sent_ns: int) -> None:
        """Record one copy sent at ``sent_ns`` that was due at ``release_ns`` [ns]."""
        self.delivered += 1
        self._applied.append(sent_ns - arrival_ns)
        self._late.append(sent_ns - release_ns)

    def summary(self) -> dict[str, Any]:
        """Counters, and the applied delay and lateness [ms] over the recent samples."""
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "delivered": self.delivered,
            "duplicated": self.duplicated,
            "dropped": sum(self.dropped.values()),
            "dropped_by": dict(self.dropped),
            "applied_delay_ms": summarize(np.array(self._applied, dtype=np.float64), 1e-6),
            "lateness_ms": summarize(np.array(self._late, dtype=np.float64), 1e-6),
        }


_Send = Callable[[bytes], object]
_Item = tuple[int, int, int, bytes, _Send, DirectionStats | None]


class _Releaser:
    """Pending releases in one heap, with one loop timer armed for the earliest.

    With ``poll`` the emulator reads lazily (see ``Emulator``): while anything is pending,
    the timer also fires ``poll_ns`` after the last read, and a firing that finds the last
    read that old ends with ``poll`` (which reads what arrived, pushes it, and says whether it
    left some unread: then the timer fires again at once); ``watch(True)`` /
    ``watch(False)`` are called when the heap empties / stops being empty, so that arrivals
    wake the loop only while nothing else will.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, poll: Callable[[], bool] | None = None,
                 poll_ns: int = 0, watch: Callable[[bool], None] | None = None) -> None:
        self._loop = loop
        self._heap: list[_Item] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._firing = False
        self._poll = poll
        self._poll_ns = poll_ns
        self._polled_ns = 0
        self._watch = watch

    def push(self, release_ns: int, arrival_ns: int, data: bytes, send: _Send,
             stats: DirectionStats | None) -> None:
        """Call ``send(data)`` at ``release_ns``; ``stats`` (if any) records it."""
        if self._closed:
            return
        self._seq += 1
        item = (release_ns, self._seq, arrival_ns, data, send, stats)
        heap = self._heap
        heapq.heappush(heap, item)
        if heap[0] is item and not self._firing:
            if len(heap) == 1 and self._watch is not None:
                # Called from the read on arrival, which empties the socket.
                self._watch(False)
                self._polled_ns = now_ns()
            self._arm()

    def close(self) -> None:
        """Forget everything pending and refuse more."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._heap.clear()

    def _arm(self, unread: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            if self._watch is not None and not self._closed:
                self._watch(True)
            return
        when = self._heap[0][0]
        if self._poll is not None:
            when = min(when, 0 if unread else self._polled_ns + self._poll_ns)
        self._timer = self._loop.call_at(when / NS_PER_S, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._firing = True
        heap = self._heap
        while heap and heap[0][0] <= now_ns():
            release_ns, _, arrival_ns, data, send, stats = heapq.heappop(heap)
            sent = now_ns()
            send(data)
            if stats is not None:
                stats.released(arrival_ns, release_ns, sent)
        # After the releases, so that reading never delays them.
        unread = False
        now = now_ns()
        if self._poll is not None and now >= self._polled_ns + self._poll_ns:
            self._polled_ns = now
            unread = self._poll()
        self._firing = False
        self._arm(unread)


class _Gate:
    """Pauses reading from one TCP socket while any reason to pause holds."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self._reasons and not self.transport.is_closing():
            self.transport.pause_reading()
        self._reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons and not self.transport.is_closing():
            self.transport.resume_reading()


class _TcpSide(asyncio.Protocol):
    """One socket of a proxied TCP connection; ``direction`` is the data it reads."""

    def __init__(self, emulator: Emulator, direction: Direction,
                 conn: _TcpConn | None = None) -> None:
        self.emulator = emulator
        self.direction = direction
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.conn is None:
            self.conn = _TcpConn(self.emulator, _Gate(transport))
            self.emulator._accepted(self.conn)
        else:
            self.conn.gates[Direction.REVERSE] = _Gate(transport)

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.received(self.direction, data)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.finish(self.direction)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.finish(self.direction)

    def pause_writing(self) -> None:
        # Writes to this socket carry the other direction: stop reading its source.
        if self.conn is not None:
            self.conn.pause(_other(self.direction), "write")

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.resume(_other(self.direction), "write")


class _TcpConn:
    """A client connection and its upstream connection to the target.

    Each direction holds at most ``limit`` bytes between reading and release; beyond
    that its source stops being read until half of it has left.
    """

    def __init__(self, emulator: Emulator, client: _Gate) -> None:
        self.emulator = emulator
        self.gates: dict[Direction, _Gate] = {Direction.FORWARD: client}
        self.pending: dict[Direction, int] = {d: 0 for d in Direction}
        self.last_release: dict[Direction, int] = {d: 0 for d in Direction}
        self.finished: set[Direction] = set()
        self._send: dict[Direction, _Send] = {
            Direction.FORWARD: self._send_forward, Direction.REVERSE: self._send_reverse}

    def pause(self, direction: Direction, reason: str) -> None:
        gate = self.gates.get(direction)
        if gate is not None:
            gate.pause(reason)

    def resume(self, direction: Direction, reason: str) -> None:
        gate = self.gates.get(direction)
        if gate is not None:
            gate.resume(reason)

    def received(self, direction: Direction, data: bytes) -> None:
        release, arrival = self.emulator._tcp_admit(direction, data)
        self.last_release[direction] = release
        self.pending[direction] += len(data)
        stats = self.emulator.stats_by_direction[direction]
        self.emulator._releaser.push(release, arrival, data, self._send[direction], stats)
        if self.pending[direction] > self.emulator._tcp_limit[direction]:
            self.pause(direction, "queue")

    def _deliver(self, direction: Direction, data: bytes) -> None:
        self.pending[direction] -= len(data)
        dest = self.gates.get(_other(direction))
        if dest is not None:
            dest.transport.write(data)
        if self.pending[direction] <= self.emulator._tcp_limit[direction] // 2:
            self.resume(direction, "queue")

    def _send_forward(self, data: bytes) -> None:
        self._deliver(Direction.FORWARD, data)

    def _send_reverse(self, data: bytes) -> None:
        self._deliver(Direction.REVERSE, data)

    def finish(self, direction: Direction) -> None:
        """The source of ``direction`` closed: close the other socket once its data has left."""
        if direction in self.finished:
            return
        self.finished.add(direction)
        dest = self.gates.get(_other(direction))
        if dest is None:
            self.close()
            return
        release = max(now_ns() + self.emulator._models[direction].delay_ns,
                      self.last_release[direction])
        self.emulator._releaser.push(release, 0, b"", lambda _: dest.transport.close(), None)
        if len(self.finished) == len(Direction):
            self.emulator._conns.discard(self)

    def close(self) -> None:
        """Close both sockets now."""
        for gate in self.gates.values():
            gate.transport.close()
        self.emulator._conns.discard(self)


def _other(direction: Direction) -> Direction:
    return Direction.REVERSE if direction is Direction.FORWARD else Direction.FORWARD


class Emulator:
    """A proxy from ``listen`` to ``forward`` (both UDP or both TCP) applying ``path``.

    ``seed`` makes the impairments reproducible; ``control`` is an optional UDP
    endpoint for live commands. Use ``async with`` (or ``start``/``aclose``) on the
    loop that will run it, ideally ``precise_loop()``.
    """

    def __init__(self, listen: Locator, forward: Locator, path: PathSpec, *,
                 name: str = "path", seed: int | None = None,
                 control: Locator | None = None) -> None:
        if listen.protocol != forward.protocol:
            raise TransportError(
                f"cannot forward {listen.protocol} to {forward.protocol}; "
                "use the same protocol on both sides"
            )
        if control is not None and control.protocol != "udp":
            raise TransportError(f"control endpoint {control} must be udp/HOST:PORT")
        self.name = name
        self.path = path
        self.forward = forward
        self._listen = listen
        self._control = control
        seeds = random.Random(seed)
        self._seeds = {d: seeds.getrandbits(64) if seed is not None else None for d in Direction}
        self._models: dict[Direction, ImpairmentModel] = {}
        self.stats_by_direction = {d: DirectionStats() for d in Direction}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._releaser: _Releaser
        self._sockets: list[socket.socket] = []
        self._server: asyncio.Server | None = None
        self._flows: dict[tuple[Any, ...], _UdpFlow] = {}
        self._conns: set[_TcpConn] = set()
        self._tcp_limit: dict[Direction, int] = {}
        self._listen_sock: socket.socket | None = None
        self._lazy: dict[int, tuple[socket.socket, _UdpFlow | None]] = {}
        """The sockets read when the release timer fires (by file descriptor)."""
        self._lazy_directions: set[Direction] = set()
        self._watching = True
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def listen_address(self) -> Locator:
        """The endpoint clients connect to (with the port the OS chose for port 0)."""
        return self._listen

    @property
    def control_address(self) -> Locator | None:
        """The control endpoint, if any (with its actual port)."""
        return self._control

    @property
    def reliable(self) -> bool:
        """True for TCP (byte streams: no loss, no reordering)."""
        return self._listen.protocol == "tcp"

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind the listening (and control) endpoints; ``TransportError`` if one is taken."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        start = now_ns()
        specs = {Direction.FORWARD: self.path.forward, Direction.REVERSE: self.path.reverse}
        polls = {d: _poll_interval_ns(specs[d]) for d in Direction}
        self._lazy_directions = {d for d in Direction if polls[d] and not self.reliable}
        self._releaser = _Releaser(
            loop, self._poll, min(polls[d] for d in self._lazy_directions), self._watch
        ) if self._lazy_directions else _Releaser(loop)
        self._models = {
            d: ImpairmentModel(specs[d], seed=self._seeds[d], start_ns=start,
                               reliable=self.reliable)
            for d in Direction
        }
        self._tcp_limit = {d: _hold_limit(specs[d]) for d in Direction}
        try:
            if self.reliable:
                self._server = await loop.create_server(
                    lambda: _TcpSide(self, Direction.FORWARD), self._listen.host,
                    self._listen.port, family=self._listen.family)
                port = self._server.sockets[0].getsockname()[1]
            else:
                sock = self._bind_udp(self._listen)
                _forwarding(sock)
                self._listen_sock = sock
                self._read_from(sock, None, Direction.FORWARD)
                port = sock.getsockname()[1]
                self._expiry = loop.call_later(FLOW_IDLE_S / 4, self._expire_flows)
            self._listen = self._listen.with_port(port)
            if self._control is not None:
                csock = self._bind_udp(self._control)
                loop.add_reader(csock, self._control_ready, csock)
                self._control = self._control.with_port(csock.getsockname()[1])
        except OSError as exc:
            await self.aclose()
            raise TransportError(
                f"link {self.name}: cannot listen on {self._listen}: {exc.strerror}; "
                "choose a free port"
            ) from exc
        log.info("link %s: %s -> %s (%s)", self.name, self._listen, self.forward,
                 "tcp, no loss" if self.reliable else "udp")

    async def aclose(self) -> None:
        """Stop: close every socket and drop what is pending."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._loop is not None:
            for sock in self._sockets:
                self._loop.remove_reader(sock)
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._flows.clear()
        self._lazy.clear()
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._loop is not None:
            self._releaser.close()

    def cut(self, direction: Direction | None = None) -> None:
        """Cut the path (both directions, or one): nothing more crosses until ``restore``."""
        self._catch_up()
        for d in (direction,) if direction is not None else tuple(Direction):
            self._models[d].set_cut(True)
            for conn in self._conns:
                conn.pause(d, "cut")
        log.warning("link %s: cut %s", self.name, direction.value if direction else "both ways")

    def restore(self, direction: Direction | None = None) -> None:
        """Undo ``cut``."""
        self._catch_up()
        for d in (direction,) if direction is not None else tuple(Direction):
            self._models[d].set_cut(False)
            for conn in self._conns:
                conn.resume(d, "cut")
        log.warning("link %s: restored %s", self.name,
                    direction.value if direction else "both ways")

    def retune(self, changes: dict[str, str], direction: Direction | None = None) -> None:
        """Change impairments (names in ``RETUNABLE``, values as text) of both directions, or
        one, from the next datagram on; ``ValueError`` naming what is wrong, nothing changed."""
        unknown = sorted(set(changes) - set(RETUNABLE))
        if unknown:
            raise ValueError(f"cannot set {', '.join(unknown)}; choose among "
                             f"{', '.join(RETUNABLE)}")
        directions = (direction,) if direction is not None else tuple(Direction)
        try:
            specs = {d: Impairment.model_validate({**self._models[d].spec.model_dump(),
                                                   **changes}) for d in directions}
        except ValidationError as exc:
            raise ValueError(" ".join(str(exc).split())[:200]) from None
        self._catch_up()
        for d, spec in specs.items():
            self._models[d].retune(spec)
        log.warning("link %s: set %s on %s", self.name,
                    " ".join(f"{k}={v}" for k, v in changes.items()),
                    direction.value if direction else "both ways")

    def reset(self, direction: Direction | None = None) -> None:
        """Undo every ``retune``: the profile's impairments again."""
        specs = {Direction.FORWARD: self.path.forward, Direction.REVERSE: self.path.reverse}
        self._catch_up()
        for d in (direction,) if direction is not None else tuple(Direction):
            self._models[d].retune(specs[d])
        log.warning("link %s: reset %s", self.name, direction.value if direction else
                    "both ways")

    def stats(self) -> dict[str, Any]:
        """What the emulator did so far, per direction (delays in [ms] over recent packets), and
        the CPU time [s] its process has used (``cpu_s``)."""
        return {
            "path": self.name,
            "protocol": self._listen.protocol,
            "listen": str(self._listen),
            "forward": str(self.forward),
            "control": str(self._control) if self._control else None,
            "connections": len(self._conns) if self.reliable else len(self._flows),
            "cpu_s": time.process_time(),
            "directions": {
                d.value: {"cut": self._models[d].cut, "delay_ms": self._models[d].spec.delay_ms,
                          "impairment": self._models[d].spec.model_dump(
                              include=set(RETUNABLE)),
                          **self.stats_by_direction[d].summary()}
                for d in self._models
            },
        }

    # --- UDP -------------------------------------------------------------------------------

    def _bind_udp(self, where: Locator) -> socket.socket:
        sock = socket.socket(where.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(where.address)
        except OSError:
            sock.close()
            raise
        self._sockets.append(sock)
        return sock

    def _read_from(self, sock: socket.socket, flow: _UdpFlow | None,
                   direction: Direction) -> None:
        """Read ``sock`` from now on: on arrival, or lazily if ``direction`` allows it."""
        assert self._loop is not None
        if direction in self._lazy_directions:
            self._lazy[sock.fileno()] = (sock, flow)
            if not self._watching:
                return
        self._loop.add_reader(sock, self._udp_read, sock, flow)

    def _watch(self, on: bool) -> None:
        """Let arrivals on the lazily read sockets wake the loop (``on``) or not."""
        assert self._loop is not None
        self._watching = on
        for sock, flow in self._lazy.values():
            if on:
                self._loop.add_reader(sock, self._udp_read, sock, flow)
            else:
                self._loop.remove_reader(sock)

    def _poll(self) -> bool:
        """Read the lazily read sockets that hold datagrams (one ``select()`` for them all);
        True when one was left with more than a burst unread."""
        ready, _, _ = select.select(list(self._lazy), [], [], 0)
        unread = False
        for fd in ready:
            unread |= self._udp_read(*self._lazy[fd])
        return unread

    def _catch_up(self) -> None:
        """Read every lazily read socket empty, so that what arrived before a cut or a restore
        is judged as it was then."""
        while self._lazy and self._poll():
            pass

    def _udp_read(self, sock: socket.socket, flow: _UdpFlow | None) -> bool:
        """Admit what ``sock`` holds, ``_READ_BURST`` datagrams at most (True when that left
        some): the listening socket (``flow`` None: forward, by client address) or
        ``flow``'s upstream socket (reverse)."""
        direction = Direction.FORWARD if flow is None else Direction.REVERSE
        model = self._models[direction]
        stats = self.stats_by_direction[direction]
        # Kernel stamps are CLOCK_REALTIME; this turns them into the monotonic clock.
        realtime_ahead = time.time_ns() - now_ns()
        for _ in range(_READ_BURST):
            try:
                data, anc, _, addr = sock.recvmsg(_MAX_DATAGRAM, _ANC_BYTES)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                # ICMP port unreachable from a target that is not listening yet.
                continue
            t = now_ns()
            if anc:
                sec, nsec = _TIMESPEC.unpack_from(anc[0][2])
                t = min(t, sec * NS_PER_S + nsec - realtime_ahead)
            stats.packets += 1
            stats.bytes += len(data)
            if flow is None:
                client = self._flows.get(addr) or self._new_flow(addr)
                if client is None:
                    stats.dropped["too_many_flows"] += 1
                    continue
                client.last_ns = t
                send = client.send_up
            else:
                send = flow.send_down
            verdict = model.decide(t, len(data))
            if verdict.dropped is not None:
                stats.dropped[verdict.dropped.value] += 1
                continue
            releases = verdict.releases_ns
            if len(releases) > 1:
                stats.duplicated += len(releases) - 1
            for release in releases:
                self._releaser.push(release, t, data, send, stats)
        return True

    def _new_flow(self, addr: tuple[Any, ...]) -> _UdpFlow | None:
        if len(self._flows) >= MAX_FLOWS or self._loop is None or self._listen_sock is None:
            return None
        up = socket.socket(self.forward.family, socket.SOCK_DGRAM)
        try:
            up.setblocking(False)
            _forwarding(up)
            up.connect(self.forward.address)
        except OSError as exc:
            up.close()
            log.warning("link %s: cannot reach %s: %s", self.name, self.forward, exc.strerror)
            return None
        flow = _UdpFlow(self, addr, up, self._listen_sock)
        self._flows[addr] = flow
        self._sockets.append(up)
        self._read_from(up, flow, Direction.REVERSE)
        return flow

    def _expire_flows(self) -> None:
        assert self._loop is not None
        horizon = now_ns() - round(FLOW_IDLE_S * NS_PER_S)
        for addr, flow in list(self._flows.items()):
            if flow.last_ns < horizon:
                self._loop.remove_reader(flow.up)
                self._lazy.pop(flow.up.fileno(), None)
                self._sockets.remove(flow.up)
                flow.up.close()
                del self._flows[addr]
        self._expiry = self._loop.call_later(FLOW_IDLE_S / 4, self._expire_flows)

    # --- TCP -------------------------------------------------------------------------------

    def _accepted(self, conn: _TcpConn) -> None:
        assert self._loop is not None
        self._conns.add(conn)
        conn.pause(Direction.FORWARD, "connecting")
        self._loop.create_task(self._connect_upstream(conn))

    async def _connect_upstream(self, conn: _TcpConn) -> None:
        assert self._loop is not None
        try:
            transport, _ = await self._loop.create_connection(
                lambda: _TcpSide(self, Direction.REVERSE, conn), self.forward.host,
                self.forward.port, family=self.forward.family)
        except OSError as exc:
            log.warning("link %s: cannot connect to %s: %s; closing the client", self.name,
                        self.forward, exc.strerror or exc)
            conn.close()
            return
        if conn not in self._conns:
            transport.close()
            return
        for d in Direction:
            if self._models[d].cut:
                conn.pause(d, "cut")
        conn.resume(Direction.FORWARD, "connecting")

    def _tcp_admit(self, direction: Direction, data: bytes) -> tuple[int, int]:
        """Count a chunk read from a TCP socket; its release and arrival times [ns]."""
        t = now_ns()
        stats = self.stats_by_direction[direction]
        stats.packets += 1
        stats.bytes += len(data)
        (release,) = self._models[direction].decide(t, len(data)).releases_ns
        return release, t

    # --- control ---------------------------------------------------------------------------

    def _control_ready(self, sock: socket.socket) -> None:
        try:
            data, addr = sock.recvfrom(_MAX_DATAGRAM)
        except OSError:
            return
        reply = self.command(data.decode("utf-8", errors="replace"))
        with contextlib.suppress(OSError):
            sock.sendto(json.dumps(reply).encode(), addr)

    def command(self, text: str) -> dict[str, Any]:
        """Run one control command (``cut [dir]``, ``restore [dir]``, ``set [dir]
        NAME=VALUE ...``, ``reset [dir]``, ``stats``)."""
        words = text.split()
        verb = words[0] if words else ""
        named = [w for w in words[1:] if "=" not in w]
        settings = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        try:
            directions = Direction.parse(named[0] if named else None)
            one = directions[0] if len(directions) == 1 else None
            if len(named) > 1 or (settings and verb != "set"):
                verb = "?"
            if verb == "cut":
                self.cut(one)
            elif verb == "restore":
                self.restore(one)
            elif verb == "set" and settings:
                self.retune(settings, one)
            elif verb == "reset":
                self.reset(one)
            elif verb != "stats" or len(words) > 1:
                return {"ok": False, "error": f"unknown command {text.strip()!r}; use "
                        "'cut [forward|reverse]', 'restore [...]', 'set [...] NAME=VALUE ...', "
                        "'reset [...]' or 'stats'"}
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, **self.stats()}


def _poll_interval_ns(spec: Impairment) -> int:
    """How long [ns] a datagram of a direction with ``spec`` may wait in its socket: half the
    shortest delay it plausibly gets (the delay less five jitter deviations), at most
    ``POLL_MAX_MS``; 0 (read on arrival) when that is under ``POLL_MIN_MS``."""
    spare_ms = min((spec.delay_ms - 5.0 * spec.jitter_ms) / 2.0, POLL_MAX_MS)
    return round(spare_ms * NS_PER_MS) if spare_ms >= POLL_MIN_MS else 0


def _forwarding(sock: socket.socket) -> None:
    """Ask the kernel for arrival stamps and large buffers on a forwarding socket."""
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)


def _hold_limit(spec: Impairment) -> int:
    """Bytes a TCP direction may hold [bytes]: what its queue and its delay hold at the cap."""
    if spec.rate_mbit_s <= 0.0:
        return TCP_HOLD_BYTES
    held_s = (spec.queue_ms + spec.delay_ms + 4.0 * spec.jitter_ms) / 1e3
    return max(64 * 1024, round(spec.rate_mbit_s * 1e6 / 8.0 * held_s))


class _UdpFlow:
    """One UDP client and its upstream socket to the target."""

    def __init__(self, emulator: Emulator, addr: tuple[Any, ...], up: socket.socket,
                 listen: socket.socket) -> None:
        self.emulator = emulator
        self.addr = addr
        self.up = up
        self.listen = listen
        self.last_ns = now_ns()

    def send_up(self, data: bytes) -> None:
        try:
            self.up.send(data)
        except OSError:
            self.emulator.stats_by_direction[Direction.FORWARD].dropped["send_failed"] += 1

    def send_down(self, data: bytes) -> None:
        try:
            self.listen.sendto(data, self.addr)
        except OSError:
            self.emulator.stats_by_direction[Direction.REVERSE].dropped["send_failed"] += 1
