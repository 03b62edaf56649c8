"""Reads recorded sessions back: decoded messages by key with their receive times.

Uses the official ``mcap`` stream reader, fed only the complete records of each
file: a recording cut short (the recorder was killed, the disk filled) reads up
to its last complete chunk instead of failing, and ``complete`` says whether
every file was finished. Messages come in file order (receive order within a
file); chunk CRCs are checked.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.exceptions import EndOfFile, McapError
from mcap.opcode import Opcode
from mcap.reader import NonSeekingReader
from mcap.records import Channel, Schema
from mcap.records import Message as McapMessage
from mcap.stream_reader import CRCValidationError
from zstandard import ZstdError

from telesurgery.errors import CodecError, RecordingError
from telesurgery.messages import CommandBundle, Message, ServoCP
from telesurgery.record.layout import recording_paths
from telesurgery.record.schema import (
    MESSAGE_SCHEMAS,
    UNDECODABLE_SCHEMA_NAME,
    JsonObject,
    message_of,
)
from telesurgery.transport.codec import MAX_STATUS_DEPTH, untrusted_json
from telesurgery.transport.keys import Keys

log = logging.getLogger(__name__)

MAGIC = b"\x89MCAP0\r\n"
_RECORD_HEAD = struct.Struct("<BQ")
_FOOTER_LEN = 8 + 8 + 4
MAX_RECORDED_DEPTH = MAX_STATUS_DEPTH + 8
"""The deepest a recorded JSON object may nest: a STATUS body inside its projection."""
_DAMAGED = (McapError, CRCValidationError, ZstdError, struct.error, ValueError, KeyError,
            IndexError, OverflowError)
"""What the ``mcap`` library raises on bytes that are not what their records announce:
its own errors, a failed CRC, a chunk zstd cannot decompress, a field cut short, a string
that is not UTF-8 (a ``ValueError``), a reference to a record that is not there."""


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """A message as recorded: its ``key``, receive time [ns, recorder clock], the message."""

    key: str
    receive_ns: int
    message: Message


@dataclass(frozen=True, slots=True)
class RecordedJson:
    """Any recorded JSON object: ``topic``, schema name, log time [ns], the object."""

    topic: str
    schema: str
    log_ns: int
    obj: JsonObject


@dataclass(frozen=True, slots=True)
class FileExtent:
    """How much of a recording file is readable: ``length`` [bytes] of complete records."""

    path: Path
    size: int
    length: int
    complete: bool


def extent(path: Path) -> FileExtent:
    """Measure the complete records of ``path`` (a finished file is complete as it is)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            if _finished(f, size):
                return FileExtent(path, size, size, True)
            f.seek(0)
            if f.read(len(MAGIC)) != MAGIC:
                raise RecordingError(f"{path} is not an MCAP file (bad magic); pass a file "
                                     "written by telesurgery record")
            pos = len(MAGIC)
            while True:
                head = f.read(_RECORD_HEAD.size)
                if len(head) < _RECORD_HEAD.size:
                    break
                _, length = _RECORD_HEAD.unpack(head)
                end = pos + _RECORD_HEAD.size + length
                if end > size:
                    break
                pos = end
                f.seek(pos)
            return FileExtent(path, size, pos, False)
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from exc


def _finished(f: io.BufferedReader, size: int) -> bool:
    footer_at = size - len(MAGIC) - _RECORD_HEAD.size - _FOOTER_LEN
    if footer_at < len(MAGIC):
        return False
    f.seek(footer_at)
    tail = f.read()
    opcode, length = _RECORD_HEAD.unpack_from(tail)
    return opcode == Opcode.FOOTER and length == _FOOTER_LEN and tail.endswith(MAGIC)


class _Prefix(io.RawIOBase):
    """The first ``length`` bytes of a file, so the stream reader never sees a torn record."""

    def __init__(self, f: io.BufferedReader, length: int) -> None:
        self._f = f
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._f.readinto(view[: min(len(view), self._left)])
        self._left -= n
        return n


