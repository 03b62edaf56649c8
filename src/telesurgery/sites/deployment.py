"""The deployment file: which hospital runs what, where its router listens, and the WAN paths.

One TOML file describes a session across sites (``configs/sites/rome-beijing.toml``)::

    session = "or1"
    profile = "rome-beijing"        # the link profile whose paths are the WAN paths

    [sites.beijing-or]
    address = "10.77.1.2"           # where the site's router listens
    processes = ["patient", "backup", "recorder"]

    [sites.rome-console]
    address = "10.77.2.2"
    processes = ["console"]

    [[wan]]
    path = "fibre"                  # a path of the profile
    dial = "rome-console"           # the site whose router opens the link
    accept = "beijing-or"           # the site whose router accepts it

Each site runs one router process that carries one Zenoh router per *plane*: the main
plane (presence, status, video, control ownership, the recorder's and observers' data:
TLS and the role access control) and one plane per WAN path (commands, measured state and
clock sync: each plane's routers link only over their own path, so a command published on
both planes crosses the WAN twice, once per path, and first arrival stays the patient's
work: Zenoh never duplicates a message across links). The main plane crosses the WAN over
``main_path`` (the first WAN path unless named). The same file deploys on real machines
(``telesurgery site up FILE --site NAME`` on each) and on one machine (``telesurgery demo
--sites FILE``, each site in its own network namespace).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from telesurgery.config import load
from telesurgery.errors import ConfigError
from telesurgery.link.profiles import Profile, load_profile

SiteName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")]
"""A site's name: lower-case letters, digits and dashes (it names certificates and
network namespaces)."""
Process = Literal["patient", "console", "backup", "recorder"]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Strict):
    """One hospital: where its router listens and which of the session's processes it runs."""

    address: str
    """The address the site's router listens on (IPv4 or IPv6)."""
    processes: list[Process] = []
    surgeon: str = "dr-rossi"
    """The surgeon console's certificate name (``surgeon:<name>``), where it runs."""
    bedside: str = "bedside-team"
    """The bedside console's certificate name (``backup:<name>``), where it runs."""

    @model_validator(mode="after")
    def _checks(self) -> SiteSpec:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(f"address {self.address!r} is not an IP address, e.g. "
                             "10.77.1.2") from None
        if len(set(self.processes)) != len(self.processes):
            raise ValueError("a process is listed twice")
        return self


class WanPath(_Strict):
    """One WAN path between two site routers: which side dials, which accepts."""

    path: str
    """A path of the deployment's link profile (its impairments, for emulation and for
    qualifying the real path with ``telesurgery probe``)."""
    dial: SiteName
    accept: SiteName


class Ports(_Strict):
    """The ports every site router listens on."""

    main: Port = 7447
    """The main plane (TLS over TCP in a secure deployment)."""
    paths: Port = 7450
    """The first WAN path's plane; the next path uses the next port, and so on."""


class SecuritySpec(_Strict):
    """Where the session's PKI is (relative paths: from the deployment file's folder)."""

    pki: Path
    acl: Path | None = None
    """The access-control file (default: ``acl.json`` in the PKI's folder)."""


