"""A surgeon's licence in the certificate, and the site policy that accepts it (issue 19).

The pure parts: the licence survives the certificate and ``pki list``, the policy's
verdicts, the handshake refusing an offer the policy does not accept. Then a real
patient node with its signed trail: a surgeon licensed by an authority the site does not
accept gets no command key, its stroke moves nothing, the refusal is counted and in the
trail; a surgeon the site accepts moves the tool with the same stroke.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from telesurgery.cli import pki as pki_cli
from telesurgery.clock import now_ns
from telesurgery.config import load
from telesurgery.demo.processes import free_port
from telesurgery.errors import AuthError, ConfigError
from telesurgery.messages import Message
from telesurgery.security.credential import CredentialPolicy, Licence, licence_of
from telesurgery.security.handshake import Credentials, Initiator, Responder
from telesurgery.security.node import throwaway_site
from telesurgery.security.pki import Pki, Role
from telesurgery.security.tags import TagReason

from ..serving import patient_config, serving
from ..waiting import wait_until
from .test_intruders import STILL_M, STROKE_M, Console, Rig, Tip, _stroke, watched

ROSSI = Licence("RM-12345", "FNOMCeO", "IT", "urology", dt.date(2099, 6, 30))
FOREIGN = Licence("X-1", "Board of Elsewhere", "IT", "urology", dt.date(2099, 6, 30))
POLICY = """
[surgeon]
authorities = ["FNOMCeO", "GMC"]
jurisdictions = ["IT", "GB"]
"""
SESSION = "or1"
MEMBERS = {Role.ROUTER: ("relay",), Role.ROBOT: ("patient",),
           Role.SURGEON: ("dr-rossi", "dr-foreign"), Role.OBSERVER: ("watcher",)}
LICENCES = {"surgeon:dr-rossi": ROSSI, "surgeon:dr-foreign": FOREIGN}


def _policy(tmp_path: Path, text: str = POLICY) -> CredentialPolicy:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return load(CredentialPolicy, path)


def test_the_licence_travels_in_the_certificate_and_pki_list_shows_it(tmp_path: Path) -> None:
    app = typer.Typer()
    pki_cli.register(app)
    root = str(tmp_path / "pki")
    runner = CliRunner()
    for args in (["pki", "init", root, "--site", "gemelli-rome"],
                 ["pki", "issue", root, "--role", "surgeon", "--name", "dr-rossi",
                  "--licence-number", "RM-12345", "--licence-authority", "FNOMCeO",
                  "--jurisdiction", "IT", "--specialty", "urology",
                  "--licence-valid-until", "2099-06-30"],
                 ["pki", "issue", root, "--role", "observer", "--name", "obs1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    pki = Pki(Path(root))
    assert licence_of(pki.identity(Role.SURGEON, "dr-rossi").load_certificate()) == ROSSI
    assert [c.licence for c in pki.certificates()] == [ROSSI, None]
    listing = runner.invoke(app, ["pki", "list", root, "--json", str(tmp_path / "l.json")],
                            env={"COLUMNS": "200"})
    assert "RM-12345 FNOMCeO IT urology" in listing.output
    rows = json.loads((tmp_path / "l.json").read_text())["certificates"]
    assert rows[0]["licence"] == ROSSI.as_dict()
    assert rows[1]["licence"] is None


def test_a_licence_is_all_five_fields_and_only_for_people(tmp_path: Path) -> None:
    app = typer.Typer()
    pki_cli.register(app)
    root = str(tmp_path / "pki")
    runner = CliRunner()
    runner.invoke(app, ["pki", "init", root, "--site", "s"])
    half = runner.invoke(app, ["pki", "issue", root, "--role", "surgeon", "--name", "a",
                               "--licence-number", "1"])
    assert half.exit_code != 0
    assert "--licence-authority" in str(half.exception)
    with pytest.raises(ConfigError, match="carries no licence"):
        Pki(Path(root)).issue(Role.ROBOT, "patient", licence=ROSSI)
    with pytest.raises(ConfigError, match="not valid"):
        Licence("RM\n1", "FNOMCeO", "IT", "urology", dt.date(2099, 1, 1))


@pytest.mark.parametrize(("licence", "reason"), [
    (ROSSI, None),
    (Licence("G-1", "gmc", "gb", "general surgery", dt.date(2099, 1, 1)), None),
    (None, "licence_missing"),
    (FOREIGN, "authority_not_accepted"),
    (Licence("RM-2", "FNOMCeO", "CN", "urology", dt.date(2099, 1, 1)),
     "jurisdiction_not_accepted"),
    (Licence("RM-3", "FNOMCeO", "IT", "urology", dt.date(2026, 1, 1)), "licence_expired"),
])
def test_the_policy_says_why_it_refuses(tmp_path: Path, licence: Licence | None,
                                        reason: str | None) -> None:
    policy = _policy(tmp_path)
    today = dt.date(2026, 6, 1)
    if reason is None:
        policy.check("surgeon", licence, today)
        return
    with pytest.raises(AuthError) as info:
        policy.check("surgeon", licence, today)
    assert info.value.reason == reason
    # A role the policy does not name is not checked.
    policy.check("backup", licence, today)


def test_a_policy_names_a_role_and_nothing_else(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one role"):
        _policy(tmp_path, "")
    with pytest.raises(ConfigError, match="surgeon"):
        _policy(tmp_path, "[surgeon]\nauthorities = []\njurisdictions = ['IT']\n")
    with pytest.raises(ConfigError, match="nurse"):
        _policy(tmp_path, POLICY + "[nurse]\nauthorities = ['x']\njurisdictions = ['y']\n")


def test_the_handshake_refuses_a_surgeon_the_policy_does_not_accept(tmp_path: Path) -> None:
    site = throwaway_site(tmp_path, SESSION, MEMBERS, LICENCES)
    robot = Credentials.load(site.pki.identity(Role.ROBOT, "patient"))
    responder = Responder(robot, SESSION, 7, policy=_policy(tmp_path))
    for name, session in (("dr-foreign", 1), ("dr-rossi", 2)):
        creds = Credentials.load(site.pki.identity(Role.SURGEON, name))
        offer = Message(session, 1, now_ns(), Initiator(creds, SESSION, session).offer())
        if name == "dr-foreign":
            with pytest.raises(AuthError) as info:
                responder.answer(offer)
            assert info.value.reason == "authority_not_accepted"
            assert responder.bound_to(session) is None
        else:
            agreement = responder.answer(offer)
            assert agreement.licence == ROSSI
            assert responder.licence("surgeon:dr-rossi") == ROSSI


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("credentials")
    site = throwaway_site(root, SESSION, MEMBERS, LICENCES)
    (root / "policy.toml").write_text(POLICY, encoding="utf-8")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cfg = patient_config(SESSION, endpoint, site.config(Role.ROBOT, "patient"),
                         record_dir=root / "session").model_copy(
        update={"policy": root / "policy.toml"})
    with serving(cfg, "patient-with-policy") as (node, check):
        yield from watched(Rig(site, node, endpoint, Tip()), check)


def _trail(rig: Rig) -> list[dict[str, Any]]:
    audit = rig.node.audit
    assert audit is not None
    return [json.loads(line) for line in audit.path.read_text().splitlines()]


def test_a_surgeon_of_an_authority_the_site_does_not_accept_moves_nothing(rig: Rig) -> None:
    foreign = Console(rig, Role.SURGEON, "dr-foreign")
    try:
        assert rig.node.auth is not None
        # Its offer is resent every 0.2 s; the first refusal is enough to go on.
        wait_until(lambda: rig.node.auth is not None
                   and rig.node.auth.refused["authority_not_accepted"] > 0,
                   "the offer of dr-foreign refused", 30.0)
        assert not foreign.keys.ready
        start = rig.tip.mark()
        foreign.drive(_stroke(rig.tip.latest(), STROKE_M))
        rig.tip.wait_samples(20, rig.tip.mark())
        assert rig.tip.moved_since(start) < STILL_M
        assert rig.node.auth.rejections().get(TagReason.UNTAGGED, 0) > 0
        assert rig.node.security_status()["owner"] is None
        refused = [r["data"] for r in _trail(rig) if r["kind"] == "key_refused"]
        assert {"name": "surgeon:dr-foreign", "reason": "authority_not_accepted"}.items() \
            <= refused[0].items()
    finally:
        foreign.close()
    # The same stroke from a surgeon the site accepts moves the tool, with the licence on
    # record: the refusal above is the policy's doing, not the rig's.
    rossi = Console(rig, Role.SURGEON, "dr-rossi")
    try:
        rossi.ready()
        start = rig.tip.mark()
        rossi.drive(_stroke(rig.tip.latest(), STROKE_M))
        assert rig.tip.moved_since(start) > 0.75 * STROKE_M
        status = rig.node.security_status()
        assert status["owner"] == "surgeon:dr-rossi"
        assert status["credential"]["authority"] == "FNOMCeO"
        agreed = [r["data"] for r in _trail(rig) if r["kind"] == "key_agreed"]
        assert agreed[-1]["licence"] == ROSSI.as_dict()
    finally:
        rossi.close()
