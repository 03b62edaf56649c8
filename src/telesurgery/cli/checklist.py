"""``telesurgery checklist``: the bedside lead confirms the pre-flight checklist, or overrides
a failed item with a written reason, in the confirmation file the patient node reads
(``--checklist-confirmation``); the node audits both."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.config import CHECKLIST_ITEMS, ChecklistConfirmation, load
from telesurgery.errors import ConfigError
from telesurgery.patient.checklist import write_confirmation

checklist_app = typer.Typer(help="Confirm the pre-flight checklist at the bedside.",
                            no_args_is_help=True)
FileArg = Annotated[Path, typer.Argument(help="The confirmation file the patient node reads "
                                              "(--checklist-confirmation).")]


def _read(path: Path) -> tuple[str | None, dict[str, str]]:
    """Who confirmed and the overrides so far (nothing, before the first write)."""
    known = load(ChecklistConfirmation, path if path.exists() else None)
    return known.confirmed_by, {str(item): reason for item, reason in known.overrides.items()}


@checklist_app.command()
def confirm(file: FileArg, by: Annotated[str, typer.Option(
        help="The bedside lead confirming, e.g. sister-chen.")]) -> None:
    """Confirm the checklist: the patient node clears it once every item is GO or
    overridden."""
    write_confirmation(file, by, _read(file)[1])
    typer.echo(f"checklist confirmed by {by} in {file}")


@checklist_app.command()
def override(file: FileArg,
             item: Annotated[str, typer.Option(help=f"One of {', '.join(CHECKLIST_ITEMS)}.")],
             reason: Annotated[str, typer.Option(
                 help="Why the team goes ahead without it (10 characters or more).")]) -> None:
    """Override one failed item with a written reason (audited by the patient node)."""
    if item not in CHECKLIST_ITEMS:
        raise ConfigError(f"item {item!r} is not on the checklist; use one of "
                          f"{', '.join(CHECKLIST_ITEMS)}")
    confirmed_by, overrides = _read(file)
    write_confirmation(file, confirmed_by, {**overrides, item: reason})
    typer.echo(f"{item} overridden in {file}: {reason}")


def register(app: typer.Typer) -> None:
    """Add ``checklist`` and its commands."""
    app.add_typer(checklist_app, name="checklist")
