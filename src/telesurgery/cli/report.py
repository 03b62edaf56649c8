"""The ``report`` verb: a self-contained HTML report of a recorded session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.cli.common import setup_logging
from telesurgery.errors import RecordingError


def report(
    directory: Annotated[Path, typer.Argument(help="Session directory (holds recording.mcap) "
                                              "or one MCAP file.")],
    out: Annotated[Path | None, typer.Option(
        help="Where to write the HTML (default: report.html in the session directory).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level",
                                           help="debug, info, warning or error.")] = "warning",
) -> None:
    """Write one HTML file (plots inline, no external asset): summary, control latency,
    one-way delay and health per path, video, safety timeline, handovers, task, audit.
    Exits 1, after writing the report of what is readable, when the recording was cut
    short."""
    setup_logging(log_level)
    from telesurgery.record.analysis import load_session
    from telesurgery.record.report import render_report

    session = load_session(directory)
    target = out or (directory if directory.is_dir() else directory.parent) / "report.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_report(session), encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"cannot write {target}: {exc.strerror}; choose a writable "
                             "path with --out") from exc
    typer.echo(f"report of {session.duration_s:.1f} s, {session.messages} messages written "
               f"to {target}")
    if not session.complete:
        # The report of the readable part is what a crash leaves to look at; the exit
        # status still says the recording is not whole.
        typer.echo(f"telesurgery: warning: the recording in {directory} is truncated (cut "
                   "short, no footer: the recorder was killed or the disk filled); the report "
                   f"covers only its first {session.duration_s:.1f} s, up to the last complete "
                   "chunk", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``report``."""
    app.command()(report)
