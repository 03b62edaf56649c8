"""What the patient node and the console each do over their control paths, in one object each.

``PatientLink``: commands in on every path, first arrival wins; the consoles' measured
state out on every path (observers and recorders read each arm's on the main session);
clock sync and path statistics (``PathWatch``). ``ConsoleLink``: commands out on every path;
state in on every path, newest first arrival wins; sync requests answered
(``SyncResponder``). With no dedicated path both work over the main session alone,
as one path called ``direct``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import zenoh

from telesurgery.config import PathConfig
from telesurgery.messages import Message
from telesurgery.transport.codec import encode
from telesurgery.transport.dualpath import Deliver, FirstArrival, MultiPublisher, Paths
from telesurgery.transport.keys import Keys
from telesurgery.transport.pathwatch import Alarm, PathWatch, SyncResponder
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import RejectCounter, Security


class _Link:
    """What both ends hold: the paths, and the subscribers and publishers on them."""

    def __init__(self, main: zenoh.Session, configs: Sequence[PathConfig], session_id: int,
                 security: Security | None) -> None:
        self.paths = Paths(main, configs, security)
        self._session_id = session_id
        self._subs: list[zenoh.Subscriber[None]] = []
        self._pubs: list[MultiPublisher] = []

    def _close_paths(self) -> None:
        for s in self._subs:
            s.undeclare()
        for pub in self._pubs:
            pub.close()
        self._subs.clear()
        self._pubs.clear()
        self.paths.close()


class PatientLink(_Link):
    """The patient node's control paths.

    ``on_offset(console_session, offset_ns)`` receives the clock offset (local =
    console + offset) as it is estimated; ``on_alarm`` each path lost or back.
    """

    def __init__(self, main: zenoh.Session, configs: Sequence[PathConfig], keys: Keys,
                 session_id: int, on_offset: Callable[[int, int], None],
                 on_alarm: Callable[[Alarm], None] | None = None,
                 security: Security | None = None) -> None:
        super().__init__(main, configs, session_id, security)
        self.arrivals = FirstArrival(self.paths.names)
        self.watch = PathWatch(self.paths, keys, session_id, self.arrivals, on_offset, on_alarm)

    def subscribe_commands(self, keys: Iterable[str], deliver: Deliver,
                           rejects: RejectCounter,
                           gate: Callable[[str, bytes, Message], bool] | None = None) -> None:
        """Hand the first copy of every command on ``keys`` that ``gate(path, bytes,
        message)`` (the tag verifier, if any) passes to ``deliver``."""
        for key in keys:
            self._subs += self.arrivals.subscribe(self.paths.sessions, key, deliver, rejects,
                                                  gate)

    def state_publisher(self, key: str) -> MultiPublisher:
        """A publisher of measured state for the consoles, on every control path."""
        pub = MultiPublisher(self.paths.sessions, key, Stream.STATE, self._session_id)
        self._pubs.append(pub)
        return pub

    def start(self) -> None:
        """Start clock sync and path statistics."""
        self.watch.start()

    def status(self) -> dict[str, Any]:
        """Live per-path figures and the clock estimate."""
        return self.watch.snapshot()

    def report(self) -> dict[str, Any]:
        """Figures over the whole run."""
        return self.watch.report()

    def close(self) -> None:
        """Stop watching, unsubscribe, close the dedicated sessions."""
        self.watch.stop()
        self._close_paths()


class ConsoleLink(_Link):
    """The console's control paths; it answers clock sync while ``answering()``."""

    def __init__(self, main: zenoh.Session, configs: Sequence[PathConfig], keys: Keys,
                 session_id: int, security: Security | None = None,
                 answering: Callable[[], bool] = lambda: True) -> None:
        super().__init__(main, configs, session_id, security)
        self.state = FirstArrival(self.paths.names, latest_only=True)
        self.responder = SyncResponder(self.paths, keys, session_id, answering)

    def command_publisher(self, key: str,
                          seal: Callable[[Message], bytes] = encode) -> MultiPublisher:
        """A publisher of commands on every path (same sequence numbers on each), each
        message turned into bytes by ``seal`` (tagged under a command key, or not)."""
        pub = MultiPublisher(self.paths.sessions, key, Stream.COMMAND, self._session_id,
                             seal)
        self._pubs.append(pub)
        return pub

    def subscribe_state(self, keys: Iterable[str], deliver: Deliver,
                        rejects: RejectCounter) -> None:
        """Hand the newest first copy of the state on ``keys`` to ``deliver``."""
        for key in keys:
            self._subs += self.state.subscribe(self.paths.sessions, key, deliver, rejects)

    def status(self) -> dict[str, Any]:
        """Per path: state copies received first or late, sync requests answered (cheap
        enough for the teleoperation loop's thread)."""
        return {"paths": self.paths.names, "state": self.state.summary(lag=False),
                "sync_answered": dict(self.responder.answered)}

    def close(self) -> None:
        """Stop answering, unsubscribe, close the dedicated sessions."""
        self.responder.close()
        self._close_paths()
