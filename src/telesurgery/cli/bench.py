"""``telesurgery bench``: the performance suite; each benchmark writes JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from telesurgery.cli.common import setup_logging, write_json

bench_app = typer.Typer(help="Performance benchmarks (write JSON with --json PATH).",
                        no_args_is_help=True)

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the results here.")]


def _emit(result: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        write_json(path, result)
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("control")
def control(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds at 1 kHz (>= 60 for p99.9).")] = 60.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Input -> accepted latency, servo-tick wait, loop jitter and CPU, through real processes."""
    setup_logging(log_level)
    from telesurgery.bench.control import bench_control

    _emit(bench_control(duration), json_path)


@bench_app.command("link")
def link(
    json_path: JsonOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds per protocol (UDP, then TCP).",
                                            min=0.5)] = 10.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Link emulator accuracy: applied delay minus the profile's, under 1 kHz control
    and 30 fps video-sized traffic, over UDP and TCP (target: p99 within 0.5 ms)."""
    setup_logging(log_level)
    from telesurgery.link.bench import bench_link

    _emit(bench_link(duration), json_path)


def register(app: typer.Typer) -> None:
    """Add ``bench`` and its benchmarks."""
    app.add_typer(bench_app, name="bench")
