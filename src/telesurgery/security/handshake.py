"""Agreeing a command key between a console and the patient node, signed by their certificates.

Two messages (``transport.codec.KeyOffer`` and ``KeyAccept``), sent over Zenoh by
``security.command_keys``; this module is the pure part (no threads, no I/O)::

    console -> patient   KeyOffer(Ec, Cc, Sc)
        Sc = ECDSA-P256-SHA256 by Cc's key of  OFFER | session | c | Ec
    patient -> console   KeyAccept(c, Ep, Cp, Sp)
        Sp = ECDSA-P256-SHA256 by Cp's key of  ACCEPT | session | c | p | Ec | Ep | SHA-256(Cc)
    key = HKDF-SHA256(X25519(e, E'), info = KEY | SHA-256(the accept's signed bytes))

``c`` and ``p`` are the console's and the patient's session ids, ``E`` fresh X25519
public keys (one per handshake), ``C`` certificates of the site CA. The patient
accepts offers only from certificates of the site CA that name a ``surgeon`` or
``backup`` (and, given a roster, one of its names), are valid now and are not on
the revocation list; the console accepts answers only from a ``robot``.

Why a router in between learns nothing and can inject nothing: it sees both
messages, but the key needs one of the two ephemeral private keys, which never
leave their node; it cannot substitute its own ephemeral key, since each side's
is signed by a certificate key it does not hold; and an old offer or answer
replayed to a node binds an ephemeral key of an earlier handshake, so the key it
would lead to is not one the replayer knows (and an old answer does not match the
console's current offer).

Why a stolen commander certificate cannot act as another console: the patient binds
each console session id to the certificate and ephemeral key of the first offer that
agreed a key for it (``Responder``), so an offer under an id it read on
``control/owner`` is refused (``session_taken``) and answered with nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from telesurgery import clock
from telesurgery.errors import AuthError, ConfigError
from telesurgery.messages import KeyAccept, KeyOffer, Message
from telesurgery.security.credential import CredentialPolicy, Licence, licence_of
from telesurgery.security.pki import Identity, Role, certificate_identity, revoked_serials
from telesurgery.security.tags import KEY_SIZE

log = logging.getLogger(__name__)
COMMANDER_ROLES = frozenset({Role.SURGEON, Role.BACKUP})
"""Roles whose consoles may agree a command key with the patient node."""
_OFFER = b"telesurgery key offer v1\x00"
_ACCEPT = b"telesurgery key accept v1\x00"
_KEY = b"telesurgery command key v1\x00"
_IDS = struct.Struct("<QQ")
_SIGNATURE = ec.ECDSA(hashes.SHA256())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Revocations:
    """The site's revocation list (a CRL file signed by ``ca``; None: nothing revoked),
    read again by ``refresh`` whenever the file changes, so that ``telesurgery pki
    revoke`` takes effect on a running node."""

    def __init__(self, path: Path | None, ca: x509.Certificate) -> None:
        self._path = path
        self._ca = ca
        self._stamp: tuple[int, int] | None = None
        self._serials: frozenset[int] = frozenset()
        self._lock = threading.Lock()
        if path is not None:
            self._serials = revoked_serials(path, ca)
            self._stamp = file_stamp(path)

    def refresh(self) -> bool:
        """Read the file again if it changed; True when the list changed."""
        if self._path is None:
            return False
        stamp = file_stamp(self._path)
        with self._lock:
            if stamp == self._stamp:
                return False
            try:
                serials = revoked_serials(self._path, self._ca)
            except ConfigError as exc:
                # Keep the last good list: a broken file must not un-revoke anyone.
                log.warning("revocation list not reloaded: %s", exc)
                return False
            self._stamp = stamp
            changed = serials != self._serials
            self._serials = serials
            return changed

    def __contains__(self, serial: object) -> bool:
        return serial in self._serials

    @property
    def serials(self) -> frozenset[int]:
        """The revoked serial numbers as last read."""
        return self._serials


def file_stamp(path: Path) -> tuple[int, int] | None:
    """The file's modification time [ns] and size [B], to tell when it changed (None:
    it cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a node signs handshakes with and checks its peers against."""

    common_name: str
    certificate: bytes
    """This node's certificate (DER), sent in its handshake message."""
    private_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    revoked: Revocations

    @classmethod
    def load(cls, identity: Identity, crl: Path | None = None) -> Credentials:
        """The credentials of ``identity``; ``crl``: the site's revocation list."""
        ca = identity.load_ca()
        cert = identity.load_certificate()
        return cls(identity.common_name, cert.public_bytes(serialization.Encoding.DER),
                   identity.load_private_key(), ca, Revocations(crl, ca))


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer certificate that passed ``check_certificate``."""

    common_name: str
    serial: int
    public_key: ec.EllipticCurvePublicKey
    role: Role
    licence: Licence | None = None
    """The licence the certificate carries (``security.credential``)."""


def check_certificate(der: bytes, creds: Credentials, roles: Collection[Role],
                      names: Collection[str] | None = None,
                      now: dt.datetime | None = None) -> Peer:
    """The peer of certificate ``der`` if the site CA issued it, it is valid at ``now``,
    not revoked, in one of ``roles`` and (given ``names``) one of those common names;
    AuthError otherwise."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise AuthError("bad_certificate", f"not a DER certificate ({exc})") from exc
    try:
        cert.verify_directly_issued_by(creds.ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AuthError("unknown_ca", "certificate not issued by the site CA") from exc
    t = now or _now()
    if not cert.not_valid_before_utc <= t <= cert.not_valid_after_utc:
        raise AuthError("expired", f"certificate valid only from {cert.not_valid_before_utc} "
                                   f"to {cert.not_valid_after_utc}")
    if cert.serial_number in creds.revoked:
        raise AuthError("revoked", f"certificate {cert.serial_number:x} is revoked")
    try:
        role, name = certificate_identity(cert)
        licence = licence_of(cert)
    except ConfigError as exc:
        raise AuthError("bad_certificate", str(exc)) from exc
    cn = f"{role.value}:{name}"
    if role not in roles:
        raise AuthError("role", f"{cn} is not in a role allowed here "
                                f"({', '.join(sorted(r.value for r in roles))})")
    if names is not None and cn not in names:
        raise AuthError("not_in_roster", f"{cn} is not in the access-control roster")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AuthError("bad_certificate", f"{cn} does not hold an ECDSA key")
    return Peer(cn, cert.serial_number, key, role, licence)


def certificate_name(der: bytes) -> str | None:
    """The common name certificate ``der`` claims (``surgeon:dr-rossi``), unverified, for
    records of refused offers; None when it names no role of ours."""
    try:
        role, name = certificate_identity(x509.load_der_x509_certificate(der))
    except (ValueError, ConfigError):
        return None
    return f"{role.value}:{name}"


def _verify(key: ec.EllipticCurvePublicKey, signature: bytes, signed: bytes, who: str) -> None:
    try:
        key.verify(signature, signed, _SIGNATURE)
    except InvalidSignature as exc:
        raise AuthError("signature", f"the signature of {who} does not match") from exc


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<B", len(raw)) + raw


def _offer_bytes(session: str, console: int, ephemeral: bytes) -> bytes:
    return _OFFER + _text(session) + struct.pack("<Q", console) + ephemeral


def _accept_bytes(session: str, console: int, patient: int, console_eph: bytes,
                  patient_eph: bytes, console_cert: bytes) -> bytes:
    return (_ACCEPT + _text(session) + _IDS.pack(console, patient) + console_eph + patient_eph
            + hashlib.sha256(console_cert).digest())


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def _derive(own: X25519PrivateKey, peer: bytes, accept_signed: bytes) -> bytes:
    try:
        shared = own.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError as exc:
        raise AuthError("bad_key", f"not a usable X25519 public key ({exc})") from exc
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None,
                info=_KEY + hashlib.sha256(accept_signed).digest()).derive(shared)


