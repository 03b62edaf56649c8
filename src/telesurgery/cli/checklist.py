"""``telesurgery checklist``: the bedside lead confirms the pre-flight checklist, or overrides
a failed item with a written reason, in the confirmation file the patient node reads
(``--checklist-confirmation``); the node audits both."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from telesurgery.config import CHECKLIST_ITEMS, ChecklistConfirmation, load
from telesurgery.errors import ConfigError

checklist_app = typer.Typer(help="Confirm the pre-flight checklist at the bedside.",
                            no_args_is_help=True)
FileArg = Annotated[Path, typer.Argument(help="The confirmation file the patient node reads "
                                              "(--checklist-confirmation).")]


def _toml_text(value: str) -> str:
    # A TOML basic string: the few escapes JSON and TOML share.
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{out}"'


def _write(path: Path, data: dict[str, Any]) -> None:
    """Validate ``data`` as a confirmation, then replace ``path`` whole, so the node never
    reads half a file."""
    cfg = load(ChecklistConfirmation, None, **data)
    lines = []
    if cfg.confirmed_by is not None:
        lines.append(f"confirmed_by = {_toml_text(cfg.confirmed_by)}")
    lines.append("[overrides]")
    lines += [f"{item} = {_toml_text(reason)}" for item, reason in cfg.overrides.items()]
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; choose a writable "
                          "folder") from exc


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    load(ChecklistConfirmation, path)
    with path.open("rb") as f:
        return tomllib.load(f)


@checklist_app.command()
def confirm(file: FileArg, by: Annotated[str, typer.Option(
        help="The bedside lead confirming, e.g. sister-chen.")]) -> None:
    """Confirm the checklist: the patient node clears it once every item is GO or
    overridden."""
    data = _read(file) | {"confirmed_by": by}
    _write(file, data)
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
    data = _read(file)
    data["overrides"] = {**data.get("overrides", {}), item: reason}
    _write(file, data)
    typer.echo(f"{item} overridden in {file}: {reason}")


def register(app: typer.Typer) -> None:
    """Add ``checklist`` and its commands."""
    app.add_typer(checklist_app, name="checklist")
