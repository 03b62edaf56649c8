"""Zenoh sessions, publishers and subscribers that speak the telesurgery codec.

Translates Zenoh's errors into ``TransportError`` at this boundary, numbers every
stream, and counts (never raises on) undecodable input from the network.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zenoh

from telesurgery.clock import name_os_thread, now_ns
from telesurgery.config import ZenohConfig
from telesurgery.errors import CodecError, CodecReason, TransportError
from telesurgery.messages import AnyBody, Message
from telesurgery.transport.codec import decode, encode
from telesurgery.transport.qos import QOS, Stream
from telesurgery.transport.tls import apply_settings, secure_locators

log = logging.getLogger(__name__)


CONNECT_RETRY = "{period_init_ms: 100, period_max_ms: 500, period_increase_factor: 1.5}"
"""Zenoh's connect retry: a router or peer that went away (restarted, or behind a path
back from an outage longer than Zenoh's lease) is linked again within half a second of its
return, where Zenoh's default backs off to 4 s (a TCP connect every 0.5 s meanwhile)."""

Security = Mapping[str, str]
"""Zenoh config entries that make a session secure (``NodeSecurity.zenoh_settings()``:
mutual TLS and the access control)."""


def zenoh_config(cfg: ZenohConfig, security: Security | None = None) -> zenoh.Config:
    """The ``zenoh.Config`` of ``cfg``: explicit endpoints, multicast scouting off.

    With ``security`` the endpoints move to TLS (tcp/ to tls/, udp/ to quic/) and its
    entries are applied on top.
    """
    if security is not None:
        cfg = cfg.model_copy(update={"listen": secure_locators(cfg.listen),
                                     "connect": secure_locators(cfg.connect)})
    zc = zenoh.Config()
    try:
        zc.insert_json5("mode", json.dumps(cfg.mode))
        zc.insert_json5("listen/endpoints", json.dumps(cfg.listen))
        zc.insert_json5("connect/endpoints", json.dumps(cfg.connect))
        zc.insert_json5("scouting/multicast/enabled", "false")
        zc.insert_json5("scouting/gossip/enabled", json.dumps(cfg.gossip))
        # Two batches per priority (Zenoh's default) overflow when the transmit thread is
        # descheduled for a millisecond on a busy machine, and DROP then loses commands
        # that were still fresh; deeper queues ride out such stalls, and the safety
        # supervisor's age limit still rejects anything that waited too long.
        zc.insert_json5("transport/link/tx/queue/size/real_time", "16")
        zc.insert_json5("transport/link/tx/queue/size/interactive_high", "16")
        zc.insert_json5("connect/retry", CONNECT_RETRY)
    except zenoh.ZError as exc:
        raise TransportError(f"invalid Zenoh configuration: {exc}") from exc
    if security is not None:
        apply_settings(zc, security)
    return zc


def open_session(cfg: ZenohConfig, security: Security | None = None) -> zenoh.Session:
    """Open a Zenoh session (secure given ``security``); a port in use or a bad endpoint
    is one clear line."""
    try:
        return zenoh.open(zenoh_config(cfg, security))
    except zenoh.ZError as exc:
        first = str(exc).split(" at ", 1)[0]
        raise TransportError(
            f"cannot open Zenoh session (listen {cfg.listen or 'none'}, connect "
            f"{cfg.connect or 'none'}): {first}; is another node already using the port?"
        ) from exc


def new_session_id() -> int:
    """A random 64-bit id for this run of a node: messages of an earlier run are told apart."""
    return random.SystemRandom().getrandbits(64)


def declare_publisher(session: zenoh.Session, key: str, stream: Stream) -> zenoh.Publisher:
    """A Zenoh publisher on ``key`` with ``stream``'s QoS."""
    q = QOS[stream]
    return session.declare_publisher(key, priority=q.priority, express=q.express,
                                     reliability=q.reliability,
                                     congestion_control=q.congestion_control)


def matching(pub: zenoh.Publisher) -> bool:
    """True while at least one subscriber (local or remote) matches ``pub``'s key."""
    # The stubs say bool; zenoh-python 1.10 returns a MatchingStatus object.
    status: Any = pub.matching_status
    return bool(status.matching)


