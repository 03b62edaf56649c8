"""``telesurgery pki``: create the site CA, issue, list and revoke role certificates.

The CA key is encrypted when ``TELESURGERY_CA_PASSPHRASE`` is set at ``init``; the
same variable then unlocks it for ``issue`` and ``revoke``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from telesurgery.cli.common import write_json
from telesurgery.errors import ConfigError
from telesurgery.security.acl import access_control
from telesurgery.security.credential import Licence
from telesurgery.security.pki import CA_DAYS, LEAF_DAYS, Pki, parse_role

PASSPHRASE_ENV = "TELESURGERY_CA_PASSPHRASE"

pki_app = typer.Typer(help="Site certificate authority and role certificates.",
                      no_args_is_help=True)

DirArg = Annotated[Path, typer.Argument(help="The PKI folder.")]
RoleOpt = Annotated[str, typer.Option(help="surgeon, backup, robot, observer, recorder or "
                                           "router.")]
NameOpt = Annotated[str, typer.Option(help="The person or node, e.g. dr-rossi.")]


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


@pki_app.command("init")
def init(
    directory: DirArg,
    site: Annotated[str, typer.Option(help="Site name, e.g. gemelli-rome.")],
    days: Annotated[int, typer.Option(min=1, help="CA validity [days].")] = CA_DAYS,
) -> None:
    """Create the site CA and an empty revocation list in DIRECTORY."""
    pki = Pki.init(directory, site, days=days, passphrase=_passphrase())
    enc = "encrypted" if _passphrase() else f"unencrypted (set {PASSPHRASE_ENV} to encrypt)"
    typer.echo(f"site CA for {pki.site} created in {directory}; CA key {enc}")


@pki_app.command("issue")
def issue(
    directory: DirArg, role: RoleOpt, name: NameOpt,
    host: Annotated[list[str] | None, typer.Option(
        help="DNS name or IP address the node is reached at (repeat); localhost, "
             "127.0.0.1 and ::1 are always included.")] = None,
    days: Annotated[int, typer.Option(min=1, help="Validity [days].")] = LEAF_DAYS,
    licence_number: Annotated[str | None, typer.Option(
        help="Surgeon or bedside lead: the licence number, e.g. RM-12345.")] = None,
    licence_authority: Annotated[str | None, typer.Option(
        help="The authority that issued the licence, e.g. FNOMCeO.")] = None,
    jurisdiction: Annotated[str | None, typer.Option(
        help="Where the licence holds, e.g. IT.")] = None,
    specialty: Annotated[str | None, typer.Option(help="e.g. urology.")] = None,
    licence_valid_until: Annotated[str | None, typer.Option(
        help="The licence's last day, YYYY-MM-DD.")] = None,
) -> None:
    """Issue a certificate for NAME in ROLE; its identity folder is DIRECTORY/ROLE/NAME.

    A surgeon's (or bedside lead's) licence goes into the certificate with the five
    --licence-... options together."""
    licence = _licence(licence_number, licence_authority, jurisdiction, specialty,
                       licence_valid_until)
    ident = Pki(directory).issue(parse_role(role), name, hosts=host or (), days=days,
                                 passphrase=_passphrase(), licence=licence)
    with_licence = "" if licence is None else (f" with licence {licence.number} of "
                                               f"{licence.authority} ({licence.jurisdiction})")
    typer.echo(f"issued {ident.common_name}{with_licence}: {ident.certificate.parent} "
               "(cert.pem, key.pem 0600, ca.pem); hand this folder to the node")


def _licence(number: str | None, authority: str | None, jurisdiction: str | None,
             specialty: str | None, valid_until: str | None) -> Licence | None:
    given = {"--licence-number": number, "--licence-authority": authority,
             "--jurisdiction": jurisdiction, "--specialty": specialty,
             "--licence-valid-until": valid_until}
    if all(v is None for v in given.values()):
        return None
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise ConfigError(f"a licence needs all five options; add {', '.join(missing)}")
    try:
        until = dt.date.fromisoformat(str(valid_until))
    except ValueError:
        raise ConfigError(f"--licence-valid-until {valid_until!r} is not a date; write "
                          "YYYY-MM-DD, e.g. 2027-06-30") from None
    return Licence(str(number), str(authority), str(jurisdiction), str(specialty), until)


@pki_app.command("list")
def list_(
    directory: DirArg,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")]
    = None,
) -> None:
    """List every certificate issued, with its status."""
    certs = Pki(directory).certificates()
    rows = [{"common_name": c.common_name, "role": c.role.value, "serial": f"{c.serial:x}",
             "not_after": c.not_after.isoformat(), "status": c.status(),
             "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
             "licence": None if c.licence is None else c.licence.as_dict()}
            for c in certs]
    if json_path is not None:
        write_json(json_path, {"certificates": rows})
    # The name never wraps: it is what people search the listing for.
    table = Table(Column("common name", no_wrap=True), "role", "valid until", "status",
                  "licence", "serial")
    for c, r in zip(certs, rows, strict=True):
        colour = "green" if r["status"] == "valid" else "red"
        lic = c.licence
        licence = "" if lic is None else (f"{lic.number} {lic.authority} {lic.jurisdiction} "
                                          f"{lic.specialty} to {lic.valid_until}")
        table.add_row(str(r["common_name"]), str(r["role"]), str(r["not_after"])[:10],
                      f"[{colour}]{r['status']}[/]", licence, str(r["serial"])[:16])
    Console().print(table)


@pki_app.command("revoke")
def revoke(directory: DirArg, role: RoleOpt, name: NameOpt) -> None:
    """Revoke every certificate of NAME in ROLE (then regenerate the access control)."""
    done = Pki(directory).revoke(parse_role(role), name, passphrase=_passphrase())
    typer.echo(f"revoked {len(done)} certificate(s) of {done[0].common_name}; regenerate the "
               "access control ('telesurgery pki acl') and restart routers and nodes: Zenoh "
               "checks no revocation list itself")


@pki_app.command("acl")
def acl(
    directory: DirArg,
    session: Annotated[str, typer.Option(help="Session (e.g. or1), or '*' for all.")],
    out: Annotated[Path | None, typer.Option(help="Write the config here, not stdout.")]
    = None,
) -> None:
    """Print Zenoh's access_control config for the valid certificates (a router's -c file)."""
    block = {"access_control": access_control(session, Pki(directory).roster())}
    if out is None:
        typer.echo(json.dumps(block, indent=2))
    else:
        write_json(out, block)


def register(app: typer.Typer) -> None:
    """Add ``pki`` and its commands."""
    app.add_typer(pki_app, name="pki")
