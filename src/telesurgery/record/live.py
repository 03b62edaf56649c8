"""A live view of the session in Foxglove: the Foxglove WebSocket server (``foxglove-sdk``).

``LiveServer`` is a ``JsonSink`` like an MCAP recording: every JSON object the
recorder would write goes out on a channel of the same topic, schema and
encoding, so Foxglove shows live what it shows in a recording. It listens on
loopback only (``host``); the SDK sends each client only the channels it
subscribed to, and drops the oldest messages for a client that falls behind
(``backlog`` messages) rather than slow the writer. Log times are the
recorder's receive times [ns]. Not thread-safe: one writer feeds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telesurgery.errors import ConfigError
from telesurgery.record.mcap_writer import dumps
from telesurgery.record.schema import MESSAGE_ENCODING, SCHEMA_ENCODING, JsonObject

if TYPE_CHECKING:
    import foxglove

DEFAULT_PORT = 8765
"""Foxglove's own default port for a WebSocket connection."""
DEFAULT_HOST = "127.0.0.1"


class LiveServer:
    """The Foxglove WebSocket server on ``host``:``port`` (0: any free port, see ``port``);
    ``stop()`` (or the context manager) closes it."""

    def __init__(self, port: int = DEFAULT_PORT, *, host: str = DEFAULT_HOST,
                 name: str = "telesurgery", backlog: int = 1024) -> None:
        # Imported here: the SDK's native library is large, and most runs serve nothing.
        import foxglove

        self._foxglove = foxglove
        # A context of its own: two servers in one process (tests) never share channels.
        self._context = foxglove.Context()
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port,
                                                 context=self._context,
                                                 message_backlog_size=backlog)
        except RuntimeError as exc:
            raise ConfigError(f"cannot serve Foxglove on {host}:{port} ({exc}); choose a free "
                              "port with --foxglove PORT") from exc
        self.host = host
        self.port = self._server.port
        """The port it listens on [TCP]."""
        self._channels: dict[tuple[str, str], foxglove.Channel] = {}

    @property
    def url(self) -> str:
        """The address to open in Foxglove (Open connection, Foxglove WebSocket)."""
        return f"ws://{self.host}:{self.port}"

    def write_json(self, topic: str, schema_name: str, schema: JsonObject, obj: JsonObject,
                   log_ns: int, *, publish_ns: int | None = None, sequence: int = 0) -> None:
        """Send one JSON object on ``topic`` to the clients subscribed to it (``publish_ns``
        and ``sequence`` have no place in the protocol's message frames)."""
        channel = self._channels.get((topic, schema_name))
        if channel is None:
            fg = self._foxglove
            channel = fg.Channel(topic, schema=fg.Schema(
                name=schema_name, encoding=SCHEMA_ENCODING, data=dumps(schema)),
                message_encoding=MESSAGE_ENCODING, context=self._context)
            self._channels[(topic, schema_name)] = channel
        channel.log(dumps(obj), log_time=log_ns)

    def stop(self) -> None:
        """Close every channel and the server (idempotent)."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._server.stop()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LiveServer"]
