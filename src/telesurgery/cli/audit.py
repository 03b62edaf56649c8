"""The ``audit`` verbs: ``audit verify DIR`` checks a session's signed, hash-chained trails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.record.audit import AuditVerifier, short

audit_app = typer.Typer(help="Check the audit trails of a recorded session.",
                        no_args_is_help=True)


@audit_app.command()
def verify(
    directory: Annotated[Path, typer.Argument(help="Session directory (holds audit/).")],
    trust: Annotated[list[str] | None, typer.Option(
        "--trust", help="Fingerprint (SHA256:...) a signer must match, obtained out of band "
        "(repeat).")] = None,
    allow_open: Annotated[bool, typer.Option(
        help="Accept trails without session_stop (node still running or killed).")] = False,
) -> None:
    """Detect edited, removed, reordered or inserted records; exit 1 naming each, 0 if intact."""
    reports = AuditVerifier(trust or (), allow_open=allow_open).verify_dir(directory)
    bad = [r for r in reports if not r.ok]
    for r in bad:
        for finding in r.findings:
            typer.echo(f"FAIL {r.trail.name}: {finding}")
    records = sum(r.records for r in reports)
    if bad:
        problems = sum(len(r.findings) for r in bad)
        typer.echo(f"TAMPERED: {problems} problem(s) in {len(bad)} of {len(reports)} trail(s)")
        raise typer.Exit(1)
    signers = ", ".join(f"{r.node} {short(r.fingerprint)}" for r in reports)
    typer.echo(f"OK: {records} records in {len(reports)} trail(s), intact; signed by {signers}")


def register(app: typer.Typer) -> None:
    """Add ``audit`` and its sub-verbs."""
    app.add_typer(audit_app, name="audit")
