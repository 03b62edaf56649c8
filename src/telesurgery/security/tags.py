"""End-to-end command authentication: tags on commands, replay windows, the tag verifier.

A console holding a command key (agreed with the patient node, ``security.handshake``)
seals every ``servo_cp``, ``jaw/servo_jp`` and control request it sends: the header's flag bit 0 is
set and the message ends with HMAC-SHA256 over the header and body, truncated to
``TAG_SIZE`` (16) bytes. The header holds the console's session id, the sequence number
and the send time, so the tag covers the session token and the sequence. Routers
relay the bytes; without the key they can neither forge a tag nor change a bit under
one, and a command sent again is caught by the replay window.

``CommandVerifier`` is the pure core on the patient side (no threads of its own, no
I/O): it holds the key of each console session and, per command stream, which
sequence numbers each path already brought.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, replace

from telesurgery.messages import (
    CommandBundle,
    ControlRequest,
    JawServoJP,
    Message,
    ServoCP,
    Status,
)
from telesurgery.transport.codec import FLAG_TAG, FLAGS_OFFSET, TAG_SIZE, encode

KEY_SIZE = 32
"""Bytes of a command key (HMAC-SHA256 key)."""
REPLAY_WINDOW = 4096
"""Sequence numbers [count] below the newest of a stream that are still judged (4 s of
commands at 1 kHz); anything older is refused as a replay. The supervisor's command age
limit (100 ms) is far shorter, so nothing legitimate is ever that old."""
MAX_SESSIONS = 8
"""Console sessions whose keys are kept; the oldest is forgotten beyond this."""


class TagReason(enum.Enum):
    """Why the tag gate refused a command (security's own verdicts; the safety
    supervisor counts its own, ``safety.checks.Reason``); the value is the name used in
    status JSON."""

    UNTAGGED = "untagged"
    """No authentication tag where the patient node requires one."""
    BAD_TAG = "bad_tag"
    """The authentication tag does not match: forged or altered on the way."""
    UNKNOWN_KEY = "unknown_key"
    """Tagged for a console session with no command key agreed with this patient node:
    a command of a previous session, or of a console that never exchanged keys."""
    REPLAYED = "replayed"
    """A valid tag on a sequence number this path already brought, or one too old to
    judge: a captured command sent again."""
    MALFORMED = "malformed"
    """A tagged message on a command key that is not a command or control request."""


class TagKey:
    """A command key ready to tag: HMAC-SHA256 keyed once, copied per message (a third
    faster than keying it every time)."""

    __slots__ = ("_hmac",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a command key is {KEY_SIZE} bytes, got {len(key)}")
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)

    def tag(self, signed: bytes) -> bytes:
        """The ``TAG_SIZE``-byte tag of ``signed`` (header and body)."""
        h = self._hmac.copy()
        h.update(signed)
        return h.digest()[:TAG_SIZE]


def seal(msg: Message, key: TagKey) -> bytes:
    """``msg`` encoded with flag bit 0 set and its tag under ``key`` appended."""
    signed = bytearray(encode(replace(msg, tag=b"") if msg.tag else msg))
    signed[FLAGS_OFFSET] |= FLAG_TAG
    return bytes(signed) + key.tag(bytes(signed))


def tag_matches(data: bytes, key: TagKey) -> bool:
    """True when the last ``TAG_SIZE`` bytes of ``data`` are the tag of the rest under
    ``key`` (compared in constant time)."""
    if len(data) <= TAG_SIZE:
        return False
    return hmac.compare_digest(key.tag(data[:-TAG_SIZE]), data[-TAG_SIZE:])


class ReplayWindow:
    """Which of the last ``size`` sequence numbers of one stream each path brought.

    Per path, bit ``i`` of a mask is set when that path brought number ``top - i``.
    A copy is fresh when its number is within the window and its path has not
    brought it: the same number on two paths is dual-path redundancy, on one path
    twice a replay.

    One of three sequence checks on a command (before ``transport.dualpath.FirstArrival``
    and ``safety.checks.check_sequence``); only this one sees control requests, which
    never reach the supervisor, and only it remembers a console session's numbers after
    the supervisor has moved to another session (and forgotten them), so a captured
    command sent again is refused as a replay there too.
    """

    __slots__ = ("_full", "_seen", "size", "top")

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self.size = size
        self.top = 0
        self._full = (1 << size) - 1
        self._seen: dict[str, int] = {}

    def admit(self, path: str, seq: int) -> bool:
        """Mark ``seq`` as brought by ``path``; False when it is a replay."""
        if seq > self.top:
            shift = seq - self.top
            self.top = seq
            if shift >= self.size:
                self._seen.clear()
            else:
                seen, full = self._seen, self._full
                for p, m in seen.items():
                    seen[p] = (m << shift) & full
        back = self.top - seq
        if back >= self.size:
            return False
        bit = 1 << back
        mask = self._seen.get(path, 0)
        if mask & bit:
            return False
        self._seen[path] = mask | bit
        return True


@dataclass(frozen=True, slots=True)
class SessionKey:
    """The command key of one console session and whose certificate agreed it."""

    key: TagKey
    common_name: str
    serial: int
    """The serial number of that certificate."""


class CommandVerifier:
    """Verifies the tags of commands against the keys of console sessions (thread-safe).

    ``set_key`` installs the key a handshake produced; a console identity agreeing a key
    for a new session forgets its previous sessions' keys, so their commands are refused
    as ``UNKNOWN_KEY`` from then on.
    """

    def __init__(self, window: int = REPLAY_WINDOW, max_sessions: int = MAX_SESSIONS) -> None:
        self._window = window
        self._max = max_sessions
        self._keys: OrderedDict[int, SessionKey] = OrderedDict()
        self._windows: dict[tuple[int, int, str], ReplayWindow] = {}
        self._lock = threading.Lock()

    def set_key(self, session: int, key: bytes, common_name: str, serial: int) -> None:
        """Accept commands of console ``session`` tagged under ``key``, agreed by the
        certificate ``common_name`` with serial number ``serial``."""
        with self._lock:
            for old in [s for s, k in self._keys.items()
                        if k.common_name == common_name and s != session]:
                self._forget(old)
            self._keys[session] = SessionKey(TagKey(key), common_name, serial)
            self._keys.move_to_end(session)
            while len(self._keys) > self._max:
                self._forget(next(iter(self._keys)))

    def forget_serials(self, serials: Collection[int]) -> list[str]:
        """Forget the sessions whose certificate serial is in ``serials`` (revoked);
        returns their common names."""
        with self._lock:
            gone = [(s, k.common_name) for s, k in self._keys.items() if k.serial in serials]
            for session, _ in gone:
                self._forget(session)
        return [cn for _, cn in gone]

    def _forget(self, session: int) -> None:
        del self._keys[session]
        for k in [k for k in self._windows if k[0] == session]:
            del self._windows[k]

    def key_of(self, session: int) -> SessionKey | None:
        """The key of console ``session``, if one is agreed."""
        with self._lock:
            return self._keys.get(session)

    def check(self, path: str, data: bytes, msg: Message) -> TagReason | None:
        """Why the command ``msg`` (decoded from ``data``, brought by ``path``) must be
        refused, or None when its tag is valid and it is no replay."""
        if not msg.tag:
            return TagReason.UNTAGGED
        body = msg.body
        # Status: the bedside's checklist confirmations and overrides (control/grant).
        if not isinstance(body, ServoCP | JawServoJP | CommandBundle | ControlRequest | Status):
            return TagReason.MALFORMED
        with self._lock:
            entry = self._keys.get(msg.session)
            if entry is None:
                return TagReason.UNKNOWN_KEY
            if not tag_matches(data, entry.key):
                return TagReason.BAD_TAG
            # Streams by what the authenticated body says, not by the key it came on: a
            # command moved to another key expression is still the same command.
            stream = (msg.session, int(body.TYPE),
                      body.arm if isinstance(body, ServoCP | JawServoJP) else "")
            window = self._windows.get(stream)
            if window is None:
                window = self._windows[stream] = ReplayWindow(self._window)
            if not window.admit(path, msg.seq):
                return TagReason.REPLAYED
        return None
