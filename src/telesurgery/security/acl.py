"""Zenoh access control by role: who may publish and subscribe what in a session.

A :class:`Grant` per role says, as key expressions under ``telesurgery/<session>/``, what
the role publishes, what it subscribes to and which presence tokens it declares.
:func:`access_control` turns the grants and a roster (common names by role, from the
PKI) into Zenoh's ``access_control`` block: deny by default, one subject per role keyed
by certificate common names, one policy per role.

Every grant becomes rules in both directions, as Zenoh checks each link of the node that
holds the config (measured with zenoh 1.10):

- publish: ``put`` in (the role may send it) and ``declare_subscriber`` out on the whole
  session (the role learns that someone subscribes, however wide the subscription;
  without it a peer's publisher never sends);
- subscribe: ``declare_subscriber`` in and ``put`` out (the samples reach the role);
- presence: ``liveliness_token`` in; everyone may watch presence (``presence/*``).

A subscription is allowed only when its key expression lies within a granted one: an
observer subscribing to ``telesurgery/or1/**`` gets nothing; subscribe to the keys
granted. Zenoh enforces the rules on the links of the node holding them, so a router
protects its clients, and with peer-to-peer links every node must hold the rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurgery.errors import ConfigError
from telesurgery.security.pki import Role
from telesurgery.transport.keys import ROOT, Keys

COMMANDS = ("*/servo_cp", "*/servo_jp", "*/move_cp", "*/move_jp",
            "*/jaw/servo_jp", "*/jaw/move_jp")
"""CRTK motion commands of every arm (the surgeon's and the bedside console's)."""
STATE = ("*/measured_$*", "*/setpoint_$*", "*/jaw/measured_$*", "*/jaw/setpoint_$*",
         "*/operating_state")
"""Robot state: measured and setpoint values of every arm, its operating state."""
VIDEO = ("ecm/video", "ecm/video/**")
KEYFRAME_REQUEST = ("ecm/video/keyframe",)
"""A console asking the patient's encoder for a keyframe (after loss, or on joining)."""
SAFETY = ("safety/**",)
OWNER = ("control/owner",)
"""Who holds control, announced by the patient node (which enforces ownership)."""
CONTROL_REQUEST = ("control/request",)
CONTROL_GRANT = ("control/grant",)
KEY_OFFER = ("control/key/offer",)
KEY_ACCEPT = ("control/key/accept",)
"""The command-key handshake (``security.handshake``): consoles offer, the robot answers."""
LINK = ("link/*/stats", "link/*/alarm")
SYNC_REQUEST = ("link/*/sync/request",)
SYNC_REPLY = ("link/*/sync/reply",)
"""Clock synchronisation on the control paths: the robot asks, consoles answer."""
STATUS = ("*/status",)
BROADCAST = ("audience/*/broadcast",)
"""An observer gateway announcing its broadcast started or stopped, and who allowed it."""
MENTOR_MARK = ("audience/*/mark",)
"""A mentor's pointer or stroke on the picture, relayed by the gateway to the consoles."""
PRESENCE = "presence/*"

NODE_OF_ROLE = {Role.SURGEON: "console", Role.BACKUP: "backup", Role.ROBOT: "patient",
                Role.RECORDER: "recorder"}
"""The node name (in ``<node>/status`` and ``presence/<node>``) each publishing role may
use; ``console-2`` and the like match too."""


