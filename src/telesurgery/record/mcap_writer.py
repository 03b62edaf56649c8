"""Writes a session to MCAP: one channel per key, JSON messages with JSON Schemas (Foxglove).

Log time is the receive time [ns] on this process's monotonic clock (the clock
every ``sent_ns`` on this machine is stamped with); publish time is the
sender's ``sent_ns``. The ``telesurgery`` metadata record written first ties
the monotonic clock to the wall clock.

Durability: chunks are closed and handed to the operating system at least
every ``flush_interval_s`` (0.5 s by default), so killing the process (even
with SIGKILL) loses at most that much; the operating system writes them to
disk on its own schedule (``close`` fsyncs). A file cut short is still read
by ``telesurgery.record.reader`` up to its last complete chunk. Not
thread-safe: one thread (the recorder's writer) owns a recording.

A write that fails (disk full) stops the recording for good: the file is cut
back to the end of its last complete record and closed without a footer, so
it reads up to its last complete chunk; every later write, and ``close``,
raises ``RecordingError`` saying so in one line. The file is written
unbuffered (each chunk is one write anyway): a buffer would keep bytes of the
failed chunk and write them later, after a hole, under a footer that claims a
whole file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mcap.writer import CompressionType, Writer

from telesurgery import __version__
from telesurgery.clock import now_ns
from telesurgery.errors import CodecError, RecordingError
from telesurgery.messages import Message
from telesurgery.record.schema import (
    COMPRESSED_VIDEO_SCHEMA,
    COMPRESSED_VIDEO_SCHEMA_NAME,
    MESSAGE_ENCODING,
    PROJECTIONS,
    SCHEMA_ENCODING,
    UNDECODABLE_SCHEMA,
    UNDECODABLE_SCHEMA_NAME,
    JsonObject,
    compressed_video_json,
    undecodable_json,
)
from telesurgery.transport.codec import decode

PROFILE = ""
"""MCAP profile: none of the well-known ones (ros1, ros2) applies to JSON messages."""
METADATA_NAME = "telesurgery"
UNDECODABLE_TOPIC_SUFFIX = "/_undecodable"
_U32 = 0xFFFF_FFFF


class JsonSink(Protocol):
    """Where recorded JSON objects go: an MCAP file, a live Foxglove server, or both."""

    def write_json(self, topic: str, schema_name: str, schema: JsonObject, obj: JsonObject,
                   log_ns: int, *, publish_ns: int | None = None, sequence: int = 0) -> None:
        """Write one JSON object on ``topic`` at ``log_ns`` [ns]."""


def write_message(sink: JsonSink, key: str, msg: Message, wire: bytes, receive_ns: int) -> None:
    """Write ``msg``, received on ``key`` as ``wire`` at ``receive_ns`` [ns], to ``sink``."""
    proj = PROJECTIONS[msg.body.TYPE]
    sink.write_json(key, proj.schema_name, proj.schema, proj.to_json(msg, wire), receive_ns,
                    publish_ns=msg.sent_ns, sequence=msg.seq)


def write_wire(sink: JsonSink, key: str, wire: bytes, receive_ns: int) -> Message | None:
    """Decode ``wire`` and write it to ``sink``; bytes that do not decode go to
    ``<key>/_undecodable``. Returns the message, or None when ``wire`` did not decode."""
    try:
        msg = decode(wire)
    except CodecError as exc:
        sink.write_json(key + UNDECODABLE_TOPIC_SUFFIX, UNDECODABLE_SCHEMA_NAME,
                        UNDECODABLE_SCHEMA, undecodable_json(key, str(exc), wire), receive_ns)
        return None
    write_message(sink, key, msg, wire, receive_ns)
    return msg


def dumps(obj: JsonObject) -> bytes:
    """``obj`` as compact JSON (UTF-8), refusing non-finite numbers, as every sink writes it."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


