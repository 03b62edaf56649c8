"""The audit trail: append-only, hash-chained records, each signed (Ed25519) by its node.

One trail is one run of one node (``patient``, ``console``, ``backup``...), a
JSON-lines file ``audit/<node>-<run>.audit.jsonl`` beside its public key
``audit/<node>-<run>.key.json``. A record is::

    {"index": 3, "time": {"wall": "2025-06-01T09:30:00.123456+00:00", "mono_ns": 12345},
     "node": "patient", "kind": "hold", "data": {...}, "prev_hash": "<hex>",
     "hash": "<hex>", "signature": "<base64>"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
the record without ``hash`` and ``signature``, which includes ``prev_hash``,
the hash of the record before it (64 zeros for record 0); ``signature`` is the
node's Ed25519 signature of ``b"telesurgery-audit-v1\\0"`` + the 32 hash bytes.
Record 0 is ``session_start`` and announces the signing key and its
fingerprint; the last is ``session_stop``. Editing, removing, reordering or
inserting a record, or cutting the tail, breaks an index, a hash, a link, a
signature or the closing record, and ``AuditVerifier`` says which.

Durability: ``append`` chains and signs at once (tens of microseconds) and a
writer thread writes and fsyncs each batch, so records are on disk within one
fsync of being appended; ``sync()`` waits for that.

A full disk (or any write error) never leaves part of a record: the writer cuts
the file back to the end of its last complete, fsynced record, keeps what is not
yet written in memory (at most ``MAX_BACKLOG`` records; newer ones are counted
as lost and never chained, so the chain stays whole) and tries again every
``RETRY_S``. Once writing works again it appends ``audit_interrupted``, chained
and signed like any record, saying from when to when and how many records were
lost. A trail whose disk never came back before ``close()`` ends at its last
complete record without ``session_stop``, which ``AuditVerifier`` reports as a
trail that ended early.

Keys and the residual risk: by default each run signs with a fresh key held
only in memory, so once a trail is closed nobody (an attacker on the disk, or
the node's own operator) can sign another record with that key. The key file
is a convenience, not a root of trust: someone who can write the directory can
rewrite a whole trail under a new key of their own, and the new key file,
``session_start`` and signatures will agree. That is caught only by comparing
the signer's fingerprint with one recorded elsewhere: it is printed when the
node starts and by ``audit verify``; pass it with ``--trust`` (the session
recording and other sites' trails are natural places to keep it). Binding node
keys to certificates from the site PKI comes with the security work.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telesurgery import __version__
from telesurgery.clock import name_os_thread, now_ns
from telesurgery.errors import CodecError, ConfigError, RecordingError
from telesurgery.record.layout import KEY_SUFFIX, TRAIL_SUFFIX, audit_dir
from telesurgery.transport.codec import untrusted_json

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""``prev_hash`` of record 0."""
SIGNATURE_CONTEXT = b"telesurgery-audit-v1\x00"
ALGORITHM = "ed25519"
MAX_RECORD_DEPTH = 64
"""The deepest a record may nest (objects and lists); deeper is damage, not a record."""
MAX_BACKLOG = 10_000
"""Records kept in memory while the trail cannot be written; more are lost (counted)."""
RETRY_S = 1.0
"""How often [s] a trail that cannot be written is tried again."""


