"""The ``replay`` verb: a recorded session's commands through the supervisor into the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.cli.common import setup_logging, write_json
from telesurgery.record.replay import FREE_SPACE_TOLERANCE_MM
from telesurgery.record.replay import replay as run_replay


def replay(
    directory: Annotated[Path, typer.Argument(help="Session directory (holds recording.mcap).")],
    tolerance: Annotated[float, typer.Option(
        help="Largest tool-tip deviation [mm] in free space, away from gaps in the "
        "recording, before replay fails.")] = FREE_SPACE_TOLERANCE_MM,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write the deviations (JSON) here.")] = None,
    log_level: Annotated[str, typer.Option("--log-level",
                                           help="debug, info, warning or error.")] = "warning",
) -> None:
    """Replay the recorded commands, with their recorded timing in simulated time, through a
    fresh safety supervisor and simulator; compare the tool tips with the recorded
    measured_cp; exit 1 when an arm deviates more than --tolerance in free space away from
    commands the recorder missed (reconstructed from their neighbours); contact and those
    samples are reported, not judged."""
    setup_logging(log_level)

    result = run_replay(directory, tolerance)
    typer.echo(f"replayed {result.commands} commands over {result.ticks} ticks "
               f"({result.ticks * 1e-3:.1f} s simulated) in {result.wall_s:.1f} s; command "
               f"delay fitted {result.delay_ms:.2f} ms; safety transitions recorded "
               f"{result.recorded_events}, replayed {result.replayed_events}")
    if result.recorded_watchdog > result.replayed_watchdog:
        typer.echo(f"note: {result.recorded_watchdog - result.replayed_watchdog} watchdog "
                   "hold(s) of the session not repeated: their commands were sent on time "
                   "and arrived late at the patient, which the recording cannot show")
    if result.rejected:
        typer.echo(f"rejected in replay: {result.rejected}")
    for a in result.arms:
        verdict = "ok" if a.judged_max_mm <= result.tolerance_mm else "EXCEEDED"
        typer.echo(f"{a.arm}: judged max {a.judged_max_mm:.3f} mm, RMS {a.judged_rms_mm:.3f} mm "
                   f"({a.judged_samples} of {a.samples} samples) {verdict}; whole run max "
                   f"{a.max_mm:.3f} mm, RMS {a.rms_mm:.3f} mm, {a.max_rad * 1e3:.2f} mrad; "
                   f"not judged: {a.contact_samples} in contact, {a.gap_samples} near the "
                   f"{a.missing_commands} commands reconstructed (missing from the recording), "
                   f"{a.held_samples} after holds not repeated; "
                   "same command "
                   f"tracked at {100 * a.applied_match:.1f} % of samples")
    task = result.task
    if task.get("recorded"):
        typer.echo(f"task: recorded {task['recorded'].get('completed')} transfers, replayed "
                   f"{task['replayed'].get('completed')}")
    if json_path is not None:
        write_json(json_path, result.as_dict())
    if not result.ok:
        typer.echo(f"REPLAY DEVIATES: more than {result.tolerance_mm} mm in free space")
        raise typer.Exit(1)
    typer.echo(f"OK: every arm within {result.tolerance_mm} mm of the recording in free space "
               "away from recording gaps")


def register(app: typer.Typer) -> None:
    """Add ``replay``."""
    app.command()(replay)
