"""``telesurgery drill FILE``: a fault drill for the hybrid team, and its score sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from telesurgery.cli.common import setup_logging, stop_on_signals, write_json


def drill(
    file: Annotated[Path, typer.Argument(help="The drill (TOML), e.g. "
                                              "configs/drills/console-crash.toml.",
                                         show_default=False)],
    summary: Annotated[Path | None, typer.Option(
        help="Write the score sheet (JSON) here.")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="Keep the session's logs here (default: a temporary folder).")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Run a fault drill: the session with its timed faults, the team's responses measured
    (time to each alarm, to the bedside's take-over, motion during it, time to resume)
    against the drill's pass criteria. Exits 1 when the drill is failed."""
    setup_logging(log_level)
    from telesurgery.training.drill import load_drill, run_drill

    plan = load_drill(file)
    out = Console(stderr=True)
    out.print(f"drill {plan.name}: {plan.what}")
    sheet = run_drill(plan, stop_on_signals(), workdir, log_level)
    table = Table(title=f"drill {plan.name}: {'PASSED' if sheet['passed'] else 'FAILED'}")
    for col in ("at [s]", "fault", "alarm [s]", "response [s]", "resume [s]", "passed",
                "criteria"):
        table.add_column(col)
    for e in sheet["events"]:
        table.add_row(f"{e['at_s']:g}", e["fault"], _s(e["alarm_s"]), _s(e["response_s"]),
                      _s(e["resume_s"]), "yes" if e["passed"] else "NO", e["criteria"])
    out.print(table)
    if summary is not None:
        write_json(summary, sheet)
    if not sheet["passed"]:
        raise typer.Exit(1)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Add ``drill``."""
    app.command()(drill)