class AuditKind(enum.StrEnum):
    """What an audit record is about."""

    SESSION_START = "session_start"
    SESSION_STOP = "session_stop"
    CONTROL_OWNER = "control_owner"
    HANDOVER_REQUEST = "handover_request"
    HANDOVER = "handover"
    ENABLE = "enable"
    DISABLE = "disable"
    ENGAGE = "engage"
    CLUTCH = "clutch"
    HOLD = "hold"
    ESTOP = "estop"
    FAULT = "fault"
    FORCE_LIMIT = "force_limit"
    """A force or grip cap reached or cleared (the cause says which)."""
    SAFETY_REJECTIONS_SUMMARY = "safety_rejections_summary"
    LINK_ALARM = "link_alarm"
    KEY_AGREED = "key_agreed"
    KEY_REFUSED = "key_refused"
    CHECKLIST = "checklist"
    """The pre-flight checklist's items and states, each time they change."""
    CHECKLIST_OVERRIDE = "checklist_override"
    """A failed checklist item overridden by the bedside, with the written reason."""
    REPLAY = "replay"
    """A replay of a console's outage motion offered, allowed or ended (``outcome``)."""
    REPLAYED_COMMAND = "replayed_command"
    """One command of an allowed replay, accepted by the supervisor."""
    BROADCAST = "broadcast"
    """An observer gateway's broadcast started or stopped, and who allowed it."""
    AUDIT_INTERRUPTED = "audit_interrupted"


