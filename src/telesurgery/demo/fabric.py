"""A deployment's sites on one machine: namespaces, WAN emulators, one ``site up`` each.

``demo --sites FILE`` (as root) puts each site of the file in its own network namespace
(``sites.netns``) and runs ``telesurgery site up FILE --site NAME`` inside it, as a
hospital would on its own machines. The WAN paths are link emulators in the host's
namespace, listening on the dialling site's veth: one per path for its plane, and one
per path for the main plane's link on it (all TCP: ``sites.deployment.Plane``). The demo's monitor
joins the patient site's main plane from the host, as the hospital's own monitoring
station would.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from telesurgery.clock import now_ns
from telesurgery.demo.linkrig import Cut, CutSchedule
from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import PATIENT_SITE, SURGEON_SITE, NodeProcess, site_cpus
from telesurgery.demo.recording import wait_present
from telesurgery.demo.run import STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, connect_monitor
from telesurgery.demo.sites import identity, main_endpoint
from telesurgery.demo.summary import build_summary, security_section
from telesurgery.errors import ConfigError, TelesurgeryError
from telesurgery.link.control import EmulatorProcess
from telesurgery.security.node import DEMO_LICENCES, Site, write_acl
from telesurgery.security.pki import Pki, Role
from telesurgery.sites.deployment import Deployment, WanPath
from telesurgery.sites.netns import Fabric
from telesurgery.video.latency import video_summary

MONITOR = "monitor"
"""The demo monitor's observer certificate name."""


def fabric_pki(dep: Deployment, root: Path, fabric: Fabric) -> Site:
    """A throwaway PKI for ``dep`` in ``root``: each site's router (naming the site's
    address and the host ends the far sites dial), each process, the demo's monitor."""
    pki = Pki.init(root / "pki", dep.session)
    dialled = [n.host_address for n in fabric.nets.values()]
    for site, spec in dep.sites.items():
        pki.issue(Role.ROUTER, site, hosts=[spec.address, *dialled])
        for process in spec.processes:
            role, name = identity(dep, site, process)
            pki.issue(role, name, licence=DEMO_LICENCES.get(f"{role.value}:{name}"))
    pki.issue(Role.OBSERVER, MONITOR)
    return Site(pki, write_acl(root / "acl.json", dep.session, pki))


@dataclass
class WanRig:
    """The emulators of every WAN path: ``cut`` and ``restore`` a path (its plane and the
    main plane's link on it: the main plane dials once per route, ``Plane.routes``)."""

    dep: Deployment
    fabric: Fabric
    workdir: Path
    emulators: dict[str, list[EmulatorProcess]] = field(default_factory=dict)
    """Per WAN path, its emulators (its plane's and the main plane's link on it)."""
    planes: dict[str, EmulatorProcess] = field(default_factory=dict)
    via: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per dialling site: per plane, the emulator endpoint it dials."""

    @property
    def names(self) -> list[str]:
        """The WAN paths."""
        return [w.path for w in self.dep.wan]

    def _start(self, w: WanPath, plane: str, protocol: str, port: int) -> None:
        host = self.fabric.nets[w.dial].host_address
        far = self.dep.sites[w.accept].address
        emu = EmulatorProcess(f"{protocol}/{host}:0", f"{protocol}/{far}:{port}",
                              ["--profile", self.dep.profile, "--path", w.path],
                              log_path=self.workdir / f"wan-{plane}.log")
        self.emulators.setdefault(w.path, []).append(emu)
        self.planes[plane] = emu
        emu.start(timeout_s=STARTUP_TIMEOUT_S)
        self.via.setdefault(w.dial, {})[plane] = str(emu.listen_address)

    def start(self) -> None:
        """Start every path's emulators."""
        try:
            for w in self.dep.wan:
                self._start(w, w.path, "tcp", self.dep.path_port(w.path))
            # The main plane on each of its routes: it fails over when its own path is cut.
            main = next(p for p in self.dep.planes(self.dep.main_wan.dial) if p.name == "main")
            wan = {w.path: w for w in self.dep.wan}
            for route in main.routes:
                self._start(wan[route], main.via_key(route), "tcp", self.dep.ports.main)
        except BaseException:
            self.stop()
            raise

    def cut(self, path: str) -> None:
        """Cut WAN path ``path`` both ways now."""
        for emu in self._of(path):
            emu.cut()

    def restore(self, path: str) -> None:
        """Restore WAN path ``path`` both ways now."""
        for emu in self._of(path):
            emu.restore()

    def _of(self, path: str) -> list[EmulatorProcess]:
        try:
            return self.emulators[path]
        except KeyError:
            raise ConfigError(f"no WAN path {path!r}; choose one of "
                              f"{', '.join(self.names)}") from None

    def stop(self) -> dict[str, dict[str, Any]]:
        """Stop the emulators; each one's final statistics, by plane."""
        out = {plane: emu.stop() for plane, emu in self.planes.items()}
        self.emulators.clear()
        self.planes.clear()
        return out