class Publisher:
    """Publishes codec bodies on one key with the stream's QoS, numbering them 1, 2, ...

    ``on_demand``: keep ``wanted`` up to date with a matching listener, so that a stream
    published every tick can skip building a body nobody subscribes to (asking Zenoh each
    time costs about 20 us on a busy machine, a listener nothing per tick).
    """

    def __init__(self, session: zenoh.Session, key: str, stream: Stream, session_id: int,
                 *, on_demand: bool = False) -> None:
        self.key = key
        self._session_id = session_id
        self._seq = 0
        self._lock = threading.Lock()
        self._pub = declare_publisher(session, key, stream)
        self._wanted = True
        self.refused: Counter[CodecReason] = Counter()
        """Bodies ``offer`` did not publish, by the codec's reason."""
        self._listener: zenoh.MatchingListener[None] | None = None
        if on_demand:
            self._listener = self._pub.declare_matching_listener(self._on_matching)
            self._wanted = matching(self._pub)

    def _on_matching(self, status: zenoh.MatchingStatus) -> None:
        self._wanted = bool(status.matching)

    @property
    def wanted(self) -> bool:
        """False only for an ``on_demand`` publisher that no subscriber matches now."""
        return self._wanted

    @property
    def seq(self) -> int:
        """Sequence number of the last message put."""
        return self._seq

    @property
    def matched(self) -> bool:
        """True while at least one subscriber (local or remote) matches this key."""
        return matching(self._pub)

    def put(self, body: AnyBody) -> Message:
        """Stamp ``body`` with the next sequence number and the send time, and publish it."""
        with self._lock:
            self._seq += 1
            msg = Message(self._session_id, self._seq, now_ns(), body)
            self._pub.put(encode(msg))
        return msg

    def offer(self, body: AnyBody) -> Message | None:
        """``put`` for telemetry a bad figure must not stop: a body the codec refuses (a
        non-finite number in a status, say) is counted in ``refused``, logged once per
        reason, and None is returned, so the thread that publishes it (the patient's
        housekeeping, which also publishes the safety events; the console's loop) goes on."""
        try:
            return self.put(body)
        except CodecError as exc:
            self.refused[exc.reason] += 1
            if self.refused[exc.reason] == 1:
                log.error("%s: not published, the codec refuses it (%s); the figures that "
                          "follow are published as they come", self.key, exc)
            return None

    def skip(self) -> None:
        """Number a message not sent (an on-demand stream nobody wants now): the numbers
        keep counting the stream's ticks, so a subscriber that comes later can tell when
        each message was taken, as from the start."""
        with self._lock:
            self._seq += 1

    def close(self) -> None:
        """Undeclare the publisher (and its matching listener)."""
        if self._listener is not None:
            self._listener.undeclare()
        self._pub.undeclare()


CALLBACK_THREAD_NAME = "zenoh-callback"
"""The OS name of the threads Zenoh runs our handlers on (named at their first message)."""
_callback_thread = threading.local()

Handler = Callable[[Message, int], None]
Gate = Callable[[bytes, Message], bool]
"""Decides on a decoded message and its bytes before its handler sees it (False: drop;
the gate counts what it drops)."""


MAX_LOGGED_CHARS = 160
"""The most characters of an error's detail (or a key) a rejection's log line carries."""


def loggable(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """``text`` made safe for one log line: control and non-ASCII characters escaped as
    ``repr`` does, cut to ``limit`` characters (saying how many more there were)."""
    safe = ascii(text)[1:-1]
    if len(safe) <= limit:
        return safe
    return f"{safe[:limit]}... ({len(safe) - limit} more)"


@dataclass
class RejectCounter:
    """Counts input from the network that did not decode, by the error's fixed reason
    (``CodecReason``), so the table stays as small as that set whatever arrives.

    The first rejection of each reason is logged (key and detail escaped and cut short);
    later ones are only counted.
    """

    counts: Counter[CodecReason] = field(default_factory=Counter)
    handler_failures: int = 0
    """Messages that decoded but that a handler could not take (a bug, or a valid message
    of a shape the handler did not expect, such as a STATUS holding a list)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, error: CodecError) -> None:
        """Count one undecodable message received on ``key``."""
        reason = error.reason
        with self._lock:
            self.counts[reason] += 1
            first = self.counts[reason] == 1
        if first:
            log.warning("rejected undecodable message on %s (%s; more of this reason are "
                        "counted, not logged): %s", loggable(key, 80), reason.value,
                        loggable(str(error)))

    def handler_failed(self, seen: set[int], message_type: int) -> bool:
        """Count one message a handler failed on; True the first time ``message_type`` is
        added to ``seen`` (one subscription's failed types), so it is logged once."""
        with self._lock:
            self.handler_failures += 1
            first = message_type not in seen
            seen.add(message_type)
        return first

    @property
    def total(self) -> int:
        """Rejections so far."""
        return sum(self.counts.values())


def subscribe(session: zenoh.Session, key: str, handler: Handler,
              rejects: RejectCounter, gate: Gate | None = None) -> zenoh.Subscriber[None]:
    """Call ``handler(message, received_ns)`` for each valid message on ``key`` that
    ``gate`` (if any) lets through.

    Runs on Zenoh's thread: handlers must be quick. Bytes that do not decode are
    counted in ``rejects`` and dropped; so is a message its handler fails on, logged with
    its traceback the first time for each message type (a sender repeating it cannot
    flood the log).
    """
    failed_types: set[int] = set()

    def on_sample(sample: zenoh.Sample) -> None:
        received = now_ns()
        if not getattr(_callback_thread, "named", False):
            name_os_thread(CALLBACK_THREAD_NAME)
            _callback_thread.named = True
        data = sample.payload.to_bytes()
        try:
            msg = decode(data)
        except CodecError as exc:
            rejects.add(str(sample.key_expr), exc)
            return
        try:
            if gate is not None and not gate(data, msg):
                return
            handler(msg, received)
        except Exception:
            # A bug in a handler must not kill Zenoh's receive thread.
            if rejects.handler_failed(failed_types, int(msg.body.TYPE)):
                log.exception("handler for %s failed on %s; further failures on this "
                              "message type are counted, not logged", loggable(key, 80),
                              type(msg.body).__name__)

    return session.declare_subscriber(key, on_sample)