@dataclass(frozen=True, slots=True)
class Agreement:
    """A command key agreed with one console session."""

    console_session: int
    common_name: str
    """The console's certificate common name (``surgeon:dr-rossi``)."""
    serial: int
    """The serial number of the console's certificate (to forget it once revoked)."""
    key: bytes
    accept: KeyAccept
    """The answer that gives the console the same key (sent again for a repeated offer)."""
    role: Role = Role.SURGEON
    licence: Licence | None = None
    """The licence in the console's certificate, accepted by the site's policy if any."""


BINDING_REFUSALS = ("session_taken", "identity_in_use", "superseded")
"""Why ``Responder`` refuses an offer of a valid certificate (``AuthError.reason``)."""
IDENTITY_LIVE_S = 1.0
"""A console session whose offer was heard (first or resent) within this time [s] still
holds its certificate's identity: a second session of the same certificate is refused
(``identity_in_use``) until then, so a stolen copy cannot push out a console that is
running. Consoles resend their offer every 0.2 s for as long as they run."""
MAX_BINDINGS = 1024
"""Console session ids remembered [count]; beyond this the oldest retired ones are
forgotten first (a retired id has no key, so forgetting it can move nothing)."""


@dataclass(slots=True)
class _Binding:
    offer: KeyOffer
    agreement: Agreement
    heard_ns: int
    retired: bool = False
    """Its certificate agreed a key for a newer session: this one may not command again."""