class SitesRun:
    """Everything of a deployment run on one machine, started on ``__enter__``.

    ``site_args`` per process are added to each ``site up`` (the console's device, the
    bedside's still hand). ``sites`` are the ``site up`` children by site name.
    """

    def __init__(self, dep: Deployment, file: Path, workdir: Path, *, insecure: bool,
                 log_level: str, site_args: list[str] | None = None,
                 pin_sites: bool = False) -> None:
        self.dep, self.file, self.workdir = dep, file, workdir
        self.fabric = Fabric([(n, s.address) for n, s in dep.sites.items()],
                             str(os.getpid() % 100000))
        self.rig = WanRig(dep, self.fabric, workdir)
        self.insecure = insecure
        self.log_level = log_level
        self.site_args = site_args or []
        self.pin_sites = pin_sites
        self.security: Site | None = None
        self.sites: dict[str, NodeProcess] = {}
        self.monitor: Monitor | None = None

    def __enter__(self) -> Self:
        self.fabric.__enter__()
        try:
            if not self.insecure:
                self.security = fabric_pki(self.dep, self.workdir / "security", self.fabric)
            self.rig.start()
            # The operating room is up before the surgeon dials in, as in a hospital. Started
            # all at once on two cores, the bedside console's start-up stalled the patient
            # for 240 ms in the surgeon's first seconds: its commands went stale and, over a
            # second of them, control passed to the bedside before the operation began.
            first = self.dep.patient_site
            self.start_site(first)
            self.monitor = self._monitor()
            wait_present(self.monitor, [self.sites[first]],
                         set(self.dep.sites[first].processes))
            # Then the accepting sites before the dialling ones: the dialling routers retry
            # until they answer.
            for site in sorted(self.dep.sites, key=lambda s: s in self.rig.via):
                if site != first:
                    self.start_site(site)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def site_command(self, site: str) -> list[str]:
        """``site up``'s arguments for ``site``."""
        sec = (["--insecure"] if self.security is None else
               ["--pki", str(self.security.pki.root), "--acl", str(self.security.acl)])
        via = [f"--via={plane}={ep}" for plane, ep in self.rig.via.get(site, {}).items()]
        return ["site", "up", str(self.file), "--site", site, "--workdir",
                str(self.workdir / site), "--log-level", self.log_level, *via, *sec,
                *self.site_args]

    def start_site(self, site: str) -> None:
        """Start (or start again) ``site up`` for ``site`` in its namespace."""
        # Pinned, the patient's site gets the lower half of the CPUs and the others the
        # upper, as two machines would (the emulated WAN floats): demo.processes.
        cpus = (site_cpus(PATIENT_SITE if site == self.dep.patient_site else SURGEON_SITE)
                if self.pin_sites else None)
        proc = NodeProcess(f"site-{site}", self.site_command(site), self.workdir, cpus,
                           prefix=self.fabric.nets[site].exec_prefix, group=True)
        proc.start(with_report=False)
        self.sites[site] = proc

    def _monitor(self) -> Monitor:
        site = self.dep.patient_site
        settings = (None if self.security is None else
                    self.security.security(Role.OBSERVER, MONITOR).zenoh_settings())
        return connect_monitor(self.dep.session, main_endpoint(self.dep, site),
                               self.sites[site], settings)

    def stop_sites(self, timeout_s: float, first: str | None = None) -> None:
        """Stop every site (each stops its processes and writes its ``site.json``),
        ``first`` (a site) before the others."""
        order = sorted(self.sites, key=lambda s: s != first)
        for site in order:
            self.sites[site].interrupt()
            if site == first:
                self.sites[site].wait(timeout_s)
        for site in order:
            self.sites[site].wait(timeout_s)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop_sites(30.0)
            if self.monitor is not None:
                self.monitor.close()
            self.rig.stop()
        finally:
            self.fabric.remove()


