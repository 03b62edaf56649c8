"""``telesurgery link``: the impairment emulator between two endpoints, by profile or flags."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from telesurgery.cli.common import setup_logging, write_json
from telesurgery.errors import ConfigError

if TYPE_CHECKING:
    from telesurgery.link.emulator import Emulator
    from telesurgery.link.impairment import Impairment
    from telesurgery.link.profiles import PathSpec

log = logging.getLogger(__name__)


def _outage(text: str) -> tuple[float, float]:
    start, sep, duration = text.partition(":")
    try:
        if sep:
            return float(start), float(duration)
    except ValueError:
        pass
    raise ConfigError(f"--outage {text!r}: write START_S:DURATION_S, e.g. 10:0.5")


def _burst(text: str) -> dict[str, float]:
    enter, sep, leave = text.partition(":")
    try:
        if sep:
            return {"p_enter_bad": float(enter), "p_leave_bad": float(leave)}
    except ValueError:
        pass
    raise ConfigError(f"--burst-loss {text!r}: write P_ENTER_BAD:P_LEAVE_BAD, e.g. 0.004:0.25")


def _override(spec: Impairment, changes: dict[str, Any]) -> Impairment:
    """``spec`` with ``changes`` (from flags) applied; ``ConfigError`` naming the flag."""
    from pydantic import ValidationError

    from telesurgery.link.impairment import Impairment

    if not changes:
        return spec
    try:
        return Impairment.model_validate({**spec.model_dump(), **changes})
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "a flag"
        raise ConfigError(f"{flag}: {str(err['msg']).removeprefix('Value error, ')}") from exc


def resolve_path(profile: str | None, path: str | None,
                 changes: dict[str, Any]) -> tuple[str, str, PathSpec]:
    """The profile name, path name and path spec to emulate, with flag overrides applied."""
    from telesurgery.link.profiles import PathSpec, load_profile

    if profile is None:
        if path is not None:
            raise ConfigError("--path needs --profile; list the profiles with --list-profiles")
        name, base, spec = "flags", "path", PathSpec()
    else:
        prof = load_profile(profile)
        name = prof.name
        base, spec = prof.path(path)
        if path is None and len(prof.paths) > 1:
            log.warning("profile %s has paths %s; emulating %r (choose with --path)",
                        prof.name, ", ".join(prof.paths), base)
    spec = PathSpec(forward=_override(spec.forward, changes),
                    reverse=_override(spec.reverse, changes))
    return name, base, spec


async def _serve(emulator: Emulator, profile: str, stats_every: float) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        ready = {"event": "ready", "profile": profile, "path": emulator.name,
                 "listen": str(emulator.listen_address), "forward": str(emulator.forward),
                 "control": str(emulator.control_address) if emulator.control_address else None}
        print(json.dumps(ready), flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), stats_every if stats_every > 0 else None)
            except TimeoutError:
                log.info("link %s: %s", emulator.name, json.dumps(emulator.stats()["directions"]))
        return {"event": "stopped", "profile": profile, **emulator.stats()}


def link(
    listen: Annotated[str | None, typer.Option(
        help="Endpoint to listen on, e.g. tcp/127.0.0.1:7501 (port 0: any free port).")] = None,
    forward: Annotated[str | None, typer.Option(
        help="Endpoint to forward to, same protocol, e.g. tcp/127.0.0.1:7448.")] = None,
    profile: Annotated[str | None, typer.Option(
        help="Built-in profile name or a .toml profile file (see --list-profiles).")] = None,
    path: Annotated[str | None, typer.Option(
        help="Which path of the profile (default: its first).")] = None,
    delay_ms: Annotated[float | None, typer.Option(help="One-way delay, ms.", min=0.0)] = None,
    jitter_ms: Annotated[float | None, typer.Option(
        help="Delay standard deviation, ms.", min=0.0)] = None,
    jitter_correlation_ms: Annotated[float | None, typer.Option(
        help="Jitter time constant, ms; 0: independent per packet.", min=0.0)] = None,
    reorder: Annotated[bool | None, typer.Option(
        "--reorder/--no-reorder", help="Let jitter reorder packets (UDP).")] = None,
    loss: Annotated[float | None, typer.Option(
        help="Random loss probability (UDP).", min=0.0, max=1.0)] = None,
    burst_loss: Annotated[str | None, typer.Option(
        help="Gilbert-Elliott loss P_ENTER_BAD:P_LEAVE_BAD (UDP).")] = None,
    duplicate: Annotated[float | None, typer.Option(
        help="Duplication probability (UDP).", min=0.0, max=1.0)] = None,
    rate_mbit_s: Annotated[float | None, typer.Option(
        help="Bandwidth cap [Mbit/s]; 0: none.", min=0.0)] = None,
    queue_ms: Annotated[float | None, typer.Option(
        help="Queue bound in front of the cap, ms.")] = None,
    outage: Annotated[list[str] | None, typer.Option(
        help="Scheduled outage START_S:DURATION_S (repeat for more).")] = None,
    control: Annotated[str | None, typer.Option(
        help="UDP control port on loopback, e.g. udp/127.0.0.1:7600; it takes the text "
             "commands 'cut', 'cut forward', 'cut reverse', 'restore' (same forms) and 'stats' "
             "(try: echo cut | "
             "nc -u -w1 127.0.0.1 7600) and answers JSON.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed, for reproducible impairments.")] = None,
    stats_every: Annotated[float, typer.Option(
        help="Log statistics every S seconds (0: never).")] = 0.0,
    report: Annotated[Path | None, typer.Option(help="Write final statistics here (JSON).")] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime/--no-realtime", help="Run SCHED_FIFO where permitted.")] = True,
    list_profiles: Annotated[bool, typer.Option(
        "--list-profiles", help="List the built-in profiles and exit.")] = False,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Emulate a network path between two endpoints (UDP or TCP), per direction.

    Impairment flags override the profile in both directions. Loss, duplication and
    reordering apply to UDP only: TCP never loses bytes, so a lost TCP chunk is
    delivered one round trip late instead. Prints one JSON line when ready and one
    with the final statistics when stopped (Ctrl-C).
    """
    setup_logging(log_level)
    # Imported here so that the other verbs start without loading the link package.
    from telesurgery.clock import set_realtime
    from telesurgery.link.emulator import Emulator
    from telesurgery.link.locator import Locator, precise_loop
    from telesurgery.link.profiles import load_profile, profile_names

    if list_profiles:
        for name in profile_names():
            prof = load_profile(name)
            typer.echo(f"{name:26} {', '.join(prof.paths):12} {prof.description}")
        return
    if listen is None or forward is None:
        raise ConfigError("give both --listen and --forward, e.g. --listen tcp/127.0.0.1:7501 "
                          "--forward tcp/127.0.0.1:7448")
    flags: dict[str, Any] = {
        "delay_ms": delay_ms, "jitter_ms": jitter_ms,
        "jitter_correlation_ms": jitter_correlation_ms, "reorder": reorder, "loss": loss,
        "duplicate": duplicate, "rate_mbit_s": rate_mbit_s, "queue_ms": queue_ms,
        "burst_loss": _burst(burst_loss) if burst_loss is not None else None,
        "outages": [_outage(o) for o in outage] if outage else None,
    }
    profile_name, path_name, spec = resolve_path(
        profile, path, {k: v for k, v in flags.items() if v is not None})
    emulator = Emulator(Locator.parse(listen), Locator.parse(forward), spec, name=path_name,
                        seed=seed,
                        control=Locator.parse(control, ("udp",)) if control else None)
    if realtime and not set_realtime():
        log.info("SCHED_FIFO not permitted; the emulator runs at normal priority")
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        final = runner.run(_serve(emulator, profile_name, stats_every))
    if report is not None:
        write_json(report, final)
    print(json.dumps(final), flush=True)


def register(app: typer.Typer) -> None:
    """Add ``link``."""
    app.command("link")(link)
