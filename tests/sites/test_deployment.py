"""The deployment file: what each site runs, its planes, and one clear line for a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telesurgery.demo.sites import SiteOptions, path_configs, site_processes
from telesurgery.errors import ConfigError
from telesurgery.sites.deployment import load_deployment
from telesurgery.sites.netns import NamespaceError, check_permitted
from telesurgery.sites.router import plane_config

SHIPPED = Path(__file__).parents[2] / "configs" / "sites" / "rome-beijing.toml"

GOOD = """
session = "or1"
profile = "rome-beijing"
[sites.beijing-or]
address = "10.77.1.2"
processes = ["patient", "backup"]
[sites.rome-console]
address = "10.77.2.2"
processes = ["console"]
[[wan]]
path = "fibre"
dial = "rome-console"
accept = "beijing-or"
[[wan]]
path = "5g"
dial = "rome-console"
accept = "beijing-or"
"""


def test_the_shipped_file_puts_the_patient_in_beijing_and_dials_from_rome() -> None:
    dep = load_deployment(SHIPPED)
    assert dep.patient_site == "beijing-or"
    assert dep.site_of("console") == "rome-console"
    rome = {p.name: p for p in dep.planes("rome-console")}
    beijing = {p.name: p for p in dep.planes("beijing-or")}
    assert set(rome) == set(beijing) == {"main", "fibre", "5g"}
    # Rome dials every plane, Beijing accepts: only the patient's hospital opens ports.
    assert all(p.dials == "beijing-or" for p in rome.values())
    assert all(p.dials is None for p in beijing.values())
    assert [rome[n].port for n in ("main", "fibre", "5g")] == [7447, 7450, 7451]
    # The main plane crosses on fibre and fails over to 5g; each path plane on its own.
    assert rome["main"].routes == ("fibre", "5g")
    assert [rome["main"].via_key(r) for r in rome["main"].routes] == ["main", "main@5g"]
    assert rome["5g"].routes == ("5g",)
    # A node's control paths are clients of its own site's planes, never the far site's.
    assert [(c.name, c.zenoh.mode, c.zenoh.connect, c.tls)
            for c in path_configs(dep, "rome-console")] == [
        ("fibre", "client", ["tcp/10.77.2.2:7450"], False),
        ("5g", "client", ["tcp/10.77.2.2:7451"], False)]


def test_a_site_starts_its_router_first_then_its_nodes(tmp_path: Path) -> None:
    file = tmp_path / "d.toml"
    file.write_text(GOOD, encoding="utf-8")
    dep = load_deployment(file)
    procs = site_processes(dep, file, "beijing-or", tmp_path,
                           SiteOptions(via={"main": "tcp/169.254.77.1:9"}))
    assert [p.name for p in procs] == ["router", "patient", "backup"]
    assert "--via=main=tcp/169.254.77.1:9" in procs[0].args
    patient = procs[1].args
    assert patient[patient.index("--connect") + 1] == "tcp/10.77.1.2:7447"
    # The patient allows commands the slowest path's age (5g: 56 ms one way).
    config = Path(patient[patient.index("--config") + 1]).read_text(encoding="utf-8")
    assert "path_delay_ms = 56.0" in config
    assert "--insecure" in patient  # the file has no [security]


@pytest.mark.parametrize(("change", "says"), [
    (('path = "5g"', 'path = "satellite"'), "not a path of profile 'rome-beijing'"),
    (('processes = ["console"]', 'processes = ["console", "patient"]'),
     "exactly one site must run the patient"),
    (('accept = "beijing-or"\n[[wan]]', 'accept = "paris"\n[[wan]]'), "no site 'paris'"),
    (('address = "10.77.2.2"', 'address = "rome.example"'), "is not an IP address"),
    (('path = "5g"', 'path = "fibre"'), "named twice"),
])
def test_a_bad_file_is_one_line_naming_what_to_fix(tmp_path: Path, change: tuple[str, str],
                                                   says: str) -> None:
    file = tmp_path / "d.toml"
    file.write_text(GOOD.replace(*change, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=says) as err:
        load_deployment(file)
    assert "\n" not in str(err.value)


def test_without_root_the_namespaces_are_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(NamespaceError, match=r"needs root.*telesurgery demo --link"):
        check_permitted()


def test_the_main_plane_dials_once_per_route_it_is_given() -> None:
    dep = load_deployment(SHIPPED)
    main = next(p for p in dep.planes("rome-console") if p.name == "main")

    def connect(via: dict[str, str]) -> list[str]:
        cfg = json.loads(plane_config(dep, "rome-console", main, via, None).get_json(
            "connect/endpoints"))
        assert isinstance(cfg, list)
        return cfg

    # Without a via for the second route both would dial the same address: one link.
    assert connect({}) == ["tcp/10.77.1.2:7447"]
    assert connect({"main": "tcp/169.254.77.1:9", "main@5g": "tcp/169.254.77.1:10"}) == [
        "tcp/169.254.77.1:9", "tcp/169.254.77.1:10"]
