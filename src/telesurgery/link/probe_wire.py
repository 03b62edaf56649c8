"""The probe's UDP wire format: timestamped pings, the responder's report, paced bursts.

Layout (little-endian): a 14-byte header, then the body of the message type::

    offset size field
    0      4    magic b"TSPB"
    4      1    version (1)
    5      1    type (see ``Kind``)
    6      4    run id (u32), chosen by the prober for one measurement
    10     4    sequence number (u32)

    PING          t0 i64, then padding to the probe size
    PONG          t0 i64, t1 i64, t2 i64, then padding (a pong is as big as its ping)
    REPORT_REQ    nothing
    REPORT        pings received u32, bitmap length u32, bitmap (bit i: ping i arrived)
    BURST_REQ     packets u32, packet size u16, rate [bit/s] f64
    BURST         send time i64, then padding to the packet size

Timestamps are each node's monotonic clock [ns]. ``parse`` returns a message or
raises ``CodecError`` saying what is wrong, whatever the bytes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from telesurgery.errors import CodecError, CodecReason

MAGIC = b"TSPB"
VERSION = 1
_HEADER = struct.Struct("<4sBBII")
HEADER_SIZE = _HEADER.size
_PING = struct.Struct("<q")
_PONG = struct.Struct("<qqq")
_REPORT = struct.Struct("<II")
_BURST_REQ = struct.Struct("<IHd")
_BURST = struct.Struct("<q")
MAX_DATAGRAM = 65_507
MAX_PINGS = (MAX_DATAGRAM - HEADER_SIZE - _REPORT.size) * 8
"""Pings one run may send: the report's bitmap must fit one datagram."""


class Kind(enum.IntEnum):
    """Message types on the wire."""

    PING = 1
    PONG = 2
    REPORT_REQ = 3
    REPORT = 4
    BURST_REQ = 5
    BURST = 6


def _header(kind: Kind, run: int, seq: int) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, kind, run, seq)


def _pad(body: bytes, size: int) -> bytes:
    return body + bytes(max(0, size - len(body)))


@dataclass(frozen=True, slots=True)
class Ping:
    """Prober to responder; ``size`` [bytes] is the whole datagram."""

    run: int
    seq: int
    t0_ns: int
    size: int = 64

    def __bytes__(self) -> bytes:
        return _pad(_header(Kind.PING, self.run, self.seq) + _PING.pack(self.t0_ns), self.size)


@dataclass(frozen=True, slots=True)
class Pong:
    """Responder to prober: the ping's t0, and the responder's receive and send times."""

    run: int
    seq: int
    t0_ns: int
    t1_ns: int
    t2_ns: int
    size: int = 64

    def __bytes__(self) -> bytes:
        body = _PONG.pack(self.t0_ns, self.t1_ns, self.t2_ns)
        return _pad(_header(Kind.PONG, self.run, self.seq) + body, self.size)


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """Prober asks which pings of ``run`` arrived."""

    run: int

    def __bytes__(self) -> bytes:
        return _header(Kind.REPORT_REQ, self.run, 0)


@dataclass(frozen=True, slots=True)
class Report:
    """Which pings of ``run`` arrived (bit i of ``bitmap``, least significant first)."""

    run: int
    received: int
    bitmap: bytes

    def arrived(self, seq: int) -> bool:
        """True if ping ``seq`` reached the responder."""
        byte = seq >> 3
        return byte < len(self.bitmap) and bool(self.bitmap[byte] >> (seq & 7) & 1)

    def __bytes__(self) -> bytes:
        return (_header(Kind.REPORT, self.run, 0) + _REPORT.pack(self.received, len(self.bitmap))
                + self.bitmap)


@dataclass(frozen=True, slots=True)
class BurstRequest:
    """Prober asks for ``packets`` datagrams of ``packet_size`` [bytes] at ``rate_bps``."""

    run: int
    packets: int
    packet_size: int
    rate_bps: float

    def __bytes__(self) -> bytes:
        body = _BURST_REQ.pack(self.packets, self.packet_size, self.rate_bps)
        return _header(Kind.BURST_REQ, self.run, 0) + body


@dataclass(frozen=True, slots=True)
class BurstPacket:
    """One datagram of a burst."""

    run: int
    seq: int
    sent_ns: int
    size: int

    def __bytes__(self) -> bytes:
        body = _BURST.pack(self.sent_ns)
        return _pad(_header(Kind.BURST, self.run, self.seq) + body, self.size)


Message = Ping | Pong | ReportRequest | Report | BurstRequest | BurstPacket


def parse(data: bytes) -> Message:
    """Decode one datagram; ``CodecError`` if it is not a probe message of this version."""
    if len(data) < HEADER_SIZE:
        raise CodecError(f"probe datagram of {len(data)} bytes is shorter than its "
                         f"{HEADER_SIZE}-byte header; is something else sending to this port?",
                         CodecReason.TRUNCATED)
    magic, version, kind, run, seq = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(f"not a probe datagram (magic {magic!r}); is something else sending "
                         "to this port?", CodecReason.BAD_MAGIC)
    if version != VERSION:
        raise CodecError(f"probe version {version}, this side speaks {VERSION}; "
                         "run the same telesurgery version at both ends", CodecReason.BAD_VERSION)
    try:
        k = Kind(kind)
    except ValueError:
        raise CodecError(f"unknown probe message type {kind}",
                         CodecReason.UNKNOWN_TYPE) from None
    body = memoryview(data)[HEADER_SIZE:]
    try:
        if k is Kind.PING:
            (t0,) = _PING.unpack_from(body)
            return Ping(run, seq, t0, len(data))
        if k is Kind.PONG:
            t0, t1, t2 = _PONG.unpack_from(body)
            return Pong(run, seq, t0, t1, t2, len(data))
        if k is Kind.REPORT_REQ:
            return ReportRequest(run)
        if k is Kind.REPORT:
            received, n = _REPORT.unpack_from(body)
            bitmap = bytes(body[_REPORT.size:_REPORT.size + n])
            if len(bitmap) != n:
                raise CodecError(f"probe report announces {n} bitmap bytes, carries "
                                 f"{len(bitmap)}", CodecReason.TRUNCATED)
            return Report(run, received, bitmap)
        if k is Kind.BURST_REQ:
            packets, size, rate = _BURST_REQ.unpack_from(body)
            if not (rate > 0.0 and HEADER_SIZE + _BURST.size <= size):
                raise CodecError(f"probe burst request with rate {rate} bit/s and packets of "
                                 f"{size} bytes; both must be positive and hold the header",
                                 CodecReason.BAD_FIELD)
            return BurstRequest(run, packets, size, rate)
        (sent,) = _BURST.unpack_from(body)
        return BurstPacket(run, seq, sent, len(data))
    except struct.error as exc:
        raise CodecError(f"probe {k.name} datagram truncated ({len(data)} bytes)",
                         CodecReason.TRUNCATED) from exc
