"""The surgeon console node: input device -> teleoperation mapping -> commands on Zenoh.

The teleoperation loop runs at the configured rate (1 kHz by default), paced by
``clock.Rate``; measured tool poses, registrations and the patient's status
arrive on Zenoh's receive thread and are read by the loop as latest values.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import zenoh

from telesurgery.clock import FixedRateLoop, now_ns, set_realtime_thread
from telesurgery.config import ConsoleConfig
from telesurgery.console.display import SurgeonDisplay, start_display
from telesurgery.console.teleop import Teleop
from telesurgery.input.base import InputDevice
from telesurgery.security.command_keys import ConsoleKeys
from telesurgery.security.node import NodeSecurity, node_security, security_status
from telesurgery.transport.codec import MeasuredCP, Message, ServoCP, Status, encode
from telesurgery.transport.dualpath import MultiPublisher
from telesurgery.transport.keys import Keys
from telesurgery.transport.nodelink import ConsoleLink
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import (
    Publisher,
    RejectCounter,
    new_session_id,
    open_session,
    subscribe,
)
from telesurgery.types import Pose

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 0.5


class ConsoleNode:
    """Drives the patient's arms from one input device until stopped."""

    def __init__(self, config: ConsoleConfig, device: InputDevice,
                 name: str = "console") -> None:
        self.config = config
        self.device = device
        self.name = name
        self.keys = Keys(config.session)
        self.session_id = new_session_id()
        self.rejects = RejectCounter()
        self.teleop = Teleop(device, scale=config.scale, tremor=config.tremor,
                             rate_hz=config.rate_hz)
        self.sent = 0
        self.sent_servo_cp = 0
        self.loop = FixedRateLoop(config.rate_hz, realtime=config.realtime)
        self.patient_status: dict[str, Any] = {}
        self.link: ConsoleLink | None = None
        self.display: SurgeonDisplay | None = None
        self.security: NodeSecurity | None = None
        """Mutual TLS, access control and command tags (None: run insecure)."""
        self.auth: ConsoleKeys | None = None

    def run(self, stop: threading.Event, duration_s: float | None = None) -> dict[str, Any]:
        """Send commands until stopped; returns the final report."""
        self.security = node_security(self.config.security, "surgeon console")
        if self.config.realtime:
            # Before Zenoh starts its threads, so that its transmit thread inherits it.
            set_realtime_thread()
        z = open_session(self.config.zenoh, self._zenoh_security())
        try:
            return self._serve(z, stop, duration_s)
        finally:
            z.close()

    def _serve(self, z: zenoh.Session, stop: threading.Event,
               duration_s: float | None) -> dict[str, Any]:
        keys, sid = self.keys, self.session_id
        # Commands go out and measured poses come back on every control path.
        link = self.link = ConsoleLink(z, self.config.paths, keys, sid, self._zenoh_security())
        if self.security is not None:
            # Commands are tagged under a key agreed with the patient node, end to end.
            self.auth = ConsoleKeys(z, keys, sid, self.security.credentials)
        seal = self.auth.seal if self.auth is not None else encode
        pubs = {arm: (link.command_publisher(keys.servo_cp(arm), seal),
                      link.command_publisher(keys.jaw_servo_jp(arm), seal))
                for arm in self.config.arms}
        link.subscribe_state([keys.measured_cp(arm) for arm in self.config.arms],
                             self._on_measured, self.rejects)
        subs = [subscribe(z, keys.status("patient"), self._on_status, self.rejects)]
        token = z.liveliness().declare_token(keys.presence(self.name))
        status = Publisher(z, keys.status(self.name), Stream.STATUS, sid)
        try:
            self.display = start_display(z, self)
            if self._wait_for_patient(pubs, stop):
                self._loop(pubs, status, stop, duration_s)
        finally:
            if self.display is not None:
                self.display.close()
            status.put(Status(self.status()))
            token.undeclare()
            for s in subs:
                s.undeclare()
            link.close()
            if self.auth is not None:
                self.auth.close()
        return self.report()

    def _zenoh_security(self) -> dict[str, str] | None:
        return None if self.security is None else self.security.zenoh_settings()

    def _wait_for_patient(self, pubs: dict[str, tuple[MultiPublisher, MultiPublisher]],
                          stop: threading.Event) -> bool:
        """Block until the patient node subscribes to every command key and, secure, a
        command key is agreed with it (or ``stop``).

        Commands sent before anyone listens would be lost and counted as sent.
        """
        log.info("waiting for the patient node on session %s", self.config.session)
        everything = [p for pair in pubs.values() for p in pair]
        while not stop.is_set():
            if all(p.matched for p in everything) and (self.auth is None or self.auth.ready):
                log.info("patient node present; streaming commands")
                return True
            stop.wait(0.01)
        return False

    def _on_measured(self, msg: Message, _received_ns: int) -> None:
        if self.auth is not None:
            self.auth.observe_patient(msg.session)
        if isinstance(msg.body, MeasuredCP):
            self.teleop.observe(msg.body.arm, msg.body.measured, msg.body.jaw, msg.body.mode)

    def _on_status(self, msg: Message, _received_ns: int) -> None:
        if not isinstance(msg.body, Status):
            return
        self.patient_status = msg.body.data
        for arm, v in msg.body.data.get("registration", {}).items():
            if isinstance(v, list) and len(v) == 7:
                self.teleop.register(arm, Pose((v[0], v[1], v[2]), (v[3], v[4], v[5], v[6])))

    def _loop(self, pubs: dict[str, tuple[MultiPublisher, MultiPublisher]], status: Publisher,
              stop: threading.Event, duration_s: float | None) -> None:
        next_status = 0

        def teleop(now: int) -> None:
            nonlocal next_status
            samples = self.device.read(now)
            for arm in self.teleop.arms:
                sample = samples.get(arm)
                if sample is None:
                    continue
                cp, jaw = pubs[arm]
                for body in self.teleop.step_arm(arm, sample):
                    if isinstance(body, ServoCP):
                        cp.put(body)
                        self.sent_servo_cp += 1
                    else:
                        jaw.put(body)
                    self.sent += 1
            if now >= next_status:
                status.put(Status(self.status()))
                next_status = now + int(STATUS_PERIOD_S * 1e9)

        self.loop.run(teleop, stop, duration_s)

    def status(self, last: int | None = 5000) -> dict[str, Any]:
        """Telemetry: commands sent and loop timing over the ``last`` ticks (None: all)."""
        return {
            "node": self.name,
            "session_id": f"{self.session_id:016x}",
            "sent": self.sent,
            "sent_servo_cp": self.sent_servo_cp,
            "arms": len(self.teleop.arms),
            # How long commands have been streamed [s]: from the patient's arrival on.
            "streaming_s": round((now_ns() - self.loop.started_ns) * 1e-9, 3)
            if self.loop.started_ns else 0.0,
            "undecodable": self.rejects.total,
            "link": self.link.status() if self.link is not None else {},
            "loop": {"rate_hz": self.config.rate_hz,
                     "period_error_us": self.loop.period_error_ns.summary(1e-3, last=last)},
            "security": security_status(self.security) | (
                self.auth.status() if self.auth is not None else {}),
        }

    def report(self) -> dict[str, Any]:
        """Final figures after the loop ended."""
        out = self.status(last=None)
        out["cpu_cores"] = round(self.loop.cpu_cores, 3)
        out["streaming_s"] = round(self.loop.elapsed_s, 3)
        if self.display is not None:
            out["video"] = self.display.report()
        return out
