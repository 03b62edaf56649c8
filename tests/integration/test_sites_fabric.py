"""Two hospitals on one machine: each site in its own network namespace, joined only by
the emulated WAN paths, the session driving through the site routers (needs root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from telesurgery.demo.fabric import SitesRun
from telesurgery.sites.deployment import load_deployment
from tests.waiting import wait_until

SHIPPED = Path(__file__).parents[2] / "configs" / "sites" / "rome-beijing.toml"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("reached")
except OSError as exc:
    print(type(exc).__name__)
"""


def _reach(prefix: tuple[str, ...], host: str, port: int) -> str:
    done = subprocess.run([*prefix, sys.executable, "-c", PROBE, host, str(port)],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def _accepted(run: SitesRun) -> int:
    assert run.monitor is not None
    return int(run.monitor.status.get("patient", {}).get("safety", {}).get("accepted", 0))


def test_the_session_drives_across_the_sites_and_survives_a_cut_path(tmp_path: Path) -> None:
    dep = load_deployment(SHIPPED)
    run = SitesRun(dep, SHIPPED, tmp_path, insecure=False, log_level="warning",
                   site_args=["--device", "autopilot", "--still-bedside"])
    with run:
        assert run.monitor is not None
        m = run.monitor
        wait_until(lambda: {"patient", "console", "backup"} <= m.present,
                   lambda: f"the nodes' presence (seen: {sorted(m.present)})", 120.0)
        wait_until(lambda: _accepted(run) > 500, "the surgeon's commands accepted", 60.0)
        # The clock is synchronised with Rome over the WAN (the fastest exchange takes the
        # fibre's 2 x 49 ms), not with the bedside console a router away, which must not
        # answer while it does not drive.
        wait_until(lambda: m.status.get("patient", {}).get("link", {}).get("clock"),
                   "a clock estimate", 30.0)
        clock = m.status["patient"]["link"]["clock"]
        assert clock["rtt_ms"] >= 95.0, clock
        rome = run.fabric.nets["rome-console"]
        # Rome reaches the host end of its own veth, where the emulators listen, and not
        # Beijing: no route goes there except through an emulator.
        assert _reach(rome.exec_prefix, "10.77.1.2", dep.ports.main) != "reached"
        assert _reach(rome.exec_prefix, rome.address, dep.ports.main) == "reached"
        # One WAN path cut: the patient's path watch calls it down; commands go on by the
        # other path.
        run.rig.cut("5g")
        wait_until(lambda: any(a.get("path") == "5g" and a.get("state") == "DOWN"
                               for _, a in list(m.link_alarms)), "the 5g path DOWN", 30.0)
        base = _accepted(run)
        wait_until(lambda: _accepted(run) > base + 500,
                   "commands accepted with 5g cut", 30.0)
        run.rig.restore("5g")
        wait_until(lambda: any(a.get("path") == "5g" and a.get("state") == "UP"
                               for _, a in list(m.link_alarms)), "the 5g path UP again", 30.0)
        namespaces = [n.namespace for n in run.fabric.nets.values()]
    for site in dep.sites:
        report = json.loads((tmp_path / site / "site.json").read_text(encoding="utf-8"))
        assert report["processes"]["router"]["exit"] == 0, report
    beijing = json.loads((tmp_path / "beijing-or" / "site.json").read_text(encoding="utf-8"))
    planes = beijing["processes"]["router"]["report"]["planes"]
    assert {p: c["changes"][0]["up"] for p, c in planes.items()} == {
        "main": True, "fibre": True, "5g": True}
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert not any(n in listed for n in namespaces), listed
