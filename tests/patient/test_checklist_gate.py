"""The pre-flight checklist enforced by a real patient node (issue 19).

A secure patient node with its signed trail and a checklist that the bedside lead has
confirmed, with the items a test rig cannot meet (probe, recorder, video) overridden.
No bedside console is there: a surgeon whose licence the site accepts agrees a key, yet
its stroke moves nothing and its commands are counted as refused by the checklist. The
bedside lead overrides the missing bedside console with a written reason
(``telesurgery checklist override``); the node clears the list, audits the override with
its reason, and the same stroke moves the tool.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import typer
import zenoh
from typer.testing import CliRunner

from telesurgery.cli import checklist as checklist_cli
from telesurgery.clock import now_ns
from telesurgery.config import ChecklistConfig
from telesurgery.demo.processes import free_port
from telesurgery.messages import Message, Status
from telesurgery.patient.checklist import link_observation
from telesurgery.security.node import DEMO_LICENCES, DEMO_POLICY, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.session import matching

from ..security.test_intruders import (
    KEYS,
    STILL_M,
    STROKE_M,
    Console,
    Rig,
    Tip,
    _stroke,
    watched,
)
from ..serving import patient_config, serving
from ..waiting import wait_until

SESSION = "or1"
MEMBERS = {Role.ROUTER: ("relay",), Role.ROBOT: ("patient",),
           Role.SURGEON: ("dr-rossi",), Role.BACKUP: ("bedside-team",),
           Role.OBSERVER: ("watcher",)}
BEDSIDE_REASON = "the bedside surgeon is scrubbed in at the table; the console restarts"


@dataclass
class CheckedRig(Rig):
    """The rig, and the bedside's confirmation file its patient node reads."""

    confirmation: Path = Path()


def _cli(*args: str) -> None:
    app = typer.Typer()
    checklist_cli.register(app)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheckedRig]:
    root = tmp_path_factory.mktemp("checklist")
    site = throwaway_site(root, SESSION, MEMBERS, DEMO_LICENCES)
    (root / "policy.toml").write_text(DEMO_POLICY, encoding="utf-8")
    confirmation = root / "checklist.toml"
    for item in ("link", "recording", "video"):
        _cli("checklist", "override", str(confirmation), "--item", item,
             "--reason", f"test rig on loopback: no {item} here")
    _cli("checklist", "confirm", str(confirmation), "--by", "sister-chen")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cfg = patient_config(SESSION, endpoint, site.config(Role.ROBOT, "patient"),
                         record_dir=root / "session").model_copy(update={
        "policy": root / "policy.toml",
        "checklist": ChecklistConfig(required=True, confirmation=confirmation)})
    with serving(cfg, "patient-with-checklist") as (node, check):
        # ``watched`` yields the rig it was given.
        yield from cast(Iterator[CheckedRig], watched(
            CheckedRig(site, node, endpoint, Tip(), confirmation=confirmation), check))


