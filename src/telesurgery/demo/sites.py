"""One site of a deployment: its router process and the session's processes it runs.

``telesurgery site up FILE --site NAME`` runs this on a hospital's machine, and ``demo
--sites`` runs it once per site, each in its own network namespace. The router starts
first (its ports must accept before a client can join); then the patient node, the
recorder, the bedside console and the surgeon console, each a client of the site's
routers: its main session on the main plane, one control path per WAN path on that
path's plane, so that its commands and state reach the far site only through the site
routers and the WAN.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurgery.config import PathConfig, ZenohConfig
from telesurgery.demo.linkrig import paths_toml
from telesurgery.demo.processes import NodeProcess
from telesurgery.errors import TelesurgeryError
from telesurgery.security.node import Site
from telesurgery.security.pki import Pki, Role
from telesurgery.sites.deployment import Deployment, url_host

log = logging.getLogger(__name__)

ROUTER_START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
ROUTER_PID = "router.pid"
"""The file in a site's folder holding its router's process id (the fault bench kills it)."""
_ROLE = {"patient": (Role.ROBOT, "patient"), "recorder": (Role.RECORDER, "recorder")}


def security_of(dep: Deployment) -> Site | None:
    """The deployment's PKI and access control (None: an insecure deployment)."""
    if dep.security is None:
        return None
    assert dep.security.acl is not None  # set on load
    return Site(Pki(dep.security.pki), dep.security.acl)


def identity(dep: Deployment, site: str, process: str) -> tuple[Role, str]:
    """The certificate ``process`` runs as at ``site`` (role and name)."""
    spec = dep.sites[site]
    if process == "router":
        return Role.ROUTER, site
    if process == "console":
        return Role.SURGEON, spec.surgeon
    if process == "backup":
        return Role.BACKUP, spec.bedside
    return _ROLE[process]


def main_endpoint(dep: Deployment, site: str) -> str:
    """The site router's main-plane endpoint, as the site's own processes reach it."""
    return f"tcp/{url_host(dep.sites[site].address)}:{dep.ports.main}"


def path_configs(dep: Deployment, site: str) -> list[PathConfig]:
    """The control paths of a process at ``site``: one per WAN path, a client of that
    path's plane on the site router (plain: the commands on it are tagged end to end)."""
    host = url_host(dep.sites[site].address)
    return [PathConfig(name=p, tls=False,
                       zenoh=ZenohConfig(mode="client",
                                         connect=[f"tcp/{host}:{dep.path_port(p)}"]))
            for p in dep.control_paths(site)]


@dataclass(frozen=True, slots=True)
class SiteOptions:
    """How ``site up`` runs: ``via`` replaces the far site's address per plane;
    ``extra``: flags added per process (the demo's devices and hooks)."""

    log_level: str = "warning"
    via: Mapping[str, str] | None = None
    extra: Mapping[str, Sequence[str]] | None = None


def site_processes(dep: Deployment, file: Path, site: str, workdir: Path,
                   opts: SiteOptions) -> list[NodeProcess]:
    """The processes of ``site`` in start order, the router first."""
    sec = security_of(dep)
    extra = opts.extra or {}

    def security(process: str) -> list[str]:
        return ["--insecure"] if sec is None else sec.args(*identity(dep, site, process))

    common = ["--session", dep.session, "--log-level", opts.log_level]
    via = [f"--via={plane}={ep}" for plane, ep in (opts.via or {}).items()]
    out = [NodeProcess("router", ["site", "router", str(file), "--site", site, *via,
                                  "--log-level", opts.log_level, *security("router")],
                       workdir)]
    main = ["--mode", "client", "--connect", main_endpoint(dep, site)]
    paths = workdir / "paths.toml"
    paths.write_text(paths_toml(path_configs(dep, site)), encoding="utf-8")
    # The patient allows commands the age of the slowest path's one-way delay.
    slowest = dep.slowest_delay_ms()
    patient_paths = workdir / "patient-paths.toml"
    patient_paths.write_text(paths.read_text(encoding="utf-8")
                             + f"[safety]\npath_delay_ms = {slowest!r}\n", encoding="utf-8")
    order = ("patient", "recorder", "backup", "console")
    for process in sorted(dep.sites[site].processes, key=order.index):
        args: list[str]
        if process == "recorder":
            args = ["record", "--session", dep.session, "--connect", main_endpoint(dep, site),
                    "--log-level", opts.log_level, "--out", str(workdir / "recording")]
        else:
            args = [process, *common, *main, "--config",
                    str(patient_paths if process == "patient" else paths)]
        out.append(NodeProcess(process, [*args, *security(process),
                                         *extra.get(process, ())], workdir))
    return out


def wait_listening(host: str, port: int, router: NodeProcess, timeout_s: float) -> None:
    """Wait until something accepts TCP on ``host:port`` (the router's main plane);
    ``TelesurgeryError`` when the router died or the time ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if not router.alive() or time.monotonic() > deadline:
                raise TelesurgeryError(f"the site router did not listen on {host}:{port}: "
                                       f"{router.last_log_line() or 'no output'}; log in "
                                       f"{router.log_path}") from None
            time.sleep(0.05)


def _start_router(dep: Deployment, site: str, router: NodeProcess, workdir: Path) -> None:
    router.start()
    assert router.proc is not None
    (workdir / ROUTER_PID).write_text(f"{router.proc.pid}\n", encoding="utf-8")
    for plane in dep.planes(site):
        wait_listening(dep.sites[site].address, plane.port, router, ROUTER_START_TIMEOUT_S)


def run_site(dep: Deployment, file: Path, site: str, workdir: Path, stop: threading.Event,
             opts: SiteOptions) -> dict[str, Any]:
    """Run ``site``'s processes until ``stop`` is set or one of them ends; stop them all;
    return the site's section of the summary (each process: its exit code and report)."""
    workdir.mkdir(parents=True, exist_ok=True)
    procs = site_processes(dep, file, site, workdir, opts)
    router, nodes = procs[0], procs[1:]
    started: list[NodeProcess] = []
    gone: NodeProcess | None = None
    restarts = 0
    try:
        _start_router(dep, site, router, workdir)
        started.append(router)
        for n in nodes:
            n.start()
            started.append(n)
        while not stop.wait(0.2):
            if not router.alive():
                # A site's router is its network: started again at once, as a process
                # manager would, while the nodes hold and reconnect by themselves.
                log.error("site %s: its router stopped (%s); starting it again", site,
                          router.last_log_line())
                restarts += 1
                try:
                    _start_router(dep, site, router, workdir)
                except TelesurgeryError as exc:
                    # Slow to listen (a loaded machine) or dead at once: the nodes hold
                    # and keep dialling meanwhile, so keep trying rather than end the site.
                    log.error("site %s: %s; trying again", site, exc)
            gone = next((n for n in nodes if not n.alive()), None)
            if gone is not None:
                log.error("site %s: %s stopped: %s", site, gone.name, gone.last_log_line())
                break
    finally:
        for n in reversed(started):
            n.interrupt()
            n.wait(STOP_TIMEOUT_S)
    out: dict[str, Any] = {"processes": {}, "ended_by": None if gone is None else gone.name,
                           "router_restarts": restarts}
    for n in started:
        entry: dict[str, Any] = {"exit": None if n.proc is None else n.proc.returncode}
        try:
            entry["report"] = n.report()
        except TelesurgeryError as exc:
            entry["error"] = str(exc)
        out["processes"][n.name] = entry
    (workdir / "site.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out