class Responder:
    """The patient node's side: answers offers of console sessions, and binds each console
    session id to the first offer that agreed a key for it, for the life of this run.

    ``commanders``: the common names allowed to command, by role (the access-control
    roster); None: any surgeon or backup certificate of the site CA. ``policy``: the
    site's credential policy, checked on every new offer after its signature (a refusal
    is ``AuthError`` with the policy's reason, e.g. ``authority_not_accepted``); None:
    licences are not checked.

    The same offer again (its certificate and ephemeral key; a console resends it until
    answered, then as a keep-alive) gets the same agreement, so both sides keep one key
    and a key the node lost comes back. Any other offer for a bound id (another
    certificate, or the same certificate with another ephemeral key) is refused as
    ``session_taken``: a session id names a console, it does not make anyone that
    console. A certificate holds one session at a time: a new session of it is refused
    as ``identity_in_use`` while the previous one still resends its offer
    (``IDENTITY_LIVE_S``), and once it has gone quiet the new session replaces it (a
    console restart); the old id is then ``superseded``.
    """

    def __init__(self, creds: Credentials, session: str, patient_session: int,
                 commanders: Mapping[Role, Sequence[str]] | None = None,
                 live_s: float = IDENTITY_LIVE_S,
                 policy: CredentialPolicy | None = None) -> None:
        self._creds = creds
        self._policy = policy
        self._session = session
        self._patient = patient_session
        self._names = (None if commanders is None else
                       frozenset(n for r in COMMANDER_ROLES for n in commanders.get(r, ())))
        self._live_ns = round(live_s * 1e9)
        self._bound: OrderedDict[int, _Binding] = OrderedDict()

    def bound_to(self, console_session: int) -> Agreement | None:
        """The agreement console ``console_session`` is bound to (None: not bound)."""
        b = self._bound.get(console_session)
        return None if b is None else b.agreement

    def live(self, now_ns: int) -> list[Agreement]:
        """The agreements of consoles running at ``now_ns`` [ns]: not superseded, their
        offer heard within the identity's live time (they resend it every 0.2 s)."""
        return [b.agreement for b in self._bound.values()
                if not b.retired and now_ns - b.heard_ns <= self._live_ns]

    def licence(self, common_name: str | None) -> Licence | None:
        """The licence of the newest agreement of ``common_name`` (None: none)."""
        found = [b.agreement for b in self._bound.values()
                 if b.agreement.common_name == common_name]
        return found[-1].licence if found else None

    def answer(self, msg: Message, now_ns: int | None = None) -> Agreement:
        """The agreement for the offer ``msg`` heard at ``now_ns`` [ns, default now]
        (``bound_to`` the same one before, for the bound offer again); AuthError when it
        is refused (``session_taken``, ``identity_in_use``, ``superseded`` or a reason of
        ``check_certificate``)."""
        now_ns = clock.now_ns() if now_ns is None else now_ns
        offer = msg.body
        if not isinstance(offer, KeyOffer):
            raise AuthError("malformed", f"{type(offer).__name__} is not a key offer")
        known = self._bound.get(msg.session)
        if known is not None and (known.offer.ephemeral, known.offer.certificate) == (
                offer.ephemeral, offer.certificate):
            return self._again(msg.session, known, now_ns)
        peer = check_certificate(offer.certificate, self._creds, COMMANDER_ROLES,
                                 self._names)
        _verify(peer.public_key, offer.signature,
                _offer_bytes(self._session, msg.session, offer.ephemeral), peer.common_name)
        if self._policy is not None:
            # The licence's last day is a calendar date: judged on today's UTC date.
            self._policy.check(peer.role.value, peer.licence, _now().date())
        if known is not None:
            raise AuthError("session_taken", f"{peer.common_name} offered a key for console "
                            f"session {msg.session:016x}, which is bound to another "
                            "key offer; a console picks a new session id each run")
        for b in self._bound.values():
            if (b.agreement.common_name == peer.common_name and not b.retired
                    and now_ns - b.heard_ns <= self._live_ns):
                raise AuthError("identity_in_use", f"{peer.common_name} already commands as "
                                f"console session {b.agreement.console_session:016x}; a "
                                "second session of one certificate is refused while the "
                                "first runs")
        agreement = self._agree(msg.session, offer, peer)
        for b in self._bound.values():
            if b.agreement.common_name == peer.common_name:
                b.retired = True
        self._bound[msg.session] = _Binding(offer, agreement, now_ns)
        self._evict()
        return agreement

    def _again(self, session: int, known: _Binding, now_ns: int) -> Agreement:
        agreement = known.agreement
        if agreement.serial in self._creds.revoked:
            raise AuthError("revoked", f"certificate {agreement.serial:x} of "
                            f"{agreement.common_name} is revoked")
        if known.retired:
            raise AuthError("superseded", f"console session {session:016x} of "
                            f"{agreement.common_name} was replaced by a newer session of "
                            "the same certificate")
        known.heard_ns = now_ns
        return agreement

    def _agree(self, session: int, offer: KeyOffer, peer: Peer) -> Agreement:
        own = X25519PrivateKey.generate()
        own_public = _public(own)
        signed = _accept_bytes(self._session, session, self._patient, offer.ephemeral,
                               own_public, offer.certificate)
        accept = KeyAccept(session, own_public, self._creds.certificate,
                           self._creds.private_key.sign(signed, _SIGNATURE))
        return Agreement(session, peer.common_name, peer.serial,
                         _derive(own, offer.ephemeral, signed), accept, peer.role, peer.licence)

    def _evict(self) -> None:
        while len(self._bound) > MAX_BINDINGS:
            retired = next((s for s, b in self._bound.items() if b.retired), None)
            del self._bound[retired if retired is not None else next(iter(self._bound))]


