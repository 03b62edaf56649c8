"""The site PKI: a certificate authority, role certificates for people and nodes, revocation.

A PKI is one folder::

    <root>/
      ca/ca.pem  ca/ca.key     the site CA (the key 0600, the folder 0700)
      crl.pem                  revoked serials, signed by the CA (X.509 CRL)
      issued/<n>-<serial>.pem  every certificate ever issued, numbered (public)
      <role>/<name>/           the identity handed to one person or node (0700):
          cert.pem key.pem ca.pem

A certificate's common name is ``<role>:<name>`` (e.g. ``surgeon:dr-rossi``) and its
organisational unit the role: Zenoh's access control matches subjects by exact common
name, so the role has to be part of the name it sees. Keys are ECDSA P-256 (rustls,
under Zenoh's TLS, accepts them). Node keys are stored unencrypted because Zenoh reads
them from their file; the file permissions are their protection and are checked on
every load. The CA key may be encrypted with a passphrase.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from telesurgery.errors import ConfigError
from telesurgery.security.credential import Licence, licence_of


class Role(enum.StrEnum):
    """Who a certificate speaks for; each role has its own rights in the access control."""

    SURGEON = "surgeon"
    BACKUP = "backup"
    ROBOT = "robot"
    OBSERVER = "observer"
    RECORDER = "recorder"
    ROUTER = "router"


CA_DAYS = 3650
LEAF_DAYS = 90
"""Default validity of an issued certificate [days]: short, because Zenoh checks no CRL
and an expired certificate is the one revocation every TLS stack enforces."""
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Names every certificate carries so that nodes on one machine verify each other."""

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_CLOCK_SKEW = dt.timedelta(minutes=5)
_CRL_DAYS = 30


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_name(name: str) -> str:
    """``name`` if it can name a person or node: 1-63 of a-z 0-9 . _ -, starting alphanumeric."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"name {name!r} is not valid: use 1-63 lowercase letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit (e.g. dr-rossi)")
    return name


def parse_role(text: str) -> Role:
    """The role called ``text``; a ConfigError lists the valid ones."""
    try:
        return Role(text)
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise ConfigError(f"role {text!r} is unknown; use one of {valid}") from None


def common_name(role: Role, name: str) -> str:
    """The certificate common name of ``name`` in ``role``, e.g. ``surgeon:dr-rossi``."""
    return f"{role.value}:{check_name(name)}"


def parse_common_name(cn: str) -> tuple[Role, str]:
    """(role, name) of a common name written by :func:`common_name`."""
    role, sep, name = cn.partition(":")
    if not sep:
        raise ConfigError(f"certificate common name {cn!r} is not '<role>:<name>'; "
                          "issue the certificate with 'telesurgery pki issue'")
    return parse_role(role), check_name(name)


def check_key_permissions(path: Path) -> None:
    """Raise ConfigError unless the private key at ``path`` is readable by its owner only."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"private key {path} does not exist; issue it with "
                          "'telesurgery pki issue' or fix the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read private key {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"private key {path} is accessible by group or others (mode "
                          f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` created 0600 from the start (no window with wider rights)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate {path} does not exist; check the path") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate ({exc})") from exc


def _read_key(path: Path, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    check_key_permissions(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise ConfigError(f"private key {path} is encrypted; give its passphrase "
                              "(TELESURGERY_CA_PASSPHRASE)") from exc
        raise ConfigError(f"private key {path} is not encrypted; give no passphrase") from exc
    except ValueError as exc:
        raise ConfigError(f"cannot load private key {path}: wrong passphrase or not a PEM "
                          "key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"private key {path} is not an ECDSA key; issue a new one with "
                          "'telesurgery pki issue'")
    return key


def _common_name_of(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def certificate_identity(cert: x509.Certificate) -> tuple[Role, str]:
    """(role, name) that ``cert``'s common name gives; ConfigError if it names none."""
    return parse_common_name(_common_name_of(cert))


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One issued certificate as listed by ``telesurgery pki list`` (times in UTC)."""

    common_name: str
    role: Role
    name: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None
    licence: Licence | None = None
    """The licence the certificate carries (surgeons, bedside leads; None: none)."""

    def status(self, now: dt.datetime | None = None) -> str:
        """``revoked``, ``expired``, ``not yet valid`` or ``valid`` at ``now``."""
        t = now or _now()
        if self.revoked_at is not None:
            return "revoked"
        if t > self.not_after:
            return "expired"
        if t < self.not_before:
            return "not yet valid"
        return "valid"


@dataclass(frozen=True, slots=True)
class Identity:
    """The certificate, key and CA certificate one node presents on its Zenoh links."""

    role: Role
    name: str
    certificate: Path
    private_key: Path
    ca_certificate: Path

    @property
    def common_name(self) -> str:
        """``<role>:<name>``, the subject Zenoh's access control sees."""
        return common_name(self.role, self.name)

    @classmethod
    def from_dir(cls, folder: Path, crl: Path | None = None) -> Identity:
        """Load and check the identity in ``folder`` (cert.pem, key.pem, ca.pem).

        Checks that the key is readable by its owner only and matches the certificate,
        that the CA signed the certificate, that it is valid now and, given ``crl``
        (a PEM CRL of that CA), that it is not revoked. Raises ConfigError otherwise.
        """
        cert_path, key_path, ca_path = (folder / "cert.pem", folder / "key.pem",
                                        folder / "ca.pem")
        cert, ca = _read_cert(cert_path), _read_cert(ca_path)
        key = _read_key(key_path)
        if key.public_key() != cert.public_key():
            raise ConfigError(f"{key_path} is not the key of {cert_path}; re-issue the "
                              "identity with 'telesurgery pki issue'")
        _check_issued_by(cert, ca, cert_path)
        role, name = parse_common_name(_common_name_of(cert))
        now = _now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ConfigError(f"certificate {cert_path} ({role.value}:{name}) is valid only "
                              f"from {cert.not_valid_before_utc:%Y-%m-%d} to "
                              f"{cert.not_valid_after_utc:%Y-%m-%d}; issue a new one")
        if crl is not None and _revoked_serials(_read_crl(crl, ca)).get(cert.serial_number):
            raise ConfigError(f"certificate {cert_path} ({role.value}:{name}) is revoked; "
                              "ask the site for a new identity")
        return cls(role, name, cert_path, key_path, ca_path)

    def check(self) -> None:
        """Re-check the key file's permissions (Zenoh reads it by path, after us)."""
        check_key_permissions(self.private_key)

    def load_certificate(self) -> x509.Certificate:
        """This identity's certificate."""
        return _read_cert(self.certificate)

    def load_ca(self) -> x509.Certificate:
        """The site CA certificate this identity trusts."""
        return _read_cert(self.ca_certificate)

    def load_private_key(self) -> ec.EllipticCurvePrivateKey:
        """This identity's private key (its permissions checked again)."""
        return _read_key(self.private_key)


def revoked_serials(crl: Path, ca: x509.Certificate) -> frozenset[int]:
    """Serial numbers the CRL at ``crl`` revokes; ConfigError unless ``ca`` signed it."""
    return frozenset(_revoked_serials(_read_crl(crl, ca)))


def _check_issued_by(cert: x509.Certificate, ca: x509.Certificate, where: Path) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(f"certificate {where} was not issued by the site CA in use; use "
                          "the identity issued by this site's 'telesurgery pki'") from exc


def _read_crl(path: Path, ca: x509.Certificate) -> x509.CertificateRevocationList:
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"revocation list {path} does not exist; check the path") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM revocation list ({exc})") from exc
    pub = ca.public_key()
    if crl.issuer != ca.subject or not (isinstance(pub, ec.EllipticCurvePublicKey)
                                        and crl.is_signature_valid(pub)):
        raise ConfigError(f"revocation list {path} is not signed by the site CA; "
                          "copy the site's crl.pem again")
    return crl


def _revoked_serials(crl: x509.CertificateRevocationList) -> dict[int, dt.datetime]:
    return {r.serial_number: r.revocation_date_utc for r in crl}


class Pki:
    """An existing PKI folder (see the module docstring); create one with :meth:`init`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_cert_path = root / "ca" / "ca.pem"
        self.ca_key_path = root / "ca" / "ca.key"
        self.crl_path = root / "crl.pem"
        if not self.ca_cert_path.is_file():
            raise ConfigError(f"{root} is not a telesurgery PKI (no ca/ca.pem); create one "
                              "with 'telesurgery pki init DIR --site NAME'")
        self.ca_cert = _read_cert(self.ca_cert_path)

    @classmethod
    def init(cls, root: Path, site: str, *, days: int = CA_DAYS,
             passphrase: bytes | None = None) -> Pki:
        """Create the site CA in ``root`` (which must not hold one) and an empty CRL.

        ``passphrase`` encrypts the CA key; it is then needed to issue and revoke.
        """
        check_name(site)
        if (root / "ca" / "ca.pem").exists():
            raise ConfigError(f"{root} already holds a site CA; choose another folder")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
                             x509.NameAttribute(NameOID.COMMON_NAME,
                                                f"{site} telesurgery CA")])
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _CLOCK_SKEW)
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        try:
            root.mkdir(parents=True, exist_ok=True)
            ca_dir = _private_dir(root / "ca")
            enc: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(passphrase) if passphrase
                else serialization.NoEncryption())
            _write_private(ca_dir / "ca.key", key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
            _write_public(ca_dir / "ca.pem", _pem(cert))
            (root / "issued").mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the PKI in {root}: {exc.strerror}; choose a "
                              "writable folder") from exc
        pki = cls(root)
        pki._write_crl(key, {})
        return pki

    @property
    def site(self) -> str:
        """The site name the CA was created for."""
        attrs = self.ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else ""

    def _ca_key(self, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
        key = _read_key(self.ca_key_path, passphrase)
        if key.public_key() != self.ca_cert.public_key():
            raise ConfigError(f"{self.ca_key_path} is not the key of {self.ca_cert_path}")
        return key

    def _crl(self) -> x509.CertificateRevocationList:
        return _read_crl(self.crl_path, self.ca_cert)

    def _write_crl(self, key: ec.EllipticCurvePrivateKey,
                   revoked: Mapping[int, dt.datetime]) -> None:
        now = _now()
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.ca_cert.subject)
                   .last_update(now).next_update(now + dt.timedelta(days=_CRL_DAYS)))
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(when).build())
        _write_public(self.crl_path, builder.sign(key, hashes.SHA256())
                      .public_bytes(serialization.Encoding.PEM))

    def _issued(self) -> list[x509.Certificate]:
        return [_read_cert(p) for p in sorted((self.root / "issued").glob("*.pem"))]

    def certificates(self) -> list[CertInfo]:
        """Every certificate issued, in order of issue, with its revocation time if revoked."""
        revoked = _revoked_serials(self._crl())
        out = []
        for cert in self._issued():
            role, name = parse_common_name(_common_name_of(cert))
            out.append(CertInfo(_common_name_of(cert), role, name, cert.serial_number,
                                cert.not_valid_before_utc, cert.not_valid_after_utc,
                                revoked.get(cert.serial_number), licence_of(cert)))
        return out

    def issue(self, role: Role, name: str, *, hosts: Sequence[str] = (),
              days: int = LEAF_DAYS, passphrase: bytes | None = None,
              licence: Licence | None = None) -> Identity:
        """Issue a certificate for ``name`` in ``role`` and write its identity folder.

        ``licence``: the holder's licence to practise, written into the certificate
        (``security.credential``); only a surgeon or backup (bedside) certificate
        carries one.

        ``hosts`` (DNS names or IP addresses) are added to :data:`DEFAULT_HOSTS` as the
        names a node listening for Zenoh links is reached by. A common name that was
        revoked is refused: Zenoh's access control matches names, so the revoked
        certificate would regain the rights of the new one.
        """
        cn = common_name(role, name)
        if any(c.common_name == cn and c.revoked_at is not None for c in self.certificates()):
            raise ConfigError(f"{cn} was revoked and cannot be issued again (access control "
                              f"matches names, not certificates); use a new name, e.g. "
                              f"{name}-2")
        if licence is not None and role not in (Role.SURGEON, Role.BACKUP):
            raise ConfigError(f"a {role.value} certificate carries no licence; give "
                              "--licence-... only with --role surgeon or backup")
        ca_key = self._ca_key(passphrase)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.site),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.ca_cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - _CLOCK_SKEW)
                   .not_valid_after(min(now + dt.timedelta(days=days),
                                        self.ca_cert.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False,
                       crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                   # Every node both accepts and opens links (peers, routers), so both uses.
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]),
                                  critical=False)
                   .add_extension(_san([*DEFAULT_HOSTS, *hosts]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if licence is not None:
            # Not critical: TLS stacks refuse a critical extension they do not know.
            builder = builder.add_extension(licence.extension(), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        folder = self.root / role.value / name
        try:
            # Numbered, so that listings keep the order of issue (times have 1 s resolution).
            number = len(list((self.root / "issued").glob("*.pem"))) + 1
            _write_public(self.root / "issued" / f"{number:06d}-{cert.serial_number:x}.pem",
                          _pem(cert))
            _private_dir(folder)
            _write_private(folder / "key.pem", key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            _write_public(folder / "cert.pem", _pem(cert))
            _write_public(folder / "ca.pem", _pem(self.ca_cert))
        except OSError as exc:
            raise ConfigError(f"cannot write the identity in {folder}: {exc.strerror}") from exc
        return self.identity(role, name)

    def identity(self, role: Role, name: str) -> Identity:
        """The checked identity of ``name`` in ``role`` (revoked ones are refused)."""
        folder = self.root / role.value / check_name(name)
        if not folder.is_dir():
            raise ConfigError(f"no identity {common_name(role, name)} in {self.root}; issue "
                              f"it with 'telesurgery pki issue {self.root} --role "
                              f"{role.value} --name {name}'")
        return Identity.from_dir(folder, crl=self.crl_path)

    def revoke(self, role: Role, name: str, *,
               passphrase: bytes | None = None) -> list[CertInfo]:
        """Revoke every certificate issued to ``name`` in ``role``; returns those revoked."""
        cn = common_name(role, name)
        certs = self.certificates()
        if not any(c.common_name == cn for c in certs):
            raise ConfigError(f"no certificate was issued to {cn}; see 'telesurgery pki list'")
        targets = [c for c in certs if c.common_name == cn and c.revoked_at is None]
        if not targets:
            raise ConfigError(f"{cn} is already revoked")
        key = self._ca_key(passphrase)
        revoked = _revoked_serials(self._crl())
        now = _now()
        revoked.update({c.serial: now for c in targets})
        self._write_crl(key, revoked)
        return [c for c in self.certificates() if c.serial in {t.serial for t in targets}]

    def roster(self, now: dt.datetime | None = None) -> dict[Role, list[str]]:
        """Common names with a valid certificate now, by role: the access-control subjects."""
        out: dict[Role, list[str]] = {}
        for c in self.certificates():
            if c.status(now) == "valid" and c.common_name not in out.get(c.role, []):
                out.setdefault(c.role, []).append(c.common_name)
        return out


def throwaway_pki(root: Path, site: str, members: Mapping[Role, Sequence[str]],
                  licences: Mapping[str, Licence] | None = None) -> Pki:
    """A fresh PKI in ``root`` with one identity per name in ``members`` (for the demo,
    tests); ``licences``: the licence of each common name that holds one."""
    pki = Pki.init(root, site)
    for role, names in members.items():
        for name in names:
            pki.issue(role, name, licence=(licences or {}).get(common_name(role, name)))
    return pki
