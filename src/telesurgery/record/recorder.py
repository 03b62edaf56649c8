"""The recorder: subscribes to a session's whole key space and writes it to MCAP.

Zenoh's receive thread hands each sample to a channel of its own, without
taking Python's GIL (a callback would wait for it whenever the writer holds it,
and the router would drop what backs up meanwhile); a receive thread stamps
the receive time and queues the bytes (bounded: a full queue drops and counts,
it never blocks the network); one writer thread decodes, writes and flushes at
least every ``flush_interval_s``. Its counters go into the recording every second on
``telesurgery/<session>/recorder/stats``, so a reader can tell whether anything
was lost. Beside each message it writes what Foxglove's 3D and image panels read
(``record/foxglove.py``); with a ``LiveServer`` it also serves all of it live, with or
without a file.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zenoh

from telesurgery.clock import name_os_thread, now_ns
from telesurgery.config import _key_chunk
from telesurgery.errors import ConfigError, RecordingError
from telesurgery.record.foxglove import FoxgloveView
from telesurgery.record.layout import new_recording_path
from telesurgery.record.mcap_writer import JsonSink, McapRecording, write_wire
from telesurgery.record.schema import (
    RECORDER_STATS_SCHEMA,
    RECORDER_STATS_SCHEMA_NAME,
    JsonObject,
)
from telesurgery.transport.keys import Keys

if TYPE_CHECKING:
    # Only its type: the SDK's native library loads where a server is started.
    from telesurgery.record.live import LiveServer

log = logging.getLogger(__name__)

PRESENCE = "recorder"
"""The recorder's liveliness token: ``telesurgery/<session>/presence/recorder``."""
_STATS_PERIOD_NS = 1_000_000_000
_BATCH = 512
_Item = tuple[str, bytes, int]


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """What the recorder saw: messages ``received``, ``written``, ``dropped`` (queue full
    or write failure), ``undecodable`` (written raw), and the deepest the queue got."""

    received: int = 0
    written: int = 0
    dropped: int = 0
    undecodable: int = 0
    queue_peak: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (JSON, reports)."""
        return {"received": self.received, "written": self.written, "dropped": self.dropped,
                "undecodable": self.undecodable, "queue_peak": self.queue_peak}


class _Fanout:
    """Every object written to each of ``sinks``."""

    def __init__(self, sinks: list[JsonSink]) -> None:
        self._sinks = sinks

    def write_json(self, topic: str, schema_name: str, schema: JsonObject, obj: JsonObject,
                   log_ns: int, *, publish_ns: int | None = None, sequence: int = 0) -> None:
        for sink in self._sinks:
            sink.write_json(topic, schema_name, schema, obj, log_ns, publish_ns=publish_ns,
                            sequence=sequence)


class Recorder:
    """Records ``telesurgery/<session>/**`` as seen by ``zenoh_session`` into ``out_dir``
    and serves it on ``live`` (either may be None, not both).

    ``start()`` opens a new recording file (``path``) and subscribes; ``stop()``
    unsubscribes, writes what is queued, finishes the file and returns the counters
    (the live server is the caller's to stop). ``offer()`` also lets a process record
    what it has in hand without Zenoh.
    """

    def __init__(self, zenoh_session: Any, session: str, out_dir: Path | None, *,
                 live: LiveServer | None = None, queue_size: int = 65_536,
                 flush_interval_s: float = 0.5) -> None:
        if out_dir is None and live is None:
            raise ConfigError("nothing to record to; give an output directory, a Foxglove "
                              "port, or both")
        try:
            self._keys = Keys(_key_chunk(session, "session"))
        except ValueError as exc:
            raise ConfigError(f"{exc}, e.g. 'or1'") from exc
        self._zenoh = zenoh_session
        self._out_dir = out_dir
        self._live = live
        self._view = FoxgloveView(self._keys.prefix)
        self._flush_interval_s = flush_interval_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._received = self._dropped = self._peak = 0
        self._written = self._undecodable = 0
        self._recording: McapRecording | None = None
        self._thread: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._subscriber: Any = None
        self._token: Any = None
        self._failure: RecordingError | None = None

    @property
    def path(self) -> Path:
        """The file being written."""
        if self._recording is None:
            raise RecordingError("the recorder writes no file (not started, or live only); "
                                 "start it with an output directory")
        return self._recording.path

    @property
    def stats(self) -> RecorderStats:
        """The counters so far."""
        with self._lock:
            return RecorderStats(self._received, self._written, self._dropped,
                                 self._undecodable, self._peak)

    def start(self) -> None:
        """Open a new recording in the output directory and subscribe to the session."""
        if self._thread is not None:
            raise RecordingError("the recorder is already started; a recorder records once")
        sinks: list[JsonSink] = [] if self._live is None else [self._live]
        if self._out_dir is not None:
            self._recording = McapRecording(
                new_recording_path(self._out_dir), flush_interval_s=self._flush_interval_s,
                metadata={"session": self._keys.session, "key_space": self._keys.everything})
            sinks.append(self._recording)
        self._thread = threading.Thread(target=self._write_loop,
                                        args=(self._recording, _Fanout(sinks)),
                                        name="recorder-writer", daemon=True)
        self._thread.start()
        try:
            self._subscriber = self._zenoh.declare_subscriber(
                self._keys.everything, zenoh.handlers.FifoChannel(self._queue.maxsize))
            # Declared after the subscriber: whoever sees the recorder present (the demo
            # waits for it before starting the nodes) knows that it is recording.
            self._token = self._zenoh.liveliness().declare_token(
                self._keys.presence(PRESENCE))
        except zenoh.ZError as exc:
            self.stop()
            raise RecordingError(f"cannot subscribe to {self._keys.everything}: {exc}") from exc
        self._receiver = threading.Thread(target=self._receive_loop, args=(self._subscriber,),
                                          name="recorder-receive", daemon=True)
        self._receiver.start()
        log.info("recording %s to %s", self._keys.everything,
                 ", ".join(([] if self._recording is None else [str(self._recording.path)])
                           + ([] if self._live is None else [self._live.url])))

    def _receive_loop(self, subscriber: Any) -> None:
        name_os_thread()
        # Ends when the subscriber is undeclared; undeclared before this thread first asks
        # (a recorder stopped at once), Zenoh says so with an error: nothing more to read.
        with contextlib.suppress(zenoh.ZError):
            for sample in subscriber:
                self.offer(str(sample.key_expr), sample.payload.to_bytes(), now_ns())

    def offer(self, key: str, wire: bytes, receive_ns: int) -> bool:
        """Queue ``wire`` received on ``key`` at ``receive_ns`` [ns]; False when dropped."""
        try:
            if self._failure is not None:
                raise queue.Full
            self._queue.put_nowait((key, wire, receive_ns))
        except queue.Full:
            with self._lock:
                self._received += 1
                self._dropped += 1
            return False
        depth = self._queue.qsize()
        with self._lock:
            self._received += 1
            self._peak = max(self._peak, depth)
        return True

    def _write_loop(self, rec: McapRecording | None, out: JsonSink) -> None:
        name_os_thread()
        next_stats = now_ns() + _STATS_PERIOD_NS
        flush_s = self._flush_interval_s
        running = True
        while running:
            batch: list[_Item | None] = []
            try:
                batch.append(self._queue.get(timeout=flush_s))
                while len(batch) < _BATCH:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            try:
                running = self._write_batch(out, batch)
                now = now_ns()
                if now >= next_stats or not running:
                    next_stats = now + _STATS_PERIOD_NS
                    self._write_stats(out, now)
                if rec is not None:
                    rec.flush_if_due(now)
            except RecordingError as exc:
                self._fail(exc)
                return

    def _write_batch(self, out: JsonSink, batch: list[_Item | None]) -> bool:
        written = undecodable = 0
        running = True
        try:
            for item in batch:
                if item is None:
                    running = False
                    continue
                msg = write_wire(out, *item)
                written += 1
                if msg is None:
                    undecodable += 1
                    continue
                for d in self._view.derive(msg):
                    out.write_json(d.topic, d.schema_name, d.schema, d.obj, item[2],
                                   publish_ns=d.stamp_ns)
        finally:
            with self._lock:
                self._written += written
                self._undecodable += undecodable
                self._dropped += sum(item is not None for item in batch) - written
        return running

    def _write_stats(self, out: JsonSink, now: int) -> None:
        out.write_json(f"{self._keys.prefix}/recorder/stats", RECORDER_STATS_SCHEMA_NAME,
                       RECORDER_STATS_SCHEMA, self.stats.as_dict(), now)

    def _fail(self, exc: RecordingError) -> None:
        log.error("recording stopped: %s", exc)
        self._failure = exc
        # Nothing more can be written: what is queued and what still arrives is lost, counted.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                with self._lock:
                    self._dropped += 1

    def stop(self) -> RecorderStats:
        """Unsubscribe, write what is queued, finish the file; returns the final counters.

        Raises ``RecordingError`` if writing failed on the way (the file keeps what
        was written before the failure).
        """
        if self._token is not None:
            self._token.undeclare()
            self._token = None
        if self._subscriber is not None:
            self._subscriber.undeclare()
            self._subscriber = None
        if self._receiver is not None:
            self._receiver.join()
            self._receiver = None
        if self._thread is not None:
            if self._failure is None:
                self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._recording is not None:
            try:
                self._recording.close()
            except RecordingError as exc:
                self._failure = self._failure or exc
        if self._failure is not None:
            raise self._failure
        return self.stats

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["PRESENCE", "Recorder", "RecorderStats"]
