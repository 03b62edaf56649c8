"""Mutual TLS and role access control enforced by real Zenoh routers and peers on loopback."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import zenoh

from telesurgery.demo.processes import free_port
from telesurgery.errors import ConfigError
from telesurgery.security import Identity, Pki, Role, access_control
from telesurgery.transport.keys import Keys
from telesurgery.transport.tls import apply_settings

from .conftest import SESSION, TIMEOUT_S, Collector, Nodes, make_pki

KEYS = Keys(SESSION)
COMMAND = KEYS.servo_cp("psm1")
JAW = KEYS.jaw_servo_jp("psm1")
STATE = KEYS.measured_cp("psm1")


def _wait(predicate: object, timeout: float = TIMEOUT_S) -> bool:
    tick = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if callable(predicate) and predicate():
            return True
        tick.wait(0.01)
    return False


def _put_until(session: zenoh.Session, key: str, seen: Collector, tag: bytes) -> None:
    """Put ``tag`` until ``seen`` has it: the subscription has reached the publisher."""
    tick = threading.Event()
    for _ in range(int(TIMEOUT_S / 0.05)):
        session.put(key, tag)
        if seen.wait_for(lambda items: tag in items, 0.05):
            return
        tick.wait(0.0)
    raise AssertionError(f"{tag!r} never arrived on {key}: the allowed path is broken")


def _router_telling_observers_of_subscribers(nodes: Nodes, endpoint: str) -> None:
    # A modified client would send whether or not it knows of a subscriber; letting the
    # observer learn of them makes the stock client send too, so the router's ingress
    # rule is what must drop the observer's commands.
    cfg = nodes.config(nodes.pki.identity(Role.ROUTER, "r1"), "router", listen=[endpoint])
    block = access_control(SESSION, nodes.pki.roster())
    block["rules"].append({"id": "observer/learns-subscribers", "permission": "allow",
                           "messages": ["declare_subscriber"], "flows": ["egress"],
                           "key_exprs": [COMMAND, JAW]})
    next(p for p in block["policies"] if p["id"] == "observer")["rules"].append(
        "observer/learns-subscribers")
    apply_settings(cfg, {"access_control": json.dumps(block)})
    nodes.open(cfg)


def test_only_surgeon_and_backup_commands_reach_the_robot(nodes: Nodes) -> None:
    endpoint = f"tls/127.0.0.1:{free_port()}"
    _router_telling_observers_of_subscribers(nodes, endpoint)
    robot = nodes.node(Role.ROBOT, "patient", connect=[endpoint])
    commands = Collector()
    sub = robot.declare_subscriber(COMMAND, commands)
    surgeon = nodes.node(Role.SURGEON, "dr-rossi", connect=[endpoint])
    backup = nodes.node(Role.BACKUP, "bedside", connect=[endpoint])
    observer = nodes.node(Role.OBSERVER, "obs1", connect=[endpoint])
    recorder = nodes.node(Role.RECORDER, "rec", connect=[endpoint])
    _put_until(surgeon, COMMAND, commands, b"surgeon-ready")
    _put_until(backup, COMMAND, commands, b"backup-ready")
    intruder = observer.declare_publisher(COMMAND)
    status: Any = intruder  # the stubs say matching_status is a bool; 1.10 returns an object
    assert _wait(lambda: status.matching_status.matching), "observer never saw the robot"

    for i in range(20):
        intruder.put(b"observer-%d" % i)
        recorder.put(COMMAND, b"recorder-%d" % i)
        surgeon.put(COMMAND, b"surgeon-%d" % i)
        backup.put(COMMAND, b"backup-%d" % i)
    assert commands.wait_for(lambda items: b"surgeon-19" in items and b"backup-19" in items)

    got = commands.snapshot()
    assert sum(p.startswith(b"surgeon-") for p in got) >= 20
    assert not [p for p in got if p.startswith((b"observer-", b"recorder-"))]
    sub.undeclare()


def test_observer_sees_state_never_commands_and_only_the_robot_publishes_state(
        nodes: Nodes, router: str) -> None:
    robot = nodes.node(Role.ROBOT, "patient", connect=[router])
    surgeon = nodes.node(Role.SURGEON, "dr-rossi", connect=[router])
    observer = nodes.node(Role.OBSERVER, "obs1", connect=[router])
    state, commands = Collector(), Collector()
    subs = [observer.declare_subscriber(STATE, state),
            observer.declare_subscriber(COMMAND, commands)]
    robot_commands = Collector()
    subs.append(robot.declare_subscriber(COMMAND, robot_commands))
    _put_until(robot, STATE, state, b"robot-ready")
    _put_until(surgeon, COMMAND, robot_commands, b"surgeon-ready")

    for i in range(20):
        surgeon.put(STATE, b"forged-%d" % i)
        surgeon.put(COMMAND, b"command-%d" % i)
        robot.put(STATE, b"state-%d" % i)
    assert state.wait_for(lambda items: b"state-19" in items)
    assert robot_commands.wait_for(lambda items: b"command-19" in items)

    assert not [p for p in state.snapshot() if p.startswith(b"forged-")]
    assert commands.snapshot() == []
    for s in subs:
        s.undeclare()


def test_subscription_wider_than_the_grant_gets_nothing(nodes: Nodes, router: str) -> None:
    robot = nodes.node(Role.ROBOT, "patient", connect=[router])
    observer = nodes.node(Role.OBSERVER, "obs1", connect=[router])
    recorder = nodes.node(Role.RECORDER, "rec", connect=[router])
    everything, recorded = Collector(), Collector()
    subs = [observer.declare_subscriber(KEYS.everything, everything),
            recorder.declare_subscriber(KEYS.everything, recorded)]  # granted to recorders
    _put_until(robot, STATE, recorded, b"robot-ready")
    for i in range(20):
        robot.put(STATE, b"state-%d" % i)
    assert recorded.wait_for(lambda items: b"state-19" in items)
    # Refused as a whole, though state lies within it: observers subscribe to granted keys.
    assert everything.snapshot() == []
    for s in subs:
        s.undeclare()


def test_presence_is_seen_by_everyone_and_declared_only_by_its_role(
        nodes: Nodes, router: str) -> None:
    robot = nodes.node(Role.ROBOT, "patient", connect=[router])
    observer = nodes.node(Role.OBSERVER, "obs1", connect=[router])
    surgeon = nodes.node(Role.SURGEON, "dr-rossi", connect=[router])
    seen: list[str] = []
    watch = surgeon.liveliness().declare_subscriber(
        KEYS.presence("*"), lambda s: seen.append(str(s.key_expr)), history=True)
    with observer.liveliness().declare_token(KEYS.presence("patient-2")):
        # The router handles one link's declarations in order: once the observer's later
        # subscription works, its token was judged, and had it passed, the router would
        # have sent it to the surgeon before the robot's token, declared only now.
        state = Collector()
        sub = observer.declare_subscriber(STATE, state)
        _put_until(robot, STATE, state, b"robot-ready")
        with robot.liveliness().declare_token(KEYS.presence("patient")):
            assert _wait(lambda: KEYS.presence("patient") in seen)
            assert KEYS.presence("patient-2") not in seen
    watch.undeclare()
    sub.undeclare()


def test_client_without_certificate_is_refused(nodes: Nodes, router: str,
                                               site_pki: Pki) -> None:
    cfg = zenoh.Config()
    apply_settings(cfg, {
        "mode": '"client"', "connect/endpoints": json.dumps([router]),
        "transport/link/tls/root_ca_certificate": json.dumps(str(site_pki.ca_cert_path))})
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        nodes.open(cfg)
    plain = zenoh.Config()
    apply_settings(plain, {"mode": '"client"', "connect/endpoints": json.dumps(
        [router.replace("tls/", "tcp/")])})
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        nodes.open(plain)
    # The same router admits the site's own client: the refusals above are the certificate's.
    nodes.node(Role.OBSERVER, "obs1", connect=[router])


@pytest.mark.parametrize("trusts", ["own CA", "site CA"])
def test_certificate_from_another_ca_is_refused(nodes: Nodes, router: str, site_pki: Pki,
                                                other_pki: Pki, trusts: str) -> None:
    forged = other_pki.identity(Role.SURGEON, "dr-rossi")  # the very same common name
    ca = forged.ca_certificate if trusts == "own CA" else site_pki.ca_cert_path
    intruder = Identity(forged.role, forged.name, forged.certificate, forged.private_key, ca)
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        nodes.open(nodes.config(intruder, "client", connect=[router]))
    nodes.node(Role.SURGEON, "dr-rossi", connect=[router])


def test_revoked_certificate_connects_but_is_denied_everything(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    revoked_identity = pki.identity(Role.SURGEON, "dr-bianchi")
    pki.revoke(Role.SURGEON, "dr-bianchi")
    with pytest.raises(ConfigError, match="revoked"):
        pki.identity(Role.SURGEON, "dr-bianchi")
    nodes = Nodes(pki)
    try:
        endpoint = f"tls/127.0.0.1:{free_port()}"
        nodes.node(Role.ROUTER, "r1", "router", listen=[endpoint])  # ACL from the new roster
        robot = nodes.node(Role.ROBOT, "patient", connect=[endpoint])
        commands = Collector()
        sub = robot.declare_subscriber(COMMAND, commands)
        surgeon = nodes.node(Role.SURGEON, "dr-rossi", connect=[endpoint])
        # Zenoh 1.10 checks no CRL: the TLS handshake of the revoked certificate succeeds.
        revoked = nodes.open(nodes.config(revoked_identity, "client", connect=[endpoint]))
        _put_until(surgeon, COMMAND, commands, b"rossi-ready")
        for i in range(20):
            revoked.put(COMMAND, b"bianchi-%d" % i)
            surgeon.put(COMMAND, b"rossi-%d" % i)
        assert commands.wait_for(lambda items: b"rossi-19" in items)
        assert not [p for p in commands.snapshot() if p.startswith(b"bianchi-")]
        sub.undeclare()
    finally:
        nodes.close()


def test_peer_to_peer_with_the_rules_on_every_node(nodes: Nodes, site_pki: Pki) -> None:
    patient_ep = f"tls/127.0.0.1:{free_port()}"
    robot = nodes.node(Role.ROBOT, "patient", "peer", listen=[patient_ep])
    commands = Collector()
    subs = [robot.declare_subscriber(COMMAND, commands)]
    surgeon = nodes.node(Role.SURGEON, "dr-rossi", "peer", listen=["tls/127.0.0.1:0"],
                         connect=[patient_ep])
    observer = nodes.node(Role.OBSERVER, "obs1", "peer", listen=["tls/127.0.0.1:0"],
                          connect=[patient_ep])
    overheard = Collector()
    subs.append(observer.declare_subscriber(COMMAND, overheard))
    # A peer without a certificate opens (peers retry in the background) but never links.
    anonymous = zenoh.Config()
    apply_settings(anonymous, {
        "mode": '"peer"', "connect/endpoints": json.dumps([patient_ep]),
        "listen/endpoints": "[]", "scouting/multicast/enabled": "false",
        "transport/link/tls/root_ca_certificate": json.dumps(str(site_pki.ca_cert_path))})
    stranger = nodes.open(anonymous)

    _put_until(surgeon, COMMAND, commands, b"surgeon-ready")
    for i in range(20):
        observer.put(COMMAND, b"observer-%d" % i)
        stranger.put(COMMAND, b"stranger-%d" % i)
        surgeon.put(COMMAND, b"surgeon-%d" % i)
    assert commands.wait_for(lambda items: b"surgeon-19" in items)
    assert not [p for p in commands.snapshot() if not p.startswith(b"surgeon-")]
    # The observer's own puts loop back to its own subscriber; the surgeon's never reach it.
    assert not [p for p in overheard.snapshot() if p.startswith(b"surgeon-")]
    assert list(stranger.info.peers_zid()) == []
    for s in subs:
        s.undeclare()


def test_node_certificate_must_name_the_address_dialled(nodes: Nodes, tmp_path: Path) -> None:
    # 127.0.0.2 is loopback too, but the certificates name only 127.0.0.1, ::1, localhost.
    endpoint = f"tls/127.0.0.2:{free_port('127.0.0.2')}"
    nodes.node(Role.ROUTER, "r1", "router", listen=[endpoint])
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        nodes.node(Role.SURGEON, "dr-rossi", connect=[endpoint])
    nodes.node(Role.SURGEON, "dr-rossi", connect=[endpoint], verify_name=False)

    pki = Pki.init(tmp_path / "pki", "named-site")
    named = Nodes(pki)
    try:
        pki.issue(Role.ROUTER, "r2", hosts=["127.0.0.2"])
        pki.issue(Role.SURGEON, "dr-rossi")
        other = f"tls/127.0.0.2:{free_port('127.0.0.2')}"
        named.node(Role.ROUTER, "r2", "router", listen=[other])
        named.node(Role.SURGEON, "dr-rossi", connect=[other])
    finally:
        named.close()