def _own(role: Role, kind: str) -> str:
    node = f"{NODE_OF_ROLE[role]}$*"
    return f"presence/{node}" if kind == "presence" else f"{node}/{kind}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one role may do; key expressions relative to ``telesurgery/<session>/``.

    ``relay`` allows every message on the whole key space, both ways (routers).
    """

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    presence: tuple[str, ...] = ()
    relay: bool = False


_WATCH = (*STATE, *VIDEO, *SAFETY, *OWNER, *LINK, *STATUS)

_CONSOLE_PUBLISH = (*COMMANDS, *CONTROL_REQUEST, *KEY_OFFER, *KEYFRAME_REQUEST, *SYNC_REPLY,
                    *LINK)
_CONSOLE_WATCH = (*_WATCH, *KEY_ACCEPT, *SYNC_REQUEST, *MENTOR_MARK)

GRANTS: Mapping[Role, Grant] = {
    Role.SURGEON: Grant(
        publish=(*_CONSOLE_PUBLISH, _own(Role.SURGEON, "status")),
        subscribe=_CONSOLE_WATCH, presence=(_own(Role.SURGEON, "presence"),)),
    Role.BACKUP: Grant(
        publish=(*_CONSOLE_PUBLISH, *CONTROL_GRANT, _own(Role.BACKUP, "status")),
        subscribe=(*_CONSOLE_WATCH, *CONTROL_REQUEST),
        presence=(_own(Role.BACKUP, "presence"),)),
    Role.ROBOT: Grant(
        publish=(*STATE, *VIDEO, *SAFETY, *OWNER, *KEY_ACCEPT, *SYNC_REQUEST, *LINK,
                 _own(Role.ROBOT, "status")),
        subscribe=(*COMMANDS, *CONTROL_REQUEST, *CONTROL_GRANT, *KEY_OFFER,
                   *KEYFRAME_REQUEST, *SYNC_REPLY, *LINK, *STATUS, *BROADCAST),
        presence=(_own(Role.ROBOT, "presence"),)),
    # An observer gateway also asks for the IDRs its viewers start on (about one a
    # second, only while it broadcasts), announces its broadcast and relays mentors' marks.
    Role.OBSERVER: Grant(publish=(*KEYFRAME_REQUEST, *BROADCAST, *MENTOR_MARK),
                         subscribe=_WATCH),
    Role.RECORDER: Grant(subscribe=("**",), presence=(_own(Role.RECORDER, "presence"),)),
    Role.ROUTER: Grant(relay=True),
}
"""The default rights: only surgeon and backup command (and offer command keys); only
the robot publishes state, video and safety (and answers key offers); observers command
nothing (they may ask for a keyframe, announce a broadcast and relay a mentor's marks); the
recorder only subscribes (the recorder to the whole session, commands included, for the
audit; it announces its presence); routers relay everything."""

_ALL_MESSAGES = ("put", "delete", "declare_subscriber", "query", "declare_queryable",
                 "reply", "liveliness_token", "declare_liveliness_subscriber",
                 "liveliness_query")


def _rule(rule_id: str, messages: Sequence[str], flows: Sequence[str],
          keys: Sequence[str]) -> dict[str, Any]:
    return {"id": rule_id, "permission": "allow", "messages": list(messages),
            "flows": list(flows), "key_exprs": list(keys)}


def _role_rules(role: Role, grant: Grant, prefix: str) -> list[dict[str, Any]]:
    def under(suffixes: Sequence[str]) -> list[str]:
        return [f"{prefix}/{s}" for s in suffixes]

    r = role.value
    if grant.relay:
        return [_rule(f"{r}/relay", _ALL_MESSAGES, ("ingress", "egress"), [f"{ROOT}/**"])]
    rules = [_rule(f"{r}/watch-presence", ("declare_liveliness_subscriber", "liveliness_query"),
                   ("ingress",), under([PRESENCE])),
             _rule(f"{r}/see-presence", ("liveliness_token",), ("egress",), under([PRESENCE]))]
    if grant.publish:
        rules += [_rule(f"{r}/publish", ("put",), ("ingress",), under(grant.publish)),
                  # Any subscription in the session, not just the published keys: a wide
                  # one (the recorder's **, a monitor's */status) lies within none of
                  # them, and a publisher that never learns of it never sends it anything.
                  _rule(f"{r}/publish-interest", ("declare_subscriber",), ("egress",),
                        [f"{prefix}/**"])]
    if grant.subscribe:
        rules += [_rule(f"{r}/subscribe", ("declare_subscriber",), ("ingress",),
                        under(grant.subscribe)),
                  _rule(f"{r}/receive", ("put",), ("egress",), under(grant.subscribe))]
    if grant.presence:
        rules.append(_rule(f"{r}/presence", ("liveliness_token",), ("ingress",),
                           under(grant.presence)))
    return rules


def access_control(session: str, roster: Mapping[Role, Sequence[str]],
                   grants: Mapping[Role, Grant] = GRANTS) -> dict[str, Any]:
    """Zenoh's ``access_control`` block for ``session`` (``*`` for every session).

    ``roster`` maps roles to the certificate common names holding them (``Pki.roster()``);
    a role with nobody in it gets no subject. Names not in the roster (revoked, expired,
    unknown) match no subject and so are denied everything.
    """
    if not session or any(c in session for c in "/#?$") or (
            "*" in session and session != "*"):
        raise ConfigError(f"session {session!r} must be one key chunk (e.g. or1) or '*'")
    prefix = Keys(session).prefix
    rules: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for role, names in roster.items():
        if role not in grants:
            raise ConfigError(f"role {role.value!r} has no grant; add it to the grants table")
        if not names:
            continue
        role_rules = _role_rules(role, grants[role], prefix)
        rules += role_rules
        subjects.append({"id": role.value, "cert_common_names": list(dict.fromkeys(names))})
        policies.append({"id": role.value, "rules": [r["id"] for r in role_rules],
                         "subjects": [role.value]})
    return {"enabled": True, "default_permission": "deny", "rules": rules,
            "subjects": subjects, "policies": policies}


def acl_settings(session: str, roster: Mapping[Role, Sequence[str]],
                 grants: Mapping[Role, Grant] = GRANTS) -> dict[str, str]:
    """:func:`access_control` as a ``{json5 key: value}`` entry for ``insert_json5``."""
    return {"access_control": json.dumps(access_control(session, roster, grants))}


def load_acl_settings(path: Path) -> dict[str, str]:
    """The entry of an access-control file written by ``telesurgery pki acl --out PATH``.

    For nodes that hold the rules but not the PKI (deployments; the CA stays elsewhere).
    """
    try:
        block = json.loads(path.read_text(encoding="utf-8"))["access_control"]
    except FileNotFoundError:
        raise ConfigError(f"access-control file {path} does not exist; write it with "
                          "'telesurgery pki acl DIR --session S --out PATH'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not an access-control file from 'telesurgery pki acl' "
                          f"({exc}); write it again") from exc
    if not isinstance(block, dict) or block.get("default_permission") != "deny":
        raise ConfigError(f"{path} does not deny by default; write it with 'telesurgery pki "
                          "acl' instead of by hand")
    return {"access_control": json.dumps(block)}
