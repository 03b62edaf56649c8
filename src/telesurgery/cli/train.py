"""``telesurgery train TASK --trainee NAME`` and ``telesurgery train report NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from telesurgery.cli.common import setup_logging, stop_on_signals, write_json
from telesurgery.errors import ConfigError
from telesurgery.tasks import TASKS, rules_for

DEFAULT_DB = Path("training.db")


def train(
    what: Annotated[str, typer.Argument(
        help="The task to attempt (peg_transfer, handover or precision), or 'report'.",
        show_default=False)],
    name: Annotated[str | None, typer.Argument(
        help="With 'report': the trainee whose learning curve to write.",
        show_default=False)] = None,
    trainee: Annotated[str | None, typer.Option(
        help="Who attempts the task (the database keeps each trainee's attempts).")] = None,
    headless: Annotated[bool, typer.Option(
        help="The autopilot performs the task, no page (default: the trainee drives from "
             "the console page, whose URL is printed).")] = False,
    db: Annotated[Path, typer.Option(
        help="The training database (SQLite; created if new).")] = DEFAULT_DB,
    record: Annotated[bool, typer.Option(
        "--record/--no-record", help="Record each attempt's session (MCAP and audit "
        "trail) in a folder beside the database, linked from the attempt.")] = True,
    out: Annotated[Path | None, typer.Option(
        help="With 'report': the HTML file to write.")] = None,
    summary: Annotated[Path | None, typer.Option(
        help="Write the attempt's summary JSON here.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Attempt a training task as TRAINEE, scored and kept in the training database; or
    'train report NAME --out FILE': NAME's learning curve against the proficiency level."""
    setup_logging(log_level)
    if what == "report":
        _report(name, db, out)
        return
    if name is not None:
        raise ConfigError(f"unexpected {name!r}: 'train TASK --trainee NAME' attempts a task, "
                          "'train report NAME --out FILE' writes a report")
    rules = rules_for(what)
    if trainee is None:
        raise ConfigError("who is training? add --trainee NAME")
    from telesurgery.training.train import TrainOptions, run_attempt

    opts = TrainOptions(rules.name, trainee, db, headless,
                        db.parent / "recordings" if record else None, log_level)
    out_console = Console(stderr=True)
    shown: set[str] = set()

    def tick(monitor: object, _elapsed_s: float) -> None:
        pages = getattr(monitor, "pages", {})
        if not headless and "console" in pages and "console" not in shown:
            shown.add("console")
            out_console.print(f"{trainee}: drive the {rules.title.lower()} from "
                              f"{pages['console']}")

    out_console.print(f"{trainee}: {rules.title} (cutoff {rules.cutoff_s:g} s)")
    attempt, result = run_attempt(opts, stop_on_signals(), tick)
    task = result.get("task") or {}
    time_s = task.get("time_s") if task.get("finished") else None
    out_console.print(f"attempt {attempt}: "
                      + (f"done in {time_s:.1f} s, score {task.get('score', 0):.1f}"
                         if time_s is not None else "not finished within the cutoff: score 0")
                      + f", penalties {task.get('penalties', {})}; in {db}")
    if summary is not None:
        write_json(summary, result)


def _report(name: str | None, db: Path, out: Path | None) -> None:
    if name is None or out is None:
        raise ConfigError("'train report' needs the trainee and the file: "
                          "telesurgery train report NAME --out FILE")
    if not db.is_file():
        raise ConfigError(f"--db {db}: no training database there; give the path the "
                          "attempts were recorded with")
    from telesurgery.training.db import TrainingDB
    from telesurgery.training.report import render_trainee

    with TrainingDB(db) as database:
        page = render_trainee(database, name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}; choose a writable path") \
            from exc
    Console(stderr=True).print(f"report of {name} written to {out}")


def register(app: typer.Typer) -> None:
    """Add ``train``."""
    app.command(help=f"{train.__doc__}\n\nTasks: {', '.join(sorted(TASKS))}")(train)
