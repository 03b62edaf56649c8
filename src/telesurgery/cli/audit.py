"""The ``audit`` verbs: ``audit verify DIR`` checks a session's signed, hash-chained trails
and the responsibility they record; ``audit who DIR --at S`` says who was responsible."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.errors import ConfigError
from telesurgery.record.audit import AuditVerifier, short
from telesurgery.record.responsibility import answer, check_timeline, load_timeline

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
    """Detect edited, removed, reordered or inserted records; exit 1 naming each, 0 if intact.

    Then the responsibility timeline the patient's trails give: the chain of custody of
    control, a key agreed by every console that held it, no remote surgeon in control
    before a required checklist cleared."""
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
    if any(r.node == "patient" for r in reports):
        timeline = load_timeline(directory, trust or ())
        issues = check_timeline(timeline)
        for issue in issues:
            typer.echo(f"FAIL responsibility: {issue}")
        if issues:
            typer.echo(f"RESPONSIBILITY: {len(issues)} problem(s) in the timeline")
            raise typer.Exit(1)
    signers = ", ".join(f"{r.node} {short(r.fingerprint)}" for r in reports)
    typer.echo(f"OK: {records} records in {len(reports)} trail(s), intact; signed by {signers}")


@audit_app.command()
def who(
    directory: Annotated[Path, typer.Argument(help="Session directory (holds audit/).")],
    at: Annotated[float, typer.Option(
        "--at", help="Seconds from the session's start (the patient's session_start).")],
    trust: Annotated[list[str] | None, typer.Option(
        "--trust", help="Fingerprint (SHA256:...) a signer must match (repeat).")] = None,
) -> None:
    """Who was responsible at a moment: the console holding control (its certificate name
    on the first line), its licence, the bedside lead; from the verified trail alone."""
    if not at >= 0.0:
        raise ConfigError(f"--at must be seconds from the start, 0 or more; got {at}")
    for line in answer(load_timeline(directory, trust or ()), at):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``audit`` and its sub-verbs."""
    app.add_typer(audit_app, name="audit")
