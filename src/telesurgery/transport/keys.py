"""The key space: ``telesurgery/<session>/<arm>/<crtk-name>`` and friends (no leading slash)."""

from __future__ import annotations

from dataclasses import dataclass

from telesurgery.config import ALL_ARMS

ROOT = "telesurgery"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key expressions of one surgical session (``session`` is e.g. ``or1``)."""

    session: str

    @property
    def prefix(self) -> str:
        """``telesurgery/<session>``."""
        return f"{ROOT}/{self.session}"

    @property
    def everything(self) -> str:
        """Wildcard over the whole session (for subscribers only)."""
        return f"{self.prefix}/**"

    def arm(self, arm: str, name: str) -> str:
        """A CRTK topic of an arm, e.g. ``arm('psm1', 'servo_cp')``."""
        return f"{self.prefix}/{arm}/{name}"

    def servo_cp(self, arm: str) -> str:
        """Tool-tip pose commands."""
        return self.arm(arm, "servo_cp")

    @property
    def arms_servo(self) -> str:
        """Every arm's commands of one console tick in one message (``CommandBundle``),
        under the pseudo-arm ``arms``: what a console streams."""
        return self.arm(ALL_ARMS, "servo_cp")

    def jaw_servo_jp(self, arm: str) -> str:
        """Jaw commands."""
        return self.arm(arm, "jaw/servo_jp")

    def measured_cp(self, arm: str) -> str:
        """Measured tool-tip pose, with the command it follows."""
        return self.arm(arm, "measured_cp")

    @property
    def arms_measured(self) -> str:
        """Every arm's ``measured_cp`` of one state tick in one message (``StateBundle``):
        what a console reads."""
        return self.arm(ALL_ARMS, "measured_cp")

    def measured_js(self, arm: str) -> str:
        """Measured joints."""
        return self.arm(arm, "measured_js")

    def measured_cf(self, arm: str) -> str:
        """Measured tool-tip wrench."""
        return self.arm(arm, "measured_cf")

    @property
    def safety_state(self) -> str:
        """Safety supervisor transitions."""
        return f"{self.prefix}/safety/state"

    def status(self, node: str) -> str:
        """Low-rate telemetry of a node (``patient``, ``console``, ...)."""
        return f"{self.prefix}/{node}/status"

    def presence(self, node: str) -> str:
        """Liveliness token of a node."""
        return f"{self.prefix}/presence/{node}"

    @property
    def video(self) -> str:
        """Endoscope video frames."""
        return f"{self.prefix}/ecm/video"

    @property
    def key_offer(self) -> str:
        """Command-key offers of consoles (``security.handshake``)."""
        return f"{self.prefix}/control/key/offer"

    @property
    def key_accept(self) -> str:
        """The patient node's answers to command-key offers."""
        return f"{self.prefix}/control/key/accept"

    @property
    def control_owner(self) -> str:
        """Who holds control and every handover, announced by the patient node."""
        return f"{self.prefix}/control/owner"

    @property
    def control_request(self) -> str:
        """Consoles asking for control (``ControlAction.REQUEST``)."""
        return f"{self.prefix}/control/request"

    @property
    def control_grant(self) -> str:
        """The bedside console taking control or granting it (access control lets only the
        ``backup`` role publish here)."""
        return f"{self.prefix}/control/grant"

    def audience_broadcast(self, gateway: str) -> str:
        """Where observer gateway ``gateway`` announces its broadcast starting and stopping."""
        return f"{self.prefix}/audience/{gateway}/broadcast"

    def audience_mark(self, gateway: str) -> str:
        """Where observer gateway ``gateway`` relays its mentors' pointer and strokes."""
        return f"{self.prefix}/audience/{gateway}/mark"

    def link_stats(self, path: str) -> str:
        """Statistics of one network path."""
        return f"{self.prefix}/link/{path}/stats"

    def link_alarm(self, path: str) -> str:
        """A network path lost or back (alarm events)."""
        return f"{self.prefix}/link/{path}/alarm"

    def link_sync_request(self, path: str) -> str:
        """Clock-synchronisation requests on one control path."""
        return f"{self.prefix}/link/{path}/sync/request"

    def link_sync_reply(self, path: str) -> str:
        """Clock-synchronisation replies on one control path."""
        return f"{self.prefix}/link/{path}/sync/reply"