def record_object(line: str | bytes) -> dict[str, Any] | None:
    """One trail line as a JSON object; None when it is not one (damaged, edited, nested
    too deep): for readers that skip what ``AuditVerifier`` reports."""
    try:
        obj = untrusted_json(line, "audit record", MAX_RECORD_DEPTH)
    except CodecError:
        return None
    return obj if isinstance(obj, dict) else None


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj``: sorted keys, no spaces, UTF-8, finite numbers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<64 hex>`` of the raw public key: what people compare out of band."""
    return "SHA256:" + hashlib.sha256(public_key_bytes(key)).hexdigest()


def short(fp: str) -> str:
    """A fingerprint shortened for one-line output."""
    return fp[:23] + "…"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One record of a trail; ``mono_ns`` [ns] on the node's monotonic clock."""

    index: int
    wall: str
    mono_ns: int
    node: str
    kind: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str = ""
    signature: str = ""

    def unsigned(self) -> dict[str, Any]:
        """What the hash covers: everything but ``hash`` and ``signature``."""
        return {"index": self.index, "time": {"wall": self.wall, "mono_ns": self.mono_ns},
                "node": self.node, "kind": self.kind, "data": dict(self.data),
                "prev_hash": self.prev_hash}

    def digest(self) -> str:
        """The SHA-256 [hex] of the canonical unsigned record."""
        return hashlib.sha256(canonical(self.unsigned())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The whole record as a JSON object."""
        return {**self.unsigned(), "hash": self.hash, "signature": self.signature}

    @staticmethod
    def from_json(obj: Any) -> AuditRecord:
        """Parse a record; ``ValueError`` names the field that is missing or wrong."""
        if not isinstance(obj, dict) or set(obj) != set(_FIELDS):
            raise ValueError(f"it must have exactly the fields {', '.join(_FIELDS)}")
        time = obj["time"]
        if not isinstance(time, dict) or set(time) != {"wall", "mono_ns"}:
            raise ValueError("field 'time' must be an object of 'wall' and 'mono_ns'")
        values: dict[str, Any] = {**obj, "wall": time["wall"], "mono_ns": time["mono_ns"]}
        del values["time"]
        for name, want in _TYPES.items():
            value = values[name]
            if not isinstance(value, want) or isinstance(value, bool):
                raise ValueError(f"field '{name}' is not a {want.__name__}")
        return AuditRecord(**values)


_FIELDS = ("index", "time", "node", "kind", "data", "prev_hash", "hash", "signature")
_TYPES: dict[str, type] = {"index": int, "wall": str, "mono_ns": int, "node": str, "kind": str,
                           "data": dict, "prev_hash": str, "hash": str, "signature": str}


def _sign(key: Ed25519PrivateKey, digest: str) -> str:
    return base64.b64encode(key.sign(SIGNATURE_CONTEXT + bytes.fromhex(digest))).decode("ascii")


def _signature_ok(key: Ed25519PublicKey, record: AuditRecord) -> bool:
    try:
        key.verify(base64.b64decode(record.signature, validate=True),
                   SIGNATURE_CONTEXT + bytes.fromhex(record.hash))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _check_name(value: str, what: str) -> str:
    if not value or not value.isascii() or not all(c.isalnum() or c in "-_." for c in value):
        raise ConfigError(f"audit {what} {value!r} must be ASCII letters, digits, '-', '_' or "
                          "'.', e.g. 'patient'")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditWriter:
    """Writes one node run's trail in ``<session dir>/audit``; thread-safe.

    Opening writes the key file and ``session_start`` (with ``start_data``);
    ``close()`` writes ``session_stop``. ``key``: the node's signing key (default:
    a fresh one, never stored). ``on_record``: called with each record as it is
    appended (e.g. to publish it, so a copy lives elsewhere); it must be quick.
    ``max_backlog``, ``retry_s``: see ``MAX_BACKLOG`` and ``RETRY_S``.
    """

    def __init__(self, session_dir: Path, node: str, session: str, *,
                 key: Ed25519PrivateKey | None = None, run: str | None = None,
                 start_data: Mapping[str, Any] | None = None,
                 on_record: Callable[[AuditRecord], None] | None = None,
                 max_backlog: int = MAX_BACKLOG, retry_s: float = RETRY_S) -> None:
        self.node = _check_name(node, "node name")
        run = _check_name(run, "run id") if run else os.urandom(4).hex()
        self._key = key or Ed25519PrivateKey.generate()
        public = self._key.public_key()
        self.fingerprint = fingerprint(public)
        directory = audit_dir(session_dir)
        stem = f"{self.node}-{run}"
        self.path = directory / (stem + TRAIL_SUFFIX)
        self.key_path = directory / (stem + KEY_SUFFIX)
        self._on_record = on_record
        self._max_backlog = max_backlog
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._durable = threading.Condition()
        self._pending: list[bytes] = []
        self._appended = self._written = 0
        self._failure: RecordingError | None = None
        self._closed = self._closing = False
        self._next_index = 0
        self._prev_hash = GENESIS
        # The file ends here after the last complete, fsynced record: a failed write is
        # cut back to it, so no partial record ever stays in the trail.
        self._good_offset = 0
        # While the trail cannot be written: when that began (wall, monotonic [ns]), the
        # error, and how many records were lost over the backlog bound.
        self._outage: tuple[str, int, str] | None = None
        self._outage_lost = 0
        self._lost = 0
        self._attempts = 0
        self._retry_now = False
        self._failing = False
        public_b64 = base64.b64encode(public_key_bytes(public)).decode("ascii")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open(self.key_path, "x", encoding="utf-8") as f:
                f.write(json.dumps({"node": self.node, "algorithm": ALGORITHM,
                                    "public_key": public_b64, "fingerprint": self.fingerprint,
                                    "trail": self.path.name}, indent=2) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                               0o644)
            _fsync_dir(directory)
        except OSError as exc:
            raise RecordingError(f"cannot create audit trail {self.path}: {exc.strerror}; "
                                 "choose a writable session directory") from exc
        self._thread = threading.Thread(target=self._write_loop, name=f"audit-{self.node}",
                                        daemon=True)
        self._thread.start()
        self.append(AuditKind.SESSION_START, {
            "session": session, "node": self.node, "algorithm": ALGORITHM,
            "public_key": public_b64, "fingerprint": self.fingerprint,
            "software": f"telesurgery {__version__}", **(start_data or {})})
        log.info("audit trail %s signed by %s", self.path, self.fingerprint)

    @property
    def head(self) -> tuple[int, str]:
        """Index and hash of the last record appended (what a copy elsewhere anchors)."""
        with self._lock:
            return self._next_index - 1, self._prev_hash

    @property
    def lost(self) -> int:
        """Records appended while the trail could not be written, beyond the backlog
        bound: never chained, never written (``audit_interrupted`` counts them)."""
        with self._durable:
            return self._lost

    @property
    def interrupted(self) -> bool:
        """Whether the trail cannot be written now (records wait in memory)."""
        with self._durable:
            return self._outage is not None

    def append(self, kind: AuditKind, data: Mapping[str, Any] | None = None
               ) -> AuditRecord | None:
        """Chain, sign and queue one record; it is on disk within one fsync.

        Never waits on the disk. Returns None when the record is lost: the trail
        cannot be written and ``max_backlog`` records already wait (``lost`` counts
        it). Raises ``RecordingError`` if the trail is closed, and ``ConfigError``
        if ``data`` is not JSON (finite numbers, string keys).
        """
        return self._append(kind, data, bounded=kind is not AuditKind.SESSION_STOP)

    def _append(self, kind: AuditKind, data: Mapping[str, Any] | None, *, bounded: bool
                ) -> AuditRecord | None:
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise RecordingError(f"audit trail {self.path} is closed; open a new one")
            if bounded:
                with self._durable:
                    held = self._appended - self._written
                    if self._outage is not None and held >= self._max_backlog:
                        # Lost before it is chained: the chain on disk stays whole, and
                        # audit_interrupted says how many are missing.
                        self._lost += 1
                        self._outage_lost += 1
                        return None
            record = AuditRecord(self._next_index, datetime.now(UTC).isoformat(), now_ns(),
                                 self.node, str(kind), dict(data or {}), self._prev_hash)
            try:
                digest = record.digest()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"audit data of {kind} is not plain JSON ({exc}); pass "
                                  "strings, finite numbers, lists and dicts") from exc
            record = AuditRecord(record.index, record.wall, record.mono_ns, record.node,
                                 record.kind, record.data, record.prev_hash, digest,
                                 _sign(self._key, digest))
            self._next_index += 1
            self._prev_hash = digest
            with self._durable:
                self._pending.append(canonical(record.to_json()) + b"\n")
                self._appended += 1
                self._durable.notify_all()
        if self._on_record is not None:
            self._on_record(record)
        return record

    def _write_loop(self) -> None:
        name_os_thread()
        while True:
            with self._durable:
                if self._outage is not None:
                    # Every append notifies: wait for the retry time (or close()'s last
                    # try), not for the next append, so a full disk is not hammered.
                    self._durable.wait_for(lambda: self._retry_now or self._closed,
                                           self._retry_s)
                    self._retry_now = False
                    if self._closed:
                        self._give_up(self._outage[2])
                        return
                while not self._pending and not self._closed:
                    self._durable.wait()
                batch, self._pending = self._pending, []
                closing = self._closed
                if not batch and closing:
                    return
            error = self._write(b"".join(batch))
            with self._durable:
                self._attempts += 1
                self._failing = error is not None
                if error is None:
                    self._written += len(batch)
                    outage = self._outage
                else:
                    # Kept in order ahead of what was appended meanwhile, to be tried again.
                    self._pending[:0] = batch
                    if self._outage is None:
                        self._outage = (datetime.now(UTC).isoformat(), now_ns(), error)
                        log.error("cannot write audit trail %s (%s): holding up to %d records "
                                  "in memory, trying again every %g s", self.path, error,
                                  self._max_backlog, self._retry_s)
                    outage = None
                    if closing:
                        self._give_up(error)
                        return
                self._durable.notify_all()
            if error is None and outage is not None:
                self._resume(outage)

    def _write(self, data: bytes) -> str | None:
        """Append ``data`` and fsync; on failure cut the file back to its last complete
        record. Returns the error in words, or None once ``data`` is on disk."""
        try:
            if os.fstat(self._fd).st_size != self._good_offset:
                # A cut that failed last time (or bytes of a torn write): cut again first,
                # or the next record would follow a partial one.
                os.ftruncate(self._fd, self._good_offset)
            view = memoryview(data)
            while view:
                # A write may take only part of the bytes when the disk fills up.
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._good_offset)
            return exc.strerror or str(exc)
        self._good_offset += len(data)
        return None

    def _resume(self, outage: tuple[str, int, str]) -> None:
        """Say in the trail that it was interrupted, then mark it writable again."""
        since_wall, since_ns, error = outage
        with self._durable:
            lost, self._outage_lost = self._outage_lost, 0
        try:
            self._append(AuditKind.AUDIT_INTERRUPTED, {
                "since": since_wall, "until": datetime.now(UTC).isoformat(),
                "duration_s": round((now_ns() - since_ns) * 1e-9, 3), "error": error,
                "lost_records": lost}, bounded=False)
        except RecordingError:
            pass  # closed meanwhile: the trail ends early, as close() reports
        finally:
            with self._durable:
                # Cleared only now, so close() waits for this record before session_stop.
                self._outage = None
                self._durable.notify_all()
        log.warning("audit trail %s written again after %s; %d records lost", self.path,
                    since_wall, lost)

    def _give_up(self, error: str) -> None:
        """Closing while the trail still cannot be written (``_durable`` held)."""
        waiting = len(self._pending)
        self._lost += waiting
        self._pending = []
        self._failure = RecordingError(
            f"cannot write audit trail {self.path}: {error}; it ends at its last complete "
            f"record, {waiting} records were not written and {self._lost} lost in all")
        self._durable.notify_all()

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every record appended so far is on disk; False on timeout [s] (as
        while the disk is full)."""
        with self._durable:
            target = self._appended
            done = self._durable.wait_for(
                lambda: self._written >= target or self._failure is not None, timeout)
            if self._failure is not None:
                raise self._failure
            return done

    def close(self, data: Mapping[str, Any] | None = None) -> None:
        """Append ``session_stop`` (with ``data``), write everything, close (idempotent).

        While the trail cannot be written, the writer tries once more; if that fails
        the trail ends at its last complete record, without ``session_stop``, and
        ``RecordingError`` says so.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
        with self._durable:
            if self._outage is not None:
                attempts = self._attempts
                self._retry_now = True
                self._durable.notify_all()
                # One more try, at once: session_stop follows audit_interrupted or nothing.
                self._durable.wait_for(lambda: self._outage is None
                                       or (self._attempts > attempts and self._failing))
            stuck = self._outage is not None
        if not stuck:
            self._append(AuditKind.SESSION_STOP, {"records": self._next_index + 1,
                                                  **(data or {})}, bounded=False)
        with self._lock, self._durable:
            self._closed = True
            self._durable.notify_all()
        self._thread.join()
        os.close(self._fd)
        if self._failure is None and stuck:
            with self._durable:
                self._give_up("the disk came back only as the trail closed")
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a trail: the ``line`` [1-based; 0: the trail as a whole] and the
    record ``index`` it concerns (None when it cannot be told)."""

    line: int
    index: int | None
    problem: str

    def __str__(self) -> str:
        where = "trail" if self.line == 0 else f"line {self.line}"
        if self.index is not None:
            where = f"record {self.index} ({where})"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class TrailReport:
    """The verdict on one trail."""

    trail: Path
    node: str
    fingerprint: str
    records: int
    closed: bool
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.findings


