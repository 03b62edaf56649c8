"""``telesurgery site up`` and ``site router``: a deployment's site on its own machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telesurgery.cli.common import (
    AclOpt,
    CrlOpt,
    IdentityOpt,
    InsecureOpt,
    security_section,
    setup_logging,
    stop_on_signals,
    write_json,
)
from telesurgery.config import SecurityConfig, load
from telesurgery.errors import ConfigError
from telesurgery.sites.deployment import Deployment, SecuritySpec, load_deployment, site_or_error

app = typer.Typer(help="Run one site of a deployment file (docs/deploy.md).",
                  no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="The deployment file (TOML).")]
SiteOpt = Annotated[str, typer.Option("--site", help="Which site of the file this machine "
                                      "runs.")]
ViaOpt = Annotated[list[str] | None, typer.Option(
    "--via", help="PLANE=ENDPOINT: dial this endpoint for a plane (main, or a WAN path) in "
    "place of the far site's address, e.g. a NAT's or a link emulator's (repeat).")]
LogOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]


def _via(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        plane, sep, endpoint = item.partition("=")
        if not sep or not plane or "/" not in endpoint:
            raise ConfigError(f"--via {item!r}: write PLANE=ENDPOINT, e.g. "
                              "fibre=udp/203.0.113.7:7450")
        out[plane] = endpoint
    return out


def _load(file: Path, site: str) -> Deployment:
    dep = load_deployment(file)
    site_or_error(dep, site, file)
    return dep


def router(file: FileArg, site: SiteOpt, via: ViaOpt = None, log_level: LogOpt = "info",
           identity: IdentityOpt = None, acl: AclOpt = None, crl: CrlOpt = None,
           insecure: InsecureOpt = False,
           report: Annotated[Path | None, typer.Option(
               help="Write the WAN links' states and changes here (JSON) when stopped.")]
           = None) -> None:
    """Run a site's routers: the main plane (mutual TLS and the access control, given a
    router identity) and one plane per WAN path of the site."""
    setup_logging(log_level)
    from telesurgery.clock import set_realtime
    from telesurgery.security.node import node_security
    from telesurgery.sites.router import ROUTER_PRIORITY, SiteRouter

    dep = _load(file, site)
    sec = node_security(load(SecurityConfig, None, **security_section(
        SecurityConfig(), identity, acl, crl, insecure)), "site router")
    stop = stop_on_signals()
    # Every command crosses this process twice: at normal priority it waited behind the
    # nodes' real-time loops on a shared machine (loopback, two cores: 7 ms p50 and 12 %
    # of each path's copies lost). Zenoh's threads, started below, inherit the policy.
    set_realtime(ROUTER_PRIORITY)
    routers = SiteRouter(dep, site, _via(via),
                         None if sec is None else sec.zenoh_settings())
    try:
        stop.wait()
    finally:
        status = {"site": site, "planes": routers.status()}
        routers.close()
        if report is not None:
            write_json(report, status)


def up(file: FileArg, site: SiteOpt, via: ViaOpt = None, log_level: LogOpt = "warning",
       workdir: Annotated[Path, typer.Option(help="Where the site's logs, reports and "
                                             "recording go.")] = Path("site"),
       pki: Annotated[Path | None, typer.Option(
           help="The session's PKI folder, in place of the file's [security].")] = None,
       acl: AclOpt = None, insecure: InsecureOpt = False,
       device: Annotated[str, typer.Option(
           help="The surgeon console's input device, where this site runs it.")] = "web",
       still_bedside: Annotated[bool, typer.Option(
           help="The bedside console, where this site runs it, holds still without a "
                "page (an unattended run).")] = False) -> None:
    """Start this machine's site of a deployment (its router, then its processes), run
    until Ctrl-C, then stop them all; each process's report is written to --workdir."""
    setup_logging(log_level)
    from telesurgery.demo.run import still_trajectory
    from telesurgery.demo.sites import SiteOptions, run_site

    dep = _load(file, site)
    if insecure:
        dep = dep.model_copy(update={"security": None})
    elif pki is not None:
        dep = dep.model_copy(update={"security": SecuritySpec(
            pki=pki.resolve(), acl=(acl or pki / "acl.json").resolve())})
    elif dep.security is None:
        raise ConfigError(f"{file} has no [security]: give --pki DIR, or --insecure to run "
                          "without certificates")
    workdir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, list[str]] = {"console": ["--device", device]}
    if still_bedside:
        extra["backup"] = ["--device", "scripted", "--trajectory",
                           str(still_trajectory(workdir / "backup-still.csv")), "--no-web"]
    run_site(dep, file, site, workdir, stop_on_signals(),
             SiteOptions(log_level=log_level, via=_via(via), extra=extra))


def register(main: typer.Typer) -> None:
    """Add ``site up`` and ``site router``."""
    app.command()(up)
    app.command()(router)
    main.add_typer(app, name="site")