class Initiator:
    """The console's side of one handshake (a fresh ephemeral key per instance)."""

    def __init__(self, creds: Credentials, session: str, console_session: int) -> None:
        self._creds = creds
        self._session = session
        self.console_session = console_session
        self._own = X25519PrivateKey.generate()
        self._public = _public(self._own)
        signed = _offer_bytes(self._session, self.console_session, self._public)
        # Signed once: ECDSA signatures are randomised, and a resend is the same offer.
        self._offer = KeyOffer(self._public, self._creds.certificate,
                               self._creds.private_key.sign(signed, _SIGNATURE))

    def offer(self) -> KeyOffer:
        """The offer to send (the same one on every resend)."""
        return self._offer

    def complete(self, msg: Message) -> tuple[bytes, str]:
        """The command key and the patient node's common name from its answer ``msg``;
        AuthError when the answer is not for this offer or not from a robot of the site."""
        accept = msg.body
        if not isinstance(accept, KeyAccept) or accept.console_session != self.console_session:
            raise AuthError("not_ours", "the answer is for another console session")
        peer = check_certificate(accept.certificate, self._creds, {Role.ROBOT})
        signed = _accept_bytes(self._session, self.console_session, msg.session, self._public,
                               accept.ephemeral, self._creds.certificate)
        _verify(peer.public_key, accept.signature, signed, peer.common_name)
        return _derive(self._own, accept.ephemeral, signed), peer.common_name