@dataclass
class _Key:
    public: Ed25519PublicKey | None = None
    b64: str = ""
    fingerprint: str = ""
    node: str = ""


@dataclass
class _Walk:
    """State while walking one trail."""

    key: _Key
    findings: list[Finding] = field(default_factory=list)
    expected: int = 0
    prev_hash: str = GENESIS
    prev_index: int | None = None
    prev_mono: int | None = None
    seen: set[int] = field(default_factory=set)
    records: int = 0
    closed: bool = False
    last_line: int = 0

    def add(self, line: int, index: int | None, problem: str) -> None:
        self.findings.append(Finding(line, index, problem))


def _span(indices: list[int]) -> str:
    return str(indices[0]) if len(indices) == 1 else f"{indices[0]} to {indices[-1]}"


class AuditVerifier:
    """Checks trails: every index, hash, link and signature, the opening and closing records.

    ``trusted``: fingerprints (``SHA256:...``) a signer must be among (none: any
    key whose key file agrees with its ``session_start``); ``allow_open``: accept a
    trail without ``session_stop`` (a node still running, or one that was killed).
    """

    def __init__(self, trusted: Collection[str] = (), *, allow_open: bool = False) -> None:
        self._trusted = frozenset(trusted)
        self._allow_open = allow_open

    def verify_dir(self, session_dir: Path) -> list[TrailReport]:
        """Verify every trail of a session directory (or of an ``audit`` directory itself)."""
        directory = audit_dir(session_dir)
        if not directory.is_dir():
            directory = session_dir
        trails = sorted(directory.glob("*" + TRAIL_SUFFIX)) if directory.is_dir() else []
        if not trails:
            raise RecordingError(f"no audit trail (*{TRAIL_SUFFIX}) in {session_dir} or its "
                                 "audit/ directory; pass the session directory")
        return [self.verify_trail(t) for t in trails]

    def verify_trail(self, trail: Path) -> TrailReport:
        """Verify one trail file against its key file."""
        key_path = trail.with_name(trail.name.removesuffix(TRAIL_SUFFIX) + KEY_SUFFIX)
        w = _Walk(_Key())
        self._load_key(key_path, w)
        try:
            raw = trail.read_bytes()
        except OSError as exc:
            raise RecordingError(f"cannot read {trail}: {exc.strerror}") from exc
        lines = raw.split(b"\n")
        tail = lines.pop()
        if tail:
            w.add(len(lines) + 1, None, "is incomplete (no end of line): the writer was killed "
                  "mid-record or the file was cut")
        parsed = [self._parse(n, line, w) for n, line in enumerate(lines, 1)]
        later: list[set[int]] = []
        acc: set[int] = set()
        for rec in reversed(parsed):
            later.append(set(acc))
            if rec is not None:
                acc.add(rec.index)
        later.reverse()
        for n, (rec, after) in enumerate(zip(parsed, later, strict=True), 1):
            if rec is not None:
                self._check(n, rec, after, w)
        self._finish(w)
        return TrailReport(trail, w.key.node, w.key.fingerprint, w.records, w.closed,
                           tuple(w.findings))

    def _load_key(self, key_path: Path, w: _Walk) -> None:
        try:
            obj = untrusted_json(key_path.read_text(encoding="utf-8"), "key file", 4)
            raw = base64.b64decode(obj["public_key"], validate=True)
            w.key = _Key(Ed25519PublicKey.from_public_bytes(raw), obj["public_key"], "",
                         str(obj.get("node", "")))
            w.key.fingerprint = fingerprint(w.key.public) if w.key.public else ""
        except FileNotFoundError:
            w.add(0, None, f"key file {key_path.name} is missing; signatures are checked "
                  "against the key announced in session_start only")
        except (OSError, ValueError, KeyError, TypeError, binascii.Error, CodecError) as exc:
            w.add(0, None, f"key file {key_path.name} is unreadable or not an Ed25519 key "
                  f"({exc}); signatures are checked against session_start's key only")

    @staticmethod
    def _parse(n: int, line: bytes, w: _Walk) -> AuditRecord | None:
        try:
            obj = untrusted_json(line, "audit record", MAX_RECORD_DEPTH)
        except CodecError:
            w.add(n, None, "is not valid JSON (or nests too deep): the line was edited or "
                  "damaged")
            return None
        try:
            return AuditRecord.from_json(obj)
        except ValueError as exc:
            index = obj.get("index") if isinstance(obj, dict) else None
            w.add(n, index if isinstance(index, int) else None, f"malformed record: {exc}")
            return None

    def _check(self, n: int, rec: AuditRecord, later: set[int], w: _Walk) -> None:
        idx = rec.index
        w.records += 1
        w.last_line = n
        in_place = idx == w.expected
        if idx > w.expected:
            missing = list(range(w.expected, idx))
            if all(i in later for i in missing):
                w.add(n, idx, f"comes before record {_span(missing)}: records were reordered")
            else:
                w.add(n, idx, f"record {_span(missing)} is missing before it: removed")
        elif idx < w.expected:
            what = "appears twice: a record was inserted or duplicated" if idx in w.seen else \
                f"comes after record {w.prev_index}: records were reordered"
            w.add(n, idx, what)
        if n == 1:
            self._check_start(n, rec, w)
        elif rec.kind == AuditKind.SESSION_START:
            w.add(n, idx, "a second session_start: records from another trail were inserted")
        signed_ok = False
        if rec.digest() != rec.hash:
            w.add(n, idx, "content does not match its hash: the record was edited")
        elif w.key.public is not None and not _signature_ok(w.key.public, rec):
            w.add(n, idx, f"signature does not verify with key {short(w.key.fingerprint)}: "
                  "the record was forged or altered")
        else:
            signed_ok = w.key.public is not None
        if in_place and rec.prev_hash != w.prev_hash:
            w.add(n, idx, "prev_hash does not link to the record before it: a record before "
                  "it was removed, replaced or reordered")
        if signed_ok:
            self._check_content(n, rec, w)
        if w.closed:
            w.add(n, idx, "follows session_stop: appended after the trail was closed")
        if rec.kind == AuditKind.SESSION_STOP:
            w.closed = True
        w.seen.add(idx)
        w.prev_hash, w.prev_index, w.expected = rec.hash, idx, max(w.expected, idx + 1)

    def _check_start(self, n: int, rec: AuditRecord, w: _Walk) -> None:
        if rec.kind != AuditKind.SESSION_START or rec.index != 0:
            w.add(n, rec.index, "the trail does not open with session_start (record 0): its "
                  "head was removed or replaced")
            return
        announced = rec.data.get("public_key")
        if w.key.public is None and isinstance(announced, str):
            try:
                public = Ed25519PublicKey.from_public_bytes(
                    base64.b64decode(announced, validate=True))
            except (ValueError, binascii.Error):
                w.add(n, 0, "session_start announces a key that is not an Ed25519 key")
                return
            w.key = _Key(public, announced, fingerprint(public), rec.node)
        elif announced != w.key.b64 or rec.data.get("fingerprint") != w.key.fingerprint:
            w.add(n, 0, "the key file does not match the key announced in session_start: the "
                  "key file was replaced")
        if self._trusted and w.key.fingerprint not in self._trusted:
            w.add(0, None, f"signer {w.key.fingerprint} is not among the trusted keys (--trust)")

    @staticmethod
    def _check_content(n: int, rec: AuditRecord, w: _Walk) -> None:
        if rec.node != w.key.node:
            w.add(n, rec.index, f"signed by node {rec.node!r} but the trail belongs to "
                  f"{w.key.node!r}")
        if rec.kind not in AuditKind.__members__.values():
            w.add(n, rec.index, f"unknown kind {rec.kind!r}")
        if w.prev_mono is not None and rec.mono_ns < w.prev_mono:
            w.add(n, rec.index, "its monotonic time goes backwards")
        w.prev_mono = rec.mono_ns

    def _finish(self, w: _Walk) -> None:
        if w.records == 0:
            w.add(0, None, "the trail holds no record")
        elif not w.closed and not self._allow_open:
            w.add(w.last_line, w.prev_index, "the trail ends here without session_stop: its "
                  "tail was cut off, or the node is still running or was killed "
                  "(--allow-open accepts that)")


__all__ = [
    "GENESIS",
    "AuditKind",
    "AuditRecord",
    "AuditVerifier",
    "AuditWriter",
    "Finding",
    "TrailReport",
    "canonical",
    "fingerprint",
]