def _records(ext: FileExtent, topics: frozenset[str] | None
             ) -> Iterator[tuple[Schema | None, Channel, McapMessage]]:
    with open(ext.path, "rb") as f:
        reader = NonSeekingReader(io.BufferedReader(_Prefix(f, ext.length)), validate_crcs=True)
        try:
            yield from reader.iter_messages(topics=topics, log_time_order=False)
        except EndOfFile:
            if ext.complete:
                raise RecordingError(f"{ext.path} ends early although it has a footer; the "
                                     "file is damaged") from None
        except _DAMAGED as exc:
            raise _damaged(ext.path, exc) from exc


def _damaged(path: Path, exc: Exception) -> RecordingError:
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return RecordingError(f"{path} is damaged: {detail}")


class Recording:
    """The recordings of one session directory (or one MCAP file), read back."""

    def __init__(self, path: Path) -> None:
        paths = [path] if path.is_file() else recording_paths(path)
        if not paths:
            raise RecordingError(f"no recording in {path}: expected recording.mcap there; pass "
                                 "the directory given to --record or --out")
        self.extents = tuple(extent(p) for p in paths)
        self.skipped = 0
        """Recorded objects that could not be turned back into messages (damaged files)."""

    @property
    def complete(self) -> bool:
        """True when every file was finished (not cut short by a crash)."""
        return all(e.complete for e in self.extents)

    def metadata(self) -> dict[str, dict[str, str]]:
        """Metadata records by name (the ``telesurgery`` one ties log time to wall time)."""
        out: dict[str, dict[str, str]] = {}
        for ext in self.extents:
            with open(ext.path, "rb") as f:
                reader = NonSeekingReader(io.BufferedReader(_Prefix(f, ext.length)))
                try:
                    for m in reader.iter_metadata():
                        out.setdefault(m.name, m.metadata)
                except EndOfFile:
                    pass
                except _DAMAGED as exc:
                    raise _damaged(ext.path, exc) from exc
        return out

    def json(self, topics: Iterable[str] | None = None) -> Iterator[RecordedJson]:
        """Every recorded JSON object (messages, video, recorder stats), in file order."""
        wanted = None if topics is None else frozenset(topics)
        for ext in self.extents:
            for schema, channel, record in _records(ext, wanted):
                try:
                    obj = untrusted_json(record.data, "recorded object", MAX_RECORDED_DEPTH)
                except CodecError:
                    self._skip(channel.topic, "is not JSON (or nests too deep)")
                    continue
                if not isinstance(obj, dict):
                    self._skip(channel.topic, "is not a JSON object")
                    continue
                yield RecordedJson(channel.topic, schema.name if schema else "", record.log_time,
                                   obj)

    def messages(self, keys: Iterable[str] | None = None) -> Iterator[RecordedMessage]:
        """The recorded wire messages on ``keys`` (all when None), decoded, in file order;
        a command bundle as its commands, each on its arm's CRTK key (``servo_cp``,
        ``jaw/servo_jp``) under the bundle's header, as if sent one by one."""
        for rec in self.json(keys):
            if rec.schema not in MESSAGE_SCHEMAS or "type" not in rec.obj:
                continue
            try:
                msg = message_of(rec.obj)
            except (CodecError, KeyError, ValueError, TypeError) as exc:
                self._skip(rec.topic, f"does not hold a valid message ({exc})")
                continue
            if isinstance(msg.body, CommandBundle):
                yield from _commands(rec.topic, rec.log_ns, msg, msg.body)
            else:
                yield RecordedMessage(rec.topic, rec.log_ns, msg)

    def undecodable(self) -> Iterator[RecordedJson]:
        """Bytes received on session keys that were not valid messages."""
        return (r for r in self.json() if r.schema == UNDECODABLE_SCHEMA_NAME)

    def _skip(self, topic: str, why: str) -> None:
        self.skipped += 1
        if self.skipped == 1:
            log.warning("skipping a recorded object on %s that %s", topic, why)


__all__ = ["FileExtent", "RecordedJson", "RecordedMessage", "Recording", "extent"]


def _commands(topic: str, receive_ns: int, msg: Message,
              bundle: CommandBundle) -> Iterator[RecordedMessage]:
    # Each command under the bundle's header, without the tag (it covered the whole).
    keys = Keys(topic.split("/")[1])
    for body in bundle.commands:
        key = (keys.servo_cp(body.arm) if isinstance(body, ServoCP)
               else keys.jaw_servo_jp(body.arm))
        yield RecordedMessage(key, receive_ns, Message(msg.session, msg.seq, msg.sent_ns, body))
