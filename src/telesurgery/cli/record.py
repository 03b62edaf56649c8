"""The ``record`` verb: record a running session's key space to MCAP until stopped, and/or
serve it live to Foxglove."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from telesurgery.cli.common import (
    AclOpt,
    CrlOpt,
    FoxgloveOpt,
    IdentityOpt,
    InsecureOpt,
    check_duration,
    security_section,
    setup_logging,
    stop_on_signals,
    write_json,
)
from telesurgery.clock import SWITCH_INTERVAL_S
from telesurgery.config import SecurityConfig, ZenohConfig, _key_chunk, load
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.errors import ConfigError
from telesurgery.record.foxglove import layout_for
from telesurgery.record.live import DEFAULT_HOST, LiveServer
from telesurgery.record.recorder import Recorder
from telesurgery.security.node import node_security
from telesurgery.transport.session import open_session


def record(
    *,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Session directory to record into (created; a new recording*.mcap "
        "each run).")] = None,
    foxglove: FoxgloveOpt = None,
    write_layout: Annotated[Path | None, typer.Option(
        "--write-layout", help="Write a Foxglove layout for --session (3D scene, endoscope, "
        "tip forces, safety events) to this file and exit.")] = None,
    session: Annotated[str, typer.Option(help="Session name in the key space.")] = "or1",
    connect: Annotated[list[str] | None, typer.Option(
        "--connect", help="Zenoh locator to connect to, e.g. the site router "
        "tcp/127.0.0.1:7447 (repeat).")] = None,
    listen: Annotated[list[str] | None, typer.Option(
        "--listen", help="Zenoh locator to listen on (makes the recorder a peer).")] = None,
    mode: Annotated[str | None, typer.Option(
        help="Zenoh mode: client (default) or peer (default with --listen).")] = None,
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: until Ctrl-C or SIGTERM).")] = None,
    flush_interval: Annotated[float, typer.Option(
        help="Hand data to the OS at least every this many seconds: the most a "
        "crash loses.")] = 0.5,
    log_level: Annotated[str, typer.Option("--log-level",
                                           help="debug, info, warning or error.")] = "info",
    report: Annotated[Path | None, typer.Option(
        help="Write the final counters (JSON) here.")] = None,
    identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Record telesurgery/<session>/** (commands, state, safety, status, video) to MCAP,
    with Foxglove's frames, scene and camera calibration; --foxglove serves it all live."""
    setup_logging(log_level)
    check_duration(duration)
    if write_layout is not None:
        try:
            write_layout.write_text(layout_for(_key_chunk(session, "session")),
                                    encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {write_layout}: {exc.strerror}; choose a "
                              "writable path") from exc
        except ValueError as exc:
            raise ConfigError(f"{exc}, e.g. 'or1'") from exc
        typer.echo(f"Foxglove layout for session {session} written to {write_layout}",
                   err=True)
        return
    if out is None and foxglove is None:
        raise ConfigError("record needs --out DIR, --foxglove [PORT], or both")
    sec = node_security(load(SecurityConfig, None, **security_section(
        SecurityConfig(), identity, acl, crl, insecure)), "recorder")
    # Zenoh's receive thread needs the GIL for every sample: while the writer thread holds
    # it for the default 5 ms, samples back up into the router, which drops them.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    stop = stop_on_signals()
    cfg = load(ZenohConfig, None, mode=mode or ("peer" if listen else "client"), listen=listen,
               connect=connect)
    live = None if foxglove is None else LiveServer(foxglove)
    try:
        z = open_session(cfg, None if sec is None else sec.zenoh_settings())
        try:
            recorder = Recorder(z, session, out, live=live, flush_interval_s=flush_interval)
            recorder.start()
            try:
                to = [] if out is None else [str(recorder.path)]
                to += [] if live is None else [f"Foxglove at {live.url}"]
                typer.echo(f"recording telesurgery/{session}/** to {' and '.join(to)}",
                           err=True)
                stop.wait(duration)
            finally:
                stats = recorder.stop()
        finally:
            z.close()
    finally:
        if live is not None:
            live.stop()
    where = {} if out is None else {"path": str(recorder.path)}
    where |= {} if live is None else {"foxglove": live.url}
    if report is not None:
        write_json(report, {**where, **stats.as_dict()})
    typer.echo(f"recorded {stats.written} messages to {' and '.join(where.values())} (dropped "
               f"{stats.dropped}, undecodable {stats.undecodable})", err=True)


FOXGLOVE_STOP_TIMEOUT_S = 15.0
"""The live server's process stops at once; a loaded machine may take seconds to reap it."""


def foxglove_beside(port: int, session: str, endpoints: list[str], security: SecurityConfig,
                    identity: Path | None, log_level: str) -> NodeProcess:
    """Start ``telesurgery record --foxglove PORT`` as a process of its own, a Zenoh peer of
    ``endpoints`` (a node's), so a node serves Foxglove without its loops paying for it;
    ``identity``: the recorder identity it joins a secure session with (the node's own role
    may not subscribe to the whole session). Its log goes to a new temporary folder."""
    if not endpoints:
        raise ConfigError("--foxglove needs the node to listen or connect somewhere: give "
                          "--listen or --connect")
    if security.insecure:
        sec = ["--insecure"]
    elif identity is None or security.acl is None:
        raise ConfigError("--foxglove on a secure node needs --foxglove-identity DIR: a "
                          "recorder's identity ('telesurgery pki issue PKI recorder NAME'), "
                          "with the node's --acl")
    else:
        sec = ["--identity", str(identity), "--acl", str(security.acl),
               *([] if security.crl is None else ["--crl", str(security.crl)])]
    # The port is chosen here, so the address can be printed.
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="telesurgery-foxglove-"))
    # A peer, not a client: it keeps trying until the node listens, and it starts first.
    process = NodeProcess("foxglove", [
        "record", "--foxglove", str(port), "--session", session, "--mode", "peer",
        *(a for ep in endpoints for a in ("--connect", ep)), "--log-level", log_level, *sec],
        workdir)
    process.start(with_report=False)
    typer.echo(f"live in Foxglove: open a connection to ws://{DEFAULT_HOST}:{port} (log: "
               f"{process.log_path})", err=True)
    return process


def register(app: typer.Typer) -> None:
    """Add ``record``."""
    app.command()(record)
