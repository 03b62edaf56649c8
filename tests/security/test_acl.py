"""The generated access control: its shape, the grants' invariants, and Zenoh accepting it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zenoh

from telesurgery.errors import ConfigError
from telesurgery.security import GRANTS, Role, access_control, acl_settings, load_acl_settings
from telesurgery.security.acl import (
    BROADCAST,
    COMMANDS,
    KEYFRAME_REQUEST,
    MENTOR_MARK,
    SAFETY,
    STATE,
    VIDEO,
    Grant,
)

ROSTER = {Role.SURGEON: ["surgeon:dr-rossi", "surgeon:dr-bianchi"],
          Role.OBSERVER: ["observer:obs1"], Role.RECORDER: [], Role.ROBOT: ["robot:patient"]}


def test_deny_by_default_one_subject_and_policy_per_role_with_members() -> None:
    block = access_control("or1", ROSTER)
    assert block["enabled"] is True
    assert block["default_permission"] == "deny"
    assert {s["id"]: s["cert_common_names"] for s in block["subjects"]} == {
        "surgeon": ["surgeon:dr-rossi", "surgeon:dr-bianchi"],
        "observer": ["observer:obs1"], "robot": ["robot:patient"]}
    rule_ids = {r["id"] for r in block["rules"]}
    for policy in block["policies"]:
        assert policy["subjects"] == [policy["id"]]
        assert set(policy["rules"]) <= rule_ids
    assert all(r["permission"] == "allow" for r in block["rules"])
    assert all(k.startswith("telesurgery/or1/") for r in block["rules"]
               for k in r["key_exprs"])


def test_observer_rules_allow_subscribing_and_only_the_audience_keys() -> None:
    block = access_control("or1", {Role.OBSERVER: ["observer:obs1"]})
    inbound = {m for r in block["rules"] if "ingress" in r["flows"] for m in r["messages"]}
    assert inbound == {"declare_subscriber", "declare_liveliness_subscriber",
                       "liveliness_query", "put"}
    # What an observer gateway may put: a keyframe request, its broadcast, mentors' marks.
    puts = {k for r in block["rules"] if "ingress" in r["flows"] and "put" in r["messages"]
            for k in r["key_exprs"]}
    assert puts == {"telesurgery/or1/ecm/video/keyframe",
                    "telesurgery/or1/audience/*/broadcast", "telesurgery/or1/audience/*/mark"}


def test_only_surgeon_and_backup_command_and_only_the_robot_publishes_state() -> None:
    commanders = {role for role, g in GRANTS.items() if set(COMMANDS) & set(g.publish)}
    assert commanders == {Role.SURGEON, Role.BACKUP}
    for keys in (STATE, VIDEO, SAFETY):
        assert {role for role, g in GRANTS.items() if set(keys) & set(g.publish)} == {
            Role.ROBOT}
    assert set(GRANTS[Role.OBSERVER].publish) == {*KEYFRAME_REQUEST, *BROADCAST,
                                                  *MENTOR_MARK}
    assert not GRANTS[Role.OBSERVER].presence
    assert not GRANTS[Role.RECORDER].publish
    assert GRANTS[Role.RECORDER].presence == ("presence/recorder$*",)
    assert not set(COMMANDS) & set(GRANTS[Role.OBSERVER].subscribe)


def test_session_must_be_one_chunk_or_every_session() -> None:
    assert access_control("*", ROSTER)["rules"][0]["key_exprs"][0].startswith(
        "telesurgery/*/")
    for bad in ("", "or/1", "or*", "a$b"):
        with pytest.raises(ConfigError, match="one key chunk"):
            access_control(bad, ROSTER)


def test_role_without_grant_is_refused() -> None:
    with pytest.raises(ConfigError, match="no grant"):
        access_control("or1", ROSTER, {Role.SURGEON: Grant()})


@pytest.mark.parametrize("roster", [ROSTER, {}, {role: [f"{role.value}:x"] for role in Role}])
def test_zenoh_opens_a_session_with_it(roster: dict[Role, list[str]]) -> None:
    cfg = zenoh.Config()
    for key, value in {"mode": '"peer"', "listen/endpoints": "[]",
                       "scouting/multicast/enabled": "false",
                       **acl_settings("or1", roster)}.items():
        cfg.insert_json5(key, value)
    assert json.loads(cfg.get_json("access_control"))["enabled"] is True
    session = zenoh.open(cfg)
    session.close()


def test_acl_file_must_exist_and_deny_by_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_acl_settings(tmp_path / "missing.json5")
    (tmp_path / "bad.json5").write_text('{"rules": []}')
    with pytest.raises(ConfigError, match="not an access-control file"):
        load_acl_settings(tmp_path / "bad.json5")
    (tmp_path / "open.json5").write_text('{"access_control": {"default_permission": "allow"}}')
    with pytest.raises(ConfigError, match="does not deny by default"):
        load_acl_settings(tmp_path / "open.json5")