class Deployment(_Strict):
    """A session across sites (see the module's docstring for the file)."""

    session: str = "or1"
    profile: str = "rome-beijing"
    sites: dict[SiteName, SiteSpec]
    wan: list[WanPath]
    main_path: str | None = None
    """The WAN path the main plane crosses on (default: the first)."""
    ports: Ports = Ports()
    security: SecuritySpec | None = None
    """None: every node runs insecure (plain TCP, no access control, untagged commands)."""

    @model_validator(mode="after")
    def _checks(self) -> Deployment:
        names = set(self.sites)
        runs = [p for s in self.sites.values() for p in s.processes]
        for needed in ("patient", "console"):
            if runs.count(needed) != 1:
                raise ValueError(f"exactly one site must run the {needed} "
                                 f"(found {runs.count(needed)})")
        for extra in ("backup", "recorder"):
            if runs.count(extra) > 1:
                raise ValueError(f"at most one site runs the {extra}")
        if not self.wan:
            raise ValueError("name at least one [[wan]] path between the sites")
        seen: set[str] = set()
        for w in self.wan:
            for end in (w.dial, w.accept):
                if end not in names:
                    raise ValueError(f"wan path {w.path!r}: no site {end!r}; the sites are "
                                     f"{', '.join(sorted(names))}")
            if w.dial == w.accept:
                raise ValueError(f"wan path {w.path!r} joins {w.dial!r} to itself")
            if w.path in seen:
                raise ValueError(f"wan path {w.path!r} is named twice")
            seen.add(w.path)
        if self.main_path is not None and self.main_path not in seen:
            raise ValueError(f"main_path {self.main_path!r} is not one of the wan paths")
        top = self.ports.paths + len(self.wan) - 1
        if top > 65535 or self.ports.paths <= self.ports.main <= top:
            raise ValueError(f"ports: the path planes take {self.ports.paths}..{top}; keep "
                             "them within 65535 and clear of the main port")
        return self

    # -- what each site does -------------------------------------------------------------

    def site_of(self, process: Process) -> str | None:
        """The site that runs ``process`` (None: no site does)."""
        return next((n for n, s in self.sites.items() if process in s.processes), None)

    @property
    def patient_site(self) -> str:
        """The site of the patient node (the robot's hospital)."""
        site = self.site_of("patient")
        assert site is not None  # checked on load
        return site

    @property
    def main_wan(self) -> WanPath:
        """The WAN path the main plane crosses on."""
        return next(w for w in self.wan if w.path == (self.main_path or self.wan[0].path))

    def path_port(self, path: str) -> int:
        """The port of ``path``'s plane on every site router."""
        return self.ports.paths + [w.path for w in self.wan].index(path)

    @property
    def main_routes(self) -> list[str]:
        """The WAN paths the main plane may cross on: its own first, then every other path
        between the same two sites, to fail over to when its own is cut."""
        main = self.main_wan
        return [main.path] + [w.path for w in self.wan if w is not main
                              and {w.dial, w.accept} == {main.dial, main.accept}]

    def planes(self, site: str) -> list[Plane]:
        """The planes ``site``'s router carries: main, then each WAN path touching it."""
        out = [Plane("main", self.ports.main, "tcp", self._dials(site, self.main_wan),
                     tuple(self.main_routes))]
        for w in self.wan:
            if site in (w.dial, w.accept):
                out.append(Plane(w.path, self.path_port(w.path), "tcp", self._dials(site, w),
                                 (w.path,)))
        return out

    def _dials(self, site: str, wan: WanPath) -> str | None:
        """The site ``site``'s plane dials over ``wan`` (None: it accepts, or not on it)."""
        return wan.accept if wan.dial == site else None

    def slowest_delay_ms(self) -> float:
        """The largest one-way delay [ms] of the WAN paths, console to patient, as the
        profile gives it: the patient's allowance for a command's age."""
        profile = load_profile(self.profile)
        return max(profile.paths[w.path].forward.delay_ms for w in self.wan)

    def control_paths(self, site: str) -> list[str]:
        """The WAN paths the processes of ``site`` send commands or state on: all of them
        (a site on none of them keeps to the main plane)."""
        return [w.path for w in self.wan if site in (w.dial, w.accept)]


@dataclass(frozen=True, slots=True)
class Plane:
    """One Zenoh router of a site's router process.

    ``wan_protocol``: how it crosses the WAN. TCP for every plane: between two Zenoh 1.10
    routers a UDP link blocked the publisher and delivered a 1 kHz stream at 10 ms p50
    with a third lost, on loopback, where TCP took 0.8 ms and lost nothing it was given
    (docs/deploy.md). A cut longer than the lease (``sites.router.LEASE_MS``) closes the
    link, and what TCP held for it is dropped with it; a shorter one delivers it late, and
    the patient's supervisor rejects it as stale. ``dials``: the site it opens its WAN
    link to (None: it accepts). ``routes``: the WAN paths it crosses on, the first while it
    is up (a path plane: its own; the main plane: ``Deployment.main_routes``).
    """

    name: str
    port: int
    wan_protocol: Literal["tcp"]
    dials: str | None
    routes: tuple[str, ...]

    def via_key(self, route: str) -> str:
        """The ``--via`` name of this plane's link over ``route``: the plane's name on its
        first route, ``PLANE@PATH`` on the others (``main@5g``)."""
        return self.name if route == self.routes[0] else f"{self.name}@{route}"


def url_host(address: str) -> str:
    """``address`` as the host of an endpoint: an IPv6 address in brackets."""
    return f"[{address}]" if ":" in address else address


def load_deployment(path: Path) -> Deployment:
    """Read and check a deployment file; ``ConfigError`` in one line naming the file and
    what is wrong (a WAN path the profile does not have included)."""
    dep = load(Deployment, path)
    profile = load_profile(dep.profile)
    _check_paths(dep, profile, path)
    if dep.security is not None:
        base = path.parent
        pki = (base / dep.security.pki).resolve()
        acl = (base / dep.security.acl).resolve() if dep.security.acl else pki / "acl.json"
        dep = dep.model_copy(update={"security": SecuritySpec(pki=pki, acl=acl)})
    return dep


def _check_paths(dep: Deployment, profile: Profile, where: Path) -> None:
    for w in dep.wan:
        if w.path not in profile.paths:
            raise ConfigError(f"{where}: wan path {w.path!r} is not a path of profile "
                              f"{profile.name!r}; use one of {', '.join(profile.paths)}")


def site_or_error(dep: Deployment, site: str, where: Path) -> str:
    """``site`` if ``dep`` names it, else ``ConfigError`` listing the sites."""
    if site not in dep.sites:
        raise ConfigError(f"{where}: no site {site!r}; choose one of "
                          f"{', '.join(sorted(dep.sites))}")
    return site
