"""``telesurgery demo``: the whole system on one machine, with a live status view."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner

from telesurgery.cli.common import (
    FoxgloveOpt,
    check_duration,
    setup_logging,
    stop_on_signals,
    write_json,
)
from telesurgery.demo.browser import open_page as browser_page
from telesurgery.demo.linkrig import Cut, check_link_options
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.recording import summary_line
from telesurgery.demo.run import DemoOptions, run_demo, writable_dir
from telesurgery.demo.view import render_status, render_summary
from telesurgery.errors import ConfigError
from telesurgery.tasks import rules_for

DEMO_DEVICES = ("autopilot", "touch")
"""The input devices that drive the demo's console by themselves."""
_PAGE_NAMES = {"console": "surgeon console", "backup": "backup console"}


def demo(
    headless: Annotated[bool, typer.Option(help="No live view; run unattended.")] = False,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds "
                                                   "(default: until Ctrl-C).")] = None,
    summary: Annotated[str | None, typer.Option(
        help="Write the summary JSON here ('-': to stdout, for scripts; default: "
             "summary.json in the work folder).")] = None,
    session: Annotated[str, typer.Option(help="Session name in the key space.")] = "or1",
    workdir: Annotated[Path | None, typer.Option(help="Where node logs and reports go "
                                                 "(default: a new temporary folder).")] = None,
    link: Annotated[str | None, typer.Option(
        help="Emulate this link profile between console and patient: one emulator per "
             "path of the profile (e.g. rome-beijing: fibre and 5g). Default: one direct "
             "path. `telesurgery link --list-profiles` lists them.")] = None,
    loss: Annotated[float | None, typer.Option(
        help="Random loss probability (0 to 1) on every emulated path, both ways, in place "
             "of the profile's (needs --link).")] = None,
    cut: Annotated[list[str] | None, typer.Option(
        help="Cut a path during the run: PATH@T or PATH@T:DURATION in seconds, e.g. "
             "fibre@5:2 (repeat). The live view also shows each path's control port for "
             "cutting by hand.")] = None,
    record: Annotated[Path | None, typer.Option(
        help="Record the session into this directory: every message to MCAP (opens in "
             "Foxglove) and the patient's signed audit trail; then `telesurgery report`, "
             "`replay` and `audit verify` read it.")] = None,
    foxglove: FoxgloveOpt = None,
    video: Annotated[bool, typer.Option(help="Endoscope video from patient to console.")
                     ] = True,
    web_port: Annotated[int | None, typer.Option(
        help="Port of the surgeon console page (default: a free port; the URL, with this "
             "launch's secret, is printed once the console serves it).")] = None,
    open_page: Annotated[bool, typer.Option(
        "--open/--no-open", help="Open the console page in a browser where a graphical "
        "session has one (never with --headless).")] = True,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plain TCP without TLS, access control or command tags "
        "(default: a throwaway PKI in the work folder and mutual TLS everywhere).")] = False,
    backup: Annotated[bool, typer.Option(
        "--backup", help="Run the bedside backup console too (backup:bedside-team): with "
        "its own page, or with --headless a hand that holds still.")] = False,
    takeover_at: Annotated[float | None, typer.Option(
        help="Drill: the backup console takes control this many seconds into the run "
        "(implies --backup).")] = None,
    backup_web_port: Annotated[int | None, typer.Option(
        help="Port of the backup console page (default: a free port).")] = None,
    pin_sites: Annotated[bool, typer.Option(
        help="Run each site on its own half of the CPUs, as on two machines: the patient's "
             "(router, patient node, bedside console) and the surgeon's (console); the "
             "emulated network and the recorder float.")] = True,
    force_cap: Annotated[float | None, typer.Option(
        "--force-cap", help="Force cap at the instruments' tips [N] (default: 8), for both "
        "sides: the consoles' pages alarm and sound at or above it, the patient's "
        "supervisor limits motion into contact beyond it.")] = None,
    device: Annotated[str, typer.Option(
        help="The surgeon console's input device: autopilot, or touch (the autopilot's "
             "hands on simulated haptic devices that display the force at the tips).")
                      ] = "autopilot",
    sites: Annotated[Path | None, typer.Option(
        help="Run the deployment file's sites (docs/deploy.md), each in its own network "
             "namespace joined only through WAN emulators (needs root).")] = None,
    task: Annotated[str, typer.Option(
        help="The training task: peg_transfer, handover or precision (docs/training.md).")
                    ] = "peg_transfer",
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Run patient node, surgeon console (autopilot surgeon) and a Zenoh router together,
    and with --backup the bedside backup console; the consoles' pages (endoscope video,
    HUD, control buttons) are served on loopback."""
    setup_logging(log_level)
    check_duration(duration)
    if headless and duration is None:
        raise ConfigError("--headless needs --duration S (nothing would stop it otherwise)")
    if device not in DEMO_DEVICES:
        raise ConfigError(f"--device {device!r}: the demo's console runs one of "
                          f"{', '.join(DEMO_DEVICES)}")
    stop = stop_on_signals()
    port = web_port if web_port is not None else 0
    backup = backup or takeover_at is not None
    backup_port = None
    if backup and not headless:
        backup_port = backup_web_port if backup_web_port is not None else 0
    opts = DemoOptions(duration_s=duration, session=session, workdir=workdir, device=device,
                       log_level=log_level, link=link, loss=loss,
                       cuts=tuple(Cut.parse(c) for c in cut or ()), record=record,
                       foxglove=foxglove,
                       video=video, web_port=port, insecure=insecure, backup=backup,
                       backup_web_port=backup_port, takeover_at_s=takeover_at,
                       pin_sites=pin_sites, force_cap_n=force_cap, task=rules_for(task).name)
    if sites is not None:
        given = [flag for name, flag in _NOT_WITH_SITES.items() if getattr(opts, name)]
        if given:
            raise ConfigError(f"--sites runs what the deployment file says: drop "
                              f"{', '.join(given)} (the file names the WAN paths and who "
                              "runs the bedside console)")
    else:
        opts.check()
        check_link_options(opts.link, opts.cuts)
    # Before anything starts: a folder that cannot be had is one line.
    if opts.record is not None:
        writable_dir(opts.record, "--record")
    workdir = writable_dir(opts.workdir, "--workdir")
    opts = replace(opts, workdir=workdir)
    out = Console(stderr=True)
    if insecure:
        out.print("[bold red]INSECURE: plain TCP, no authentication, untagged commands "
                  "(--insecure)[/]")
    printed: set[str] = set()

    def show_pages(m: Monitor, printer: Console) -> None:
        # Each console prints its page's URL, with this launch's secret, once it serves it.
        for node, url in sorted(m.pages.items()):
            if node not in printed:
                printed.add(node)
                printer.print(f"{_PAGE_NAMES.get(node, node)} page: {url}", soft_wrap=True,
                              highlight=False)
                if open_page and not headless:
                    browser_page(url)

    # One line while the start-up takes its seconds, then the live view (or, headless, how
    # far the run is); on a terminal only, and gone once the run ends.
    starting = Spinner("dots", "starting")

    def phase(text: str) -> None:
        starting.update(text=text)

    def tick(m: Monitor, t: float) -> None:
        live.update(Spinner("dots", f"running: {t:.0f} s of {duration:g} s") if headless
                    else render_status(m, t, duration))
        show_pages(m, live.console)

    with Live(starting, console=out, refresh_per_second=4, transient=True) as live:
        result = (run_demo(opts, stop, on_tick=tick, on_phase=phase) if sites is None else
                  _run_sites(sites, opts, stop, tick, phase))
    out.print(render_summary(result))
    if "record" in result:
        out.print(summary_line(result["record"]))
    if summary == "-":
        typer.echo(json.dumps(result, indent=2))
    else:
        # The table above is what a person reads; the whole JSON goes to a file.
        path = Path(summary) if summary is not None else workdir / "summary.json"
        write_json(path, result)
        out.print(f"summary written to {path}")


_NOT_WITH_SITES = {"link": "--link", "loss": "--loss", "backup": "--backup",
                   "takeover_at_s": "--takeover-at", "record": "--record",
                   "foxglove": "--foxglove"}


def _run_sites(file: Path, opts: DemoOptions, stop: threading.Event,
               tick: Callable[[Monitor, float], None],
               phase: Callable[[str], None]) -> dict[str, Any]:
    """``demo --sites FILE``: the deployment's sites on this machine (demo.fabric)."""
    from telesurgery.demo.fabric import run_sites
    from telesurgery.sites.deployment import load_deployment
    from telesurgery.sites.netns import check_permitted

    dep = load_deployment(file)
    check_permitted()
    assert opts.workdir is not None
    return run_sites(dep, file.resolve(), opts.workdir, stop, duration_s=opts.duration_s,
                     insecure=opts.insecure, log_level=opts.log_level, cuts=opts.cuts,
                     pin_sites=opts.pin_sites,
                     site_args=["--device", opts.device, "--still-bedside"],
                     on_tick=tick, on_phase=phase)


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command()(demo)