def sites_section(dep: Deployment, run: SitesRun) -> dict[str, Any]:
    """The summary's ``sites``: per site, its namespace and address, its processes (exit
    code, or what went wrong) and its router's planes (WAN link up, and its changes)."""
    out: dict[str, Any] = {}
    for site, spec in dep.sites.items():
        entry: dict[str, Any] = {"address": spec.address,
                                 "namespace": run.fabric.nets[site].namespace}
        try:
            data = json.loads((run.workdir / site / "site.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entry["error"] = f"site up wrote no site.json; see {run.sites[site].log_path}"
            out[site] = entry
            continue
        procs = data.get("processes", {})
        entry["processes"] = {n: {"exit": e.get("exit"), **({"error": e["error"]}
                                                            if "error" in e else {})}
                              for n, e in procs.items()}
        entry["router_links"] = procs.get("router", {}).get("report", {}).get("planes", {})
        entry["ended_by"] = data.get("ended_by")
        out[site] = entry
    return out


def site_report(run: SitesRun, process: str) -> dict[str, Any]:
    """``process``'s final report, from the site that ran it ({} if none)."""
    site = run.dep.site_of(process)  # type: ignore[arg-type]
    if site is None:
        return {}
    try:
        data = json.loads((run.workdir / site / f"{process}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_sites(dep: Deployment, file: Path, workdir: Path, stop: threading.Event, *,
              duration_s: float | None, insecure: bool, log_level: str,
              cuts: tuple[Cut, ...] = (), site_args: list[str] | None = None,
              pin_sites: bool = False,
              on_tick: Callable[[Monitor, float], None] | None = None,
              on_phase: Callable[[str], None] = lambda _phase: None) -> dict[str, Any]:
    """Run the deployment until ``stop`` or ``duration_s`` [s]; the summary JSON, with
    ``sites``."""
    on_phase("making each site's network namespace and the WAN emulators")
    run = SitesRun(dep, file, workdir, insecure=insecure, log_level=log_level,
                   site_args=site_args, pin_sites=pin_sites)
    schedule = CutSchedule(run.rig, cuts)
    with run:
        assert run.monitor is not None
        on_phase("waiting for the sites' nodes to come up")
        want = {"patient", "console"} | ({"backup"} if dep.site_of("backup") else set())
        if not run.monitor.wait_present(want, STARTUP_TIMEOUT_S):
            dead = [p for p in run.sites.values() if not p.alive()]
            why = "; ".join(f"{p.name}: {p.last_log_line()}" for p in dead) or "timed out"
            raise TelesurgeryError(f"the sites did not come up ({why}); logs in {workdir}")
        started = now_ns()
        while not stop.is_set():
            t = (now_ns() - started) * 1e-9
            if duration_s is not None and t >= duration_s:
                break
            gone = next((p for p in run.sites.values() if not p.alive()), None)
            if gone is not None:
                raise TelesurgeryError(f"{gone.name} stopped unexpectedly: "
                                       f"{gone.last_log_line()}; log in {gone.log_path}")
            schedule.due(t)
            if on_tick is not None:
                on_tick(run.monitor, t)
            stop.wait(0.25)
        elapsed = (now_ns() - started) * 1e-9
        # The surgeon's site first: the patient then sees its console go, as at the end of
        # an operation, instead of its own routers.
        run.stop_sites(STOP_TIMEOUT_S * 2, first=dep.site_of("console"))
        emulators = run.rig.stop()
    patient, console = site_report(run, "patient"), site_report(run, "console")
    summary = build_summary(elapsed, patient, console,
                            {"workdir": str(workdir), "nodes": sorted(run.sites)},
                            link_profile=dep.profile, emulators=emulators,
                            cuts=schedule.done)
    summary["sites"] = sites_section(dep, run)
    summary["security"] = security_section(insecure, patient)
    video = video_summary(patient.get("video"), console.get("video"))
    if video is not None:
        summary["video"] = video
    return summary
