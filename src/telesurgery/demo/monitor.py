"""The demo's own view of the session: a Zenoh client that watches presence, status and links."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zenoh

from telesurgery.config import ZenohConfig
from telesurgery.messages import Message, SafetyEvent, Status
from telesurgery.transport.keys import Keys
from telesurgery.transport.session import RejectCounter, Security, open_session, subscribe


class Monitor:
    """Latest status of every node, recent safety events, and who is present.

    ``security``: the Zenoh entries of the monitor's identity (an observer) on a secure
    site; None on an insecure one.
    """

    def __init__(self, session: str, connect: list[str],
                 security: Security | None = None) -> None:
        self.keys = Keys(session)
        self.status: dict[str, dict[str, Any]] = {}
        self.events: deque[tuple[float, SafetyEvent]] = deque(maxlen=6)
        self.present: set[str] = set()
        self.links: dict[str, dict[str, Any]] = {}
        """Latest statistics of each control path."""
        self.link_alarms: deque[tuple[float, dict[str, Any]]] = deque(maxlen=6)
        self.link_controls: dict[str, str] = {}
        """Each emulated path's control endpoint (set by the demo), for cutting by hand."""
        self.pages: dict[str, str] = {}
        """Each console's page URL with its secret, as the console printed it at start (set
        by the demo): ``console``, and ``backup`` when the bedside console has a page."""
        self._changed = threading.Condition()
        self._z = open_session(ZenohConfig(mode="client", connect=connect, gossip=False),
                               security)
        rejects = RejectCounter()
        self._subs = [
            subscribe(self._z, self.keys.status("*"), self._on_status, rejects),
            subscribe(self._z, self.keys.safety_state, self._on_event, rejects),
            subscribe(self._z, self.keys.link_stats("*"), self._on_link, rejects),
            subscribe(self._z, self.keys.link_alarm("*"), self._on_link_alarm, rejects),
        ]
        self._token_sub = self._z.liveliness().declare_subscriber(
            self.keys.presence("*"), self._on_presence, history=True)

    @property
    def session(self) -> zenoh.Session:
        """The Zenoh session, for callers that subscribe to more keys."""
        return self._z

    def _on_status(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            node = str(msg.body.data.get("node", "?"))
            with self._changed:
                self.status[node] = msg.body.data
                self._changed.notify_all()

    def _on_event(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, SafetyEvent):
            with self._changed:
                self.events.append((time.time(), msg.body))
                self._changed.notify_all()

    def _on_link(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            with self._changed:
                self.links[str(msg.body.data.get("path", "?"))] = msg.body.data
                self._changed.notify_all()

    def _on_link_alarm(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            with self._changed:
                self.link_alarms.append((time.time(), msg.body.data))
                self._changed.notify_all()

    def _on_presence(self, sample: zenoh.Sample) -> None:
        node = str(sample.key_expr).rsplit("/", 1)[-1]
        with self._changed:
            if sample.kind == zenoh.SampleKind.PUT:
                self.present.add(node)
            else:
                self.present.discard(node)
            self._changed.notify_all()

    def wait_present(self, nodes: set[str], timeout_s: float) -> bool:
        """Block until every node in ``nodes`` holds its liveliness token, or time out."""
        return self.wait_until(lambda m: nodes <= m.present, timeout_s)

    def wait_until(self, predicate: Callable[[Monitor], bool], timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (checked at every update), or time out."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout=timeout_s)

    def close(self) -> None:
        """Leave the session."""
        for s in self._subs:
            s.undeclare()
        self._token_sub.undeclare()
        self._z.close()