def _trail(rig: Rig) -> list[dict[str, Any]]:
    audit = rig.node.audit
    assert audit is not None
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def test_no_bedside_console_blocks_the_surgeon_until_the_bedside_overrides(
        rig: CheckedRig) -> None:
    node = rig.node
    assert node.checklist is not None
    surgeon = Console(rig, Role.SURGEON, "dr-rossi")
    try:
        surgeon.ready()
        status = node.security_status()["checklist"]
        states = {i["item"]: i["state"] for i in status["items"]}
        assert states == {"link": "overridden", "bedside": "no_go", "credential": "go",
                          "recording": "overridden", "video": "overridden"}
        assert status["cleared"] is False
        start = rig.tip.mark()
        surgeon.drive(_stroke(rig.tip.latest(), STROKE_M))
        assert rig.tip.moved_since(start) < STILL_M
        assert node.control.refused["checklist"] > 0
        assert node.security_status()["owner"] is None

        _cli("checklist", "override", str(rig.confirmation),
             "--item", "bedside", "--reason", BEDSIDE_REASON)
        wait_until(lambda: node.checklist is not None and node.checklist.cleared,
                   "the checklist to clear after the override", 30.0)
        start = rig.tip.mark()
        surgeon.drive(_stroke(rig.tip.latest(), STROKE_M))
        assert rig.tip.moved_since(start) > 0.75 * STROKE_M
        assert node.security_status()["owner"] == "surgeon:dr-rossi"
    finally:
        surgeon.close()
    trail = _trail(rig)
    overrides = {r["data"]["item"]: r["data"] for r in trail
                 if r["kind"] == "checklist_override"}
    assert overrides["bedside"]["reason"] == BEDSIDE_REASON
    assert overrides["bedside"]["by"] == "sister-chen"
    cleared = [r for r in trail if r["kind"] == "checklist"
               and r["data"]["latched"]]
    handover = next(r for r in trail if r["kind"] == "handover")
    assert cleared
    assert cleared[0]["data"]["confirmed_by"] == "sister-chen"
    assert trail.index(cleared[0]) < trail.index(handover)


def _report(path: Path, finished: dt.datetime, paths: dict[str, bool]) -> Path:
    path.write_text(json.dumps({"verdict": "GO", "finished_at": finished.isoformat(),
                                "paths": {n: {"go": ok} for n, ok in paths.items()}}))
    return path


def test_the_link_item_needs_every_path_go_in_a_fresh_probe(tmp_path: Path) -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    fresh = _report(tmp_path / "a.json", now - dt.timedelta(minutes=5),
                    {"fibre": True, "5g": False})
    old = _report(tmp_path / "b.json", now - dt.timedelta(minutes=45), {"5g": True})
    new = _report(tmp_path / "c.json", now - dt.timedelta(minutes=1), {"5g": True})
    assert link_observation([fresh, new], ["fibre", "5g"], 30.0, now).ok
    stale = link_observation([fresh, old], ["fibre", "5g"], 30.0, now)
    assert not stale.ok
    assert "5g" in stale.detail
    assert "45 min old" in stale.detail
    assert not link_observation([], [], 30.0, now).ok
    assert link_observation([new], [], 30.0, now).ok
    (tmp_path / "bad.json").write_text("{")
    assert "unreadable" in link_observation([tmp_path / "bad.json"], [], 30.0, now).detail


def test_the_bedside_console_overrides_over_the_wire_under_its_certificate_name(
        rig: CheckedRig) -> None:
    node = rig.node
    bedside = Console(rig, Role.BACKUP, "bedside-team")
    try:
        bedside.ready()
        grants = bedside.z.declare_publisher(KEYS.control_grant,
                                             reliability=zenoh.Reliability.RELIABLE)
        wait_until(lambda: matching(grants), "the patient's control/grant subscriber", 30.0)
        refused = node.control.refused["checklist_action"]
        reason = "the link was qualified by the network team by telephone"

        def send(seq: int, data: dict[str, str]) -> None:
            grants.put(bedside.keys.seal(Message(bedside.session_id, seq, now_ns(),
                                                 Status(data))))

        send(1, {"action": "override", "item": "link", "reason": "short"})
        send(2, {"action": "override", "item": "link", "reason": reason})
        wait_until(lambda: node.control.refused["checklist_action"] > refused,
                   "the short reason refused", 30.0)

        def overridden() -> list[dict[str, Any]]:
            return [r["data"] for r in _trail(rig) if r["kind"] == "checklist_override"
                    and r["data"]["reason"] == reason]

        wait_until(lambda: bool(overridden()), "the bedside's override in the trail", 30.0)
        assert overridden()[0]["by"] == "backup:bedside-team"
        announced = node.control.announcement()["checklist"]
        states = {i["item"]: i["state"] for i in announced["items"]}
        assert states["bedside"] == "go"
    finally:
        bedside.close()
