"""A surgeon's licence carried in their certificate, and the site policy that accepts it.

``telesurgery pki issue --role surgeon --licence-number ... --licence-authority ...``
writes a :class:`Licence` into the certificate as a non-critical X.509 extension under
:data:`LICENCE_OID`, so the CA's signature covers it and no other file has to travel
with the certificate. Non-critical because TLS stacks (rustls, under Zenoh) refuse a
certificate with a critical extension they do not know.

The OID is provisional and ours: ``2.25.<a random UUID as an integer>``, the arc ITU-T
X.667 gives anyone who needs an identifier without registering one. A registered arc
(an IANA private enterprise number) would replace it; certificates name their version
in the value, so a reader can tell.

The value is canonical JSON (UTF-8, sorted keys)::

    {"v": 1, "number": "RM-12345", "authority": "FNOMCeO", "jurisdiction": "IT",
     "specialty": "urology", "valid_until": "2027-06-30"}

:class:`CredentialPolicy` is the patient site's rule (a TOML file, see
``docs/security.md``): for each role it lists the licensing authorities and the
jurisdictions it accepts. ``check`` is pure: the patient node calls it at key agreement
(``handshake.Responder``) and refuses, with a one-word reason, a commander it does not
accept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, model_validator

from telesurgery.errors import AuthError, ConfigError

LICENCE_OID = x509.ObjectIdentifier("2.25.5499483607270400281928104198820556405")
"""Provisional OID of the licence extension (see the module docstring)."""
LICENCE_VERSION = 1
_MAX_FIELD = 64
_TEXT = re.compile(r"[\w .,'()/-]{1,64}")


def _text(value: str, what: str) -> str:
    """``value`` if it is 1-64 letters, digits, spaces or ``. , ' ( ) / - _``."""
    if not _TEXT.fullmatch(value):
        raise ConfigError(f"licence {what} {value!r} is not valid: use 1-{_MAX_FIELD} "
                          "letters, digits, spaces or . , ' ( ) / - _")
    return value


@dataclass(frozen=True, slots=True)
class Licence:
    """A licence to practise: its ``number``, the ``authority`` that issued it (e.g.
    ``FNOMCeO``), the ``jurisdiction`` it holds in (e.g. ``IT``), the ``specialty`` and
    the last day it is valid (``valid_until``, a date, inclusive)."""

    number: str
    authority: str
    jurisdiction: str
    specialty: str
    valid_until: dt.date

    def __post_init__(self) -> None:
        for what in ("number", "authority", "jurisdiction", "specialty"):
            _text(getattr(self, what), what)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the date as ISO ``YYYY-MM-DD``)."""
        return {"number": self.number, "authority": self.authority,
                "jurisdiction": self.jurisdiction, "specialty": self.specialty,
                "valid_until": self.valid_until.isoformat()}

    def extension(self) -> x509.UnrecognizedExtension:
        """The certificate extension that carries this licence."""
        body = {"v": LICENCE_VERSION, **self.as_dict()}
        return x509.UnrecognizedExtension(LICENCE_OID, json.dumps(
            body, sort_keys=True, separators=(",", ":")).encode("utf-8"))

    @staticmethod
    def parse(value: bytes) -> Licence:
        """The licence of an extension value; ``ConfigError`` says what is wrong."""
        try:
            obj = json.loads(value.decode("utf-8"))
            if not isinstance(obj, dict) or obj.get("v") != LICENCE_VERSION:
                raise ValueError(f"not a version-{LICENCE_VERSION} licence")
            return Licence(str(obj["number"]), str(obj["authority"]),
                           str(obj["jurisdiction"]), str(obj["specialty"]),
                           dt.date.fromisoformat(str(obj["valid_until"])))
        except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as exc:
            raise ConfigError(f"the certificate's licence extension is unreadable ({exc}); "
                              "re-issue it with 'telesurgery pki issue'") from exc


def licence_of(cert: x509.Certificate) -> Licence | None:
    """The licence ``cert`` carries (None: none); ``ConfigError`` if it is unreadable."""
    try:
        ext = cert.extensions.get_extension_for_oid(LICENCE_OID)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise ConfigError("the certificate's licence extension is of an unexpected type")
    return Licence.parse(value.value)


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=_MAX_FIELD)]],
                  Field(min_length=1)]


class RoleRule(BaseModel):
    """What the site accepts for one role: licences issued by one of ``authorities``
    that hold in one of ``jurisdictions`` (compared without regard to case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    authorities: Names
    jurisdictions: Names


class CredentialPolicy(BaseModel):
    """The patient site's credential policy, by role (``surgeon``, ``backup``); a role it
    does not name is not checked. Loaded with ``config.load`` from a TOML file::

        [surgeon]
        authorities = ["FNOMCeO", "GMC"]
        jurisdictions = ["IT", "GB"]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    surgeon: RoleRule | None = None
    backup: RoleRule | None = None

    @model_validator(mode="after")
    def _some_rule(self) -> CredentialPolicy:
        if self.surgeon is None and self.backup is None:
            raise ValueError("a policy names at least one role: add a [surgeon] table with "
                             "authorities and jurisdictions")
        return self

    def check(self, role: str, licence: Licence | None, today: dt.date) -> None:
        """Accept a commander of ``role`` holding ``licence`` on ``today``, or raise
        ``AuthError`` with the reason in one word: ``licence_missing``,
        ``authority_not_accepted``, ``jurisdiction_not_accepted`` or ``licence_expired``."""
        rule: RoleRule | None = getattr(self, role, None)
        if rule is None:
            return
        if licence is None:
            raise AuthError("licence_missing", f"a {role} here needs a licence in the "
                            "certificate; issue it with 'telesurgery pki issue --licence-...'")
        if licence.authority.casefold() not in {a.casefold() for a in rule.authorities}:
            raise AuthError("authority_not_accepted", f"licences of {licence.authority} are "
                            f"not accepted for a {role} here (accepted: "
                            f"{', '.join(rule.authorities)})")
        if licence.jurisdiction.casefold() not in {j.casefold() for j in rule.jurisdictions}:
            raise AuthError("jurisdiction_not_accepted", f"licences holding in "
                            f"{licence.jurisdiction} are not accepted for a {role} here "
                            f"(accepted: {', '.join(rule.jurisdictions)})")
        if today > licence.valid_until:
            raise AuthError("licence_expired", f"licence {licence.number} of "
                            f"{licence.authority} expired on {licence.valid_until}")


CREDENTIAL_REFUSALS = ("licence_missing", "authority_not_accepted",
                       "jurisdiction_not_accepted", "licence_expired")
"""Why :meth:`CredentialPolicy.check` refuses (``AuthError.reason``)."""

__all__ = ["CREDENTIAL_REFUSALS", "LICENCE_OID", "CredentialPolicy", "Licence", "RoleRule",
           "licence_of"]
