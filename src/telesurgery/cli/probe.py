"""``telesurgery probe``: qualify paths (GO / NO-GO) against a responder, or be the responder."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from telesurgery.cli.common import check_duration, setup_logging, write_json
from telesurgery.errors import ConfigError

if TYPE_CHECKING:
    from telesurgery.link.locator import Locator
    from telesurgery.link.probe import PathResult


def _targets(connect: list[str]) -> dict[str, Locator]:
    """``[NAME=]udp/HOST:PORT`` options as named paths (unnamed ones are path1, path2, ...)."""
    from telesurgery.link.locator import Locator

    out: dict[str, Locator] = {}
    for i, text in enumerate(connect, start=1):
        name, sep, where = text.partition("=")
        if not sep:
            name, where = (f"path{i}" if len(connect) > 1 else "path"), text
        if name in out:
            raise ConfigError(f"--connect: path {name!r} given twice; name each one NAME=udp/...")
        out[name] = Locator.parse(where, ("udp",))
    return out


async def _respond(listen: Locator) -> dict[str, Any]:
    from telesurgery.link.probe import Responder

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Responder(listen) as responder:
        print(json.dumps({"event": "ready", "listen": str(responder.listen_address)}), flush=True)
        await stop.wait()
    return {"event": "stopped", "pings": responder.pings, "rejected": responder.rejected}


def _describe(p: PathResult) -> list[str]:
    m = p.metrics
    lines = [f"path {p.name} ({p.target}): {m['sent']} pings, {m['replies']} replies"]
    rtt = m["rtt_ms"]
    if rtt:
        ow = m["one_way_ms"]
        lines.append(
            f"  rtt p50 {rtt['p50']:.2f} ms, p99 {rtt['p99']:.2f} ms; one-way forward "
            f"{ow['forward']['p50']:.2f} ms, reverse {ow['reverse']['p50']:.2f} ms "
            f"(clock offset {m['clock_offset_ms']:.3f} ms +- {m['clock_offset_bound_ms']:.3f})")
    jit = m["jitter_ms"]
    loss = m["loss"]
    dirs = [d for d in ("forward", "reverse") if d in loss] or ["round_trip"]
    lines.append("  jitter " + ", ".join(f"{d} {v:.3f} ms" for d, v in jit.items()
                                         if v is not None) + "; loss " + ", ".join(
        f"{d} {100 * loss[d]['loss']:.2f} % (longest burst {loss[d]['longest_burst_ms']:g} ms)"
        for d in dirs))
    bw = m["bandwidth"]
    if bw.get("measured"):
        lines.append(f"  bandwidth {bw['mbit_s']:.2f} Mbit/s received of {bw['probe_mbit_s']:g} "
                     f"sent ({100 * bw['loss']:.1f} % of the burst lost)")
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.describe()}" for c in p.checks]
    lines += [f"  note: {n}" for n in m["notes"]]
    return lines


def probe(
    connect: Annotated[list[str] | None, typer.Option(
        help="A path to qualify: udp/HOST:PORT of a responder, or NAME=udp/HOST:PORT "
             "(repeat per path).")] = None,
    respond: Annotated[bool, typer.Option(
        "--respond", help="Be the responder instead, on --listen.")] = False,
    listen: Annotated[str, typer.Option(
        help="Responder endpoint: the far side's address on the path (port 0: any free "
             "port).")] = "udp/127.0.0.1:7610",
    duration: Annotated[float, typer.Option(help="Seconds of pings per path.")] = 10.0,
    rate: Annotated[float, typer.Option(help="Pings per second.")] = 200.0,
    thresholds: Annotated[Path | None, typer.Option(
        help="TOML file of thresholds (max_rtt_ms, max_jitter_ms, max_loss, max_loss_burst_ms, "
             "min_bandwidth_mbit_s).")] = None,
    max_rtt_ms: Annotated[float | None, typer.Option(help="Round trip p99 limit, ms.")] = None,
    max_jitter_ms: Annotated[float | None, typer.Option(help="Jitter limit, ms.")] = None,
    max_loss: Annotated[float | None, typer.Option(help="Loss limit (fraction).")] = None,
    max_loss_burst_ms: Annotated[float | None, typer.Option(
        help="Longest loss burst limit, ms.")] = None,
    min_bandwidth_mbit_s: Annotated[float | None, typer.Option(
        help="Bandwidth floor, Mbit/s; 0 skips the burst.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Qualify each path: RTT, one-way delay, jitter, loss and bursts, bandwidth; GO or NO-GO.

    Exits 0 on GO, 1 on NO-GO. Thresholds default to the clinical literature (the
    report cites each); a TOML file and the flags change them.
    """
    setup_logging(log_level)
    check_duration(duration)
    # Imported here so that the other verbs start without loading the link package.
    from telesurgery.config import load
    from telesurgery.link.locator import Locator, precise_loop
    from telesurgery.link.probe import ProbeSettings, Thresholds, run_probe

    if respond:
        with asyncio.Runner(loop_factory=precise_loop) as runner:
            final = runner.run(_respond(Locator.parse(listen, ("udp",))))
        print(json.dumps(final), flush=True)
        return
    if not connect:
        raise ConfigError("give --connect udp/HOST:PORT of a responder (one per path), "
                          "or --respond to be one")
    limits = load(Thresholds, thresholds, max_rtt_ms=max_rtt_ms, max_jitter_ms=max_jitter_ms,
                  max_loss=max_loss, max_loss_burst_ms=max_loss_burst_ms,
                  min_bandwidth_mbit_s=min_bandwidth_mbit_s)
    report = run_probe(_targets(connect), ProbeSettings(duration_s=duration, rate_hz=rate),
                       limits)
    for path in report.paths:
        for line in _describe(path):
            typer.echo(line)
    if report.go:
        typer.echo("GO: every path meets every threshold")
    else:
        typer.echo("NO-GO:")
        for reason in report.reasons:
            typer.echo(f"  {reason}")
    if json_path is not None:
        write_json(json_path, report.to_json())
    raise typer.Exit(0 if report.go else 1)


def register(app: typer.Typer) -> None:
    """Add ``probe``."""
    app.command("probe")(probe)
