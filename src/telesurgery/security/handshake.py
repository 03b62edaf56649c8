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

from telesurgery.errors import AuthError, ConfigError
from telesurgery.security.pki import Identity, Role, certificate_identity, revoked_serials
from telesurgery.security.tags import KEY_SIZE
from telesurgery.transport.codec import KeyAccept, KeyOffer, Message

log = logging.getLogger(__name__)
COMMANDER_ROLES = frozenset({Role.SURGEON, Role.BACKUP})
"""Roles whose consoles may agree a command key with the patient node."""
_OFFER = b"telesurgery key offer v1\x00"
_ACCEPT = b"telesurgery key accept v1\x00"
_KEY = b"telesurgery command key v1\x00"
_IDS = struct.Struct("<QQ")
_CACHED_OFFERS = 16
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
            self._stamp = _stamp(path)

    def refresh(self) -> bool:
        """Read the file again if it changed; True when the list changed."""
        if self._path is None:
            return False
        stamp = _stamp(self._path)
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


def _stamp(path: Path) -> tuple[int, int] | None:
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
    return Peer(cn, cert.serial_number, key)


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


class Responder:
    """The patient node's side: answers offers of console sessions.

    ``commanders``: the common names allowed to command, by role (the access-control
    roster); None: any surgeon or backup certificate of the site CA.
    """

    def __init__(self, creds: Credentials, session: str, patient_session: int,
                 commanders: Mapping[Role, Sequence[str]] | None = None) -> None:
        self._creds = creds
        self._session = session
        self._patient = patient_session
        self._names = (None if commanders is None else
                       frozenset(n for r in COMMANDER_ROLES for n in commanders.get(r, ())))
        self._answered: OrderedDict[tuple[int, bytes], Agreement] = OrderedDict()

    def answer(self, msg: Message) -> Agreement:
        """The agreement for the offer ``msg``; AuthError when it is refused.

        The same offer again (its console resends until answered) gets the same
        agreement, so both sides keep one key.
        """
        offer = msg.body
        if not isinstance(offer, KeyOffer):
            raise AuthError("malformed", f"{type(offer).__name__} is not a key offer")
        known = self._answered.get((msg.session, offer.ephemeral))
        if known is not None and known.serial not in self._creds.revoked:
            return known
        peer = check_certificate(offer.certificate, self._creds, COMMANDER_ROLES,
                                 self._names)
        _verify(peer.public_key, offer.signature,
                _offer_bytes(self._session, msg.session, offer.ephemeral), peer.common_name)
        own = X25519PrivateKey.generate()
        own_public = _public(own)
        signed = _accept_bytes(self._session, msg.session, self._patient, offer.ephemeral,
                               own_public, offer.certificate)
        accept = KeyAccept(msg.session, own_public, self._creds.certificate,
                           self._creds.private_key.sign(signed, _SIGNATURE))
        agreement = Agreement(msg.session, peer.common_name, peer.serial,
                              _derive(own, offer.ephemeral, signed), accept)
        self._answered[(msg.session, offer.ephemeral)] = agreement
        while len(self._answered) > _CACHED_OFFERS:
            self._answered.popitem(last=False)
        return agreement


class Initiator:
    """The console's side of one handshake (a fresh ephemeral key per instance)."""

    def __init__(self, creds: Credentials, session: str, console_session: int) -> None:
        self._creds = creds
        self._session = session
        self.console_session = console_session
        self._own = X25519PrivateKey.generate()
        self._public = _public(self._own)

    def offer(self) -> KeyOffer:
        """The offer to send (the same one on every resend)."""
        signed = _offer_bytes(self._session, self.console_session, self._public)
        return KeyOffer(self._public, self._creds.certificate,
                        self._creds.private_key.sign(signed, _SIGNATURE))

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
