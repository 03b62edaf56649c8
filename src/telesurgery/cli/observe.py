"""``telesurgery observe``: the observer gateway that streams the operation to an audience."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from telesurgery.cli.common import (
    AclOpt,
    CrlOpt,
    IdentityOpt,
    InsecureOpt,
    check_duration,
    security_section,
    setup_logging,
    stop_on_signals,
    write_json,
)
from telesurgery.cli.nodes import ConnectOpt, DurationOpt, LogOpt, ReportOpt, SessionOpt
from telesurgery.config import SecurityConfig, WebConfig, load

VIEWER_LINE = "viewer page: "
"""How each URL line the gateway prints starts (``viewer page: URL``, ``mentor page NAME:
URL``, ``operator: URL``, ``hls: URL``): tools and tests read them."""


GATEWAY_NICE = 10
"""The gateway's default nice: the surgeon's processes first. On two cores the flagship
alone took 1.93 of them, and at nice 0 the gateway's 0.1-0.2 cores came out of the
surgeon's browser (bench audience, BENCHMARKS.md); on a machine of its own it changes
nothing."""


def observe(session: SessionOpt = None, connect: ConnectOpt = None,
            web_port: Annotated[int, typer.Option(
                "--web-port", help="Port of the viewer page and the HLS tier on 127.0.0.1 "
                "(0: any free one).")] = 0,
            broadcast: Annotated[bool, typer.Option(
                "--broadcast", help="Start broadcasting at once (else on the operator's "
                "POST /api/broadcast); needs --allowed-by.")] = False,
            allowed_by: Annotated[str | None, typer.Option(
                "--allowed-by", help="Who on the operating team allowed the broadcast "
                "(logged and announced).")] = None,
            hls: Annotated[bool, typer.Option(
                "--hls/--no-hls", help="The public HLS tier at /hls/live.m3u8.")] = True,
            mentor: Annotated[list[str] | None, typer.Option(
                "--mentor", help="Issue a mentor's token to NAME, who may point on the "
                "surgeon's picture (repeat).")] = None,
            name: Annotated[str, typer.Option(
                help="This gateway's name in the key space and the log.")] = "gateway",
            log: Annotated[Path | None, typer.Option(
                "--log", help="Append the viewer sessions and broadcast changes here "
                "(JSON lines).")] = None,
            nice: Annotated[int, typer.Option(
                "--nice", min=0, max=19, help="Lower this gateway's CPU priority by this "
                "much (Unix nice), so that on a machine shared with the surgical nodes the "
                "audience yields first; 0 leaves it as started.")] = GATEWAY_NICE,
            duration: DurationOpt = None, report: ReportOpt = None,
            log_level: LogOpt = "info", identity: IdentityOpt = None, acl: AclOpt = None,
            crl: CrlOpt = None, insecure: InsecureOpt = False) -> None:
    """Stream the operation to an audience: a viewer page (token) and an HLS tier (public),
    through a site router, with an observer certificate (read-only)."""
    setup_logging(log_level)
    check_duration(duration)
    if nice:
        os.nice(nice)
    from telesurgery.audience.gateway import OPERATOR, Gateway, GatewayOptions
    from telesurgery.security.node import node_security

    sec = node_security(load(SecurityConfig, None, **security_section(
        SecurityConfig(), identity, acl, crl, insecure)), "observer gateway")
    options = GatewayOptions(
        session=session or "or1", connect=tuple(connect or ["tcp/127.0.0.1:7447"]),
        web=load(WebConfig, None, port=web_port), broadcast=broadcast,
        allowed_by=allowed_by, hls=hls, mentors=tuple(mentor or ()), name=name, log_path=log)
    stop = stop_on_signals()
    gateway = Gateway(options, None if sec is None else sec.zenoh_settings())
    try:
        typer.echo(f"{VIEWER_LINE}{gateway.start()}", err=True)
        for m in options.mentors:
            typer.echo(f"mentor page {m}: {gateway.url_of(m)}", err=True)
        typer.echo(f"operator: {gateway.url_of(OPERATOR)}", err=True)
        if hls:
            typer.echo(f"hls: {gateway.hls_url}", err=True)
        stop.wait(duration)
    finally:
        status = gateway.status()
        gateway.close()
    if report is not None:
        write_json(report, {**status, "events": gateway.events})


def register(app: typer.Typer) -> None:
    """Add ``observe``."""
    app.command()(observe)