class _Sink:
    """The file under the MCAP writer, unbuffered; ``tell`` counts the bytes written."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            # A write may take only part of the bytes when the disk fills up.
            n = os.write(self._fd, view)
            self._pos += n
            view = view[n:]
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        """Nothing is buffered here."""

    def fileno(self) -> int:
        return self._fd


class McapRecording:
    """One MCAP file being written; ``close()`` (or the context manager) finishes it.

    ``chunk_size`` [bytes]: a chunk is also closed when it grows past this;
    ``flush_interval_s`` [s]: the most data a crash may lose.
    """

    def __init__(self, path: Path, *, metadata: Mapping[str, str] | None = None,
                 chunk_size: int = 512 * 1024, flush_interval_s: float = 0.5,
                 compression: CompressionType = CompressionType.ZSTD) -> None:
        if not flush_interval_s > 0.0:
            raise RecordingError(f"flush interval must be positive, got {flush_interval_s} s")
        self.path = path
        try:
            # Exclusive creation: a recording of an operation is never overwritten.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise RecordingError(f"cannot create recording {path}: {exc.strerror}; choose a "
                                 "new file in a writable directory") from exc
        self._file = _Sink(fd)
        self._writer = Writer(self._file, chunk_size=chunk_size,  # type: ignore[arg-type]
                              compression=compression)
        # The end of the last complete record written: a failed write is cut back to it.
        self._good = 0
        self._failure: RecordingError | None = None
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str], int] = {}
        self._flush_ns = round(flush_interval_s * 1e9)
        self._next_flush = now_ns() + self._flush_ns
        self._closed = False
        self.counts: Counter[str] = Counter()
        """Messages written per topic."""
        try:
            self._writer.start(PROFILE, f"telesurgery {__version__}")
            self._writer.add_metadata(METADATA_NAME, {**clock_metadata(), **(metadata or {})})
        except OSError as exc:
            os.close(fd)
            raise RecordingError(f"cannot write recording {path}: {exc.strerror}") from exc
        self._good = self._file.tell()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RecordingError(f"recording {self.path} is closed; open a new one")

    def _stop(self, exc: OSError) -> RecordingError:
        """Stop for good after a failed write: cut the file back to its last complete record
        (cutting frees room, so it works on a full disk) and close it without a footer."""
        self._failure = RecordingError(
            f"recording {self.path} stopped: cannot write ({exc.strerror}; is the disk "
            f"full?); it ends at its last complete chunk ({self._good} bytes)")
        self._closed = True
        with contextlib.suppress(OSError):
            os.ftruncate(self._file.fileno(), self._good)
            os.fsync(self._file.fileno())
        with contextlib.suppress(OSError):
            os.close(self._file.fileno())
        return self._failure

    def _channel(self, topic: str, schema_name: str, schema: JsonObject) -> int:
        ident = self._channels.get((topic, schema_name))
        if ident is None:
            schema_id = self._schemas.get(schema_name)
            if schema_id is None:
                schema_id = self._writer.register_schema(schema_name, SCHEMA_ENCODING,
                                                         dumps(schema))
                self._schemas[schema_name] = schema_id
            ident = self._writer.register_channel(topic, MESSAGE_ENCODING, schema_id)
            self._channels[(topic, schema_name)] = ident
        return ident

    def write_json(self, topic: str, schema_name: str, schema: JsonObject, obj: JsonObject,
                   log_ns: int, *, publish_ns: int | None = None, sequence: int = 0) -> None:
        """Write one JSON object on ``topic`` at ``log_ns`` [ns] (the base of every write)."""
        self._check()
        try:
            channel = self._channel(topic, schema_name, schema)
            self._writer.add_message(channel, log_ns, dumps(obj),
                                     log_ns if publish_ns is None else publish_ns,
                                     sequence & _U32)
        except OSError as exc:
            raise self._stop(exc) from exc
        self._good = self._file.tell()
        self.counts[topic] += 1
        self.flush_if_due(log_ns)

    def write_message(self, key: str, msg: Message, wire: bytes, receive_ns: int) -> None:
        """Record ``msg``, received on ``key`` as ``wire`` at ``receive_ns`` [ns]."""
        write_message(self, key, msg, wire, receive_ns)

    def write_wire(self, key: str, wire: bytes, receive_ns: int) -> bool:
        """Decode and record ``wire``; bytes that do not decode go to ``<key>/_undecodable``.

        Returns whether ``wire`` decoded.
        """
        return write_wire(self, key, wire, receive_ns) is not None

    def write_compressed_video(self, topic: str, log_ns: int, timestamp_ns: int, data: bytes,
                               *, frame_id: str, fmt: str = "h264") -> None:
        """Write one encoded frame in ``foxglove.CompressedVideo``.

        ``data``: for H.264, Annex B with the NAL units of exactly one frame (SPS and
        PPS with every IDR); ``timestamp_ns`` [ns]: capture time; ``log_ns`` [ns]:
        receive time.
        """
        self.write_json(topic, COMPRESSED_VIDEO_SCHEMA_NAME, COMPRESSED_VIDEO_SCHEMA,
                        compressed_video_json(timestamp_ns, frame_id, data, fmt), log_ns,
                        publish_ns=timestamp_ns)

    def add_metadata(self, name: str, data: Mapping[str, str]) -> None:
        """Write a metadata record now (outside chunks, so it is on its way to disk at once)."""
        self._check()
        try:
            self._writer.add_metadata(name, dict(data))
        except OSError as exc:
            raise self._stop(exc) from exc
        self._good = self._file.tell()

    def flush_if_due(self, now: int) -> bool:
        """Hand the open chunk to the operating system if the flush interval has passed."""
        if now < self._next_flush:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        """Close the open chunk and hand everything written so far to the operating system."""
        self._check()
        try:
            self._writer.flush()  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise self._stop(exc) from exc
        self._good = self._file.tell()
        self._next_flush = now_ns() + self._flush_ns

    def close(self) -> None:
        """Write the summary and index, fsync and close the file (idempotent, but a
        recording stopped by a failed write raises that failure again)."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            return
        try:
            self._writer.finish()  # type: ignore[no-untyped-call]
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._stop(exc) from exc
        self._closed = True
        os.close(self._file.fileno())

    def __enter__(self) -> McapRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clock_metadata() -> dict[str, str]:
    """This moment on the monotonic [ns] and wall clocks, to convert log times to dates."""
    mono = now_ns()
    wall = time.time_ns()
    return {"monotonic_ns": str(mono), "wall_ns": str(wall),
            "wall_utc": datetime.fromtimestamp(wall / 1e9, UTC).isoformat(),
            "log_time": "receive time [ns] on the recorder's monotonic clock"}


__all__ = ["METADATA_NAME", "UNDECODABLE_TOPIC_SUFFIX", "JsonSink", "McapRecording",
           "clock_metadata", "dumps", "write_message", "write_wire"]
