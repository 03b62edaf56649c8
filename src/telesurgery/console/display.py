"""What the surgeon sees and touches besides the control loop: endoscope video, HUD, the page.

``start_display(z, node)`` wires a console node to its video (``ConsoleVideo``)
and its web page (``WebConsole``), and answers the page: the HUD's numbers
(link statistics per path, video age and rate, control rate, safety state,
clutch, who has control, task progress, the force at each instrument's tip and its
grip against the console's force cap (``forces``, from ``console.forces``), alarms),
and the surgeon's input, which goes to a ``WebInputDevice`` when the console drives its
arms from the page. Link figures per path come from the patient's status (its path sync) and
from anything published on ``<session>/link/<path>/stats``; the patient's clock
offset estimate maps frame capture times onto this console's clock. Everything
here runs on the video and web threads and on Zenoh's; the
teleoperation loop only ever sees the input device.

Control: the HUD shows the owner the patient announces on ``<session>/control/owner``
(read by the node's ``ControlClient``), whether it is this console, pending requests,
handovers, and which console session each arm follows. The page's buttons depend on the
console's role (``hello`` tells the page): a surgeon console requests control; a backup
console takes it and grants the oldest pending request. The actions run on the node's
control thread, never on the page's.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import zenoh

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.clock import now_ns
from telesurgery.console.ghost import ghost_view
from telesurgery.console.video import ConsoleVideo, VideoAge, patient_clock_offset_ns
from telesurgery.console.web.access import announcement
from telesurgery.console.web.protocol import Action, HandInput, PageChecklist
from telesurgery.console.web.server import WebConsole
from telesurgery.errors import OwnershipError, TelesurgeryError
from telesurgery.input.web import WebInputDevice
from telesurgery.messages import Message, SafetyEvent, Status
from telesurgery.transport.session import subscribe
from telesurgery.types import SafetyState

if TYPE_CHECKING:
    from telesurgery.console.node import ConsoleNode

log = logging.getLogger(__name__)

PATIENT_SILENT_S: Final = 2.0
"""No patient status for this long [s] is an alarm."""
ALARM_MEMORY_S: Final = 30.0
"""Safety events stay on the alarm list this long [s]."""


class SurgeonDisplay:
    """The video and the page of one console node; a ``PageBackend`` for the web server."""

    def __init__(self, node: ConsoleNode) -> None:
        cfg = node.config
        self.node = node
        period_ns = round(1e9 / cfg.rate_hz)
        self.web = WebConsole(cfg.web, self, period_ns) if cfg.web.enabled else None
        self.video = (ConsoleVideo(cfg.video, period_ns, self.web) if cfg.video.enabled
                      else None)
        self.device = node.device if isinstance(node.device, WebInputDevice) else None
        self._events: collections.deque[tuple[float, SafetyEvent]] = collections.deque(
            maxlen=16)
        self._safety: SafetyState | None = None
        self._links: dict[str, dict[str, Any]] = {}
        self._patient_seen = 0.0
        self._sent: collections.deque[tuple[int, int]] = collections.deque(maxlen=8)
        self._lock = threading.Lock()
        self._subs: list[zenoh.Subscriber[None]] = []

    def start(self, z: zenoh.Session) -> None:
        """Subscribe to what the HUD shows; start the video and the page."""
        node = self.node
        keys = node.keys
        self._subs = [
            subscribe(z, keys.safety_state, self._on_safety, node.rejects),
            subscribe(z, keys.link_stats("*"), self._on_link, node.rejects),
            subscribe(z, keys.status("patient"), self._on_patient, node.rejects),
            # A mentor watching through an observer gateway points on the picture.
            subscribe(z, keys.audience_mark("*"), self._on_mark, node.rejects),
        ]
        if self.web is not None:
            # One line on stdout whatever the log level: the surgeon's way in (the URL
            # carries this launch's secret); the demo and the tests read it there too.
            print(announcement(node.what, self.web.start()), flush=True)
        if self.video is not None:
            self.video.start(z, keys, node.session_id, node.rejects)

    def close(self) -> None:
        """Stop the video and the page, unsubscribe (idempotent)."""
        if self.video is not None:
            self.video.stop()
        if self.web is not None:
            self.web.stop()
        for s in self._subs:
            s.undeclare()
        self._subs.clear()

    # ---- subscriptions (Zenoh's thread) ---------------------------------------------

    def _on_safety(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, SafetyEvent):
            with self._lock:
                self._events.append((time.time(), msg.body))
                self._safety = msg.body.state

    def _on_link(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            path = str(msg.body.data.get("path", "?"))
            with self._lock:
                self._links[path] = msg.body.data

    def _on_patient(self, msg: Message, _received_ns: int) -> None:
        if not isinstance(msg.body, Status):
            return
        self._patient_seen = time.monotonic()
        offset = patient_clock_offset_ns(msg.body.data)
        if self.video is not None and offset is not None:
            self.video.clock_offset_ns = offset

    def _on_mark(self, msg: Message, _received_ns: int) -> None:
        if self.web is None or not isinstance(msg.body, Status):
            return
        d = msg.body.data
        mentor, x, y, down = d.get("mentor"), d.get("x"), d.get("y"), d.get("down")
        if (isinstance(mentor, str) and 0 < len(mentor) <= 64 and isinstance(down, bool)
                and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in (x, y))):
            self.web.send_to_pages(json.dumps({"t": "mark", "mentor": mentor, "x": x,
                                               "y": y, "down": down}))

    # ---- PageBackend (the web server's thread) ---------------------------------------

    def hello(self) -> dict[str, Any]:
        """What the page needs once: session, frame size, arms, whether it drives them."""
        cfg = self.node.config
        return {"session": cfg.session, "console": self.node.name, "role": cfg.role,
                "console_session": f"{self.node.session_id:016x}",
                "width": cfg.video.width, "height": cfg.video.height,
                "video": cfg.video.enabled, "arms": list(cfg.arms),
                "drives": self.device is not None, "device": cfg.device}

    def on_input(self, hand: HandInput, now: int) -> None:
        """The surgeon's hand from the page, to the web device (ignored by other devices)."""
        if self.device is not None:
            self.device.apply(hand.arm, hand.move, hand.nudge, hand.roll, hand.grip,
                              hand.clutch, now)

    def on_checklist(self, msg: PageChecklist) -> None:
        """The bedside lead's word on the pre-flight checklist, to the patient node (it
        judges it and names it by this console's certificate; the HUD shows the result)."""
        control = self.node.control
        try:
            if control is None:
                raise OwnershipError("not_ready", "the console is not connected yet")
            control.checklist(msg.as_dict())
        except TelesurgeryError as exc:
            log.warning("checklist %s from the page not sent: %s", msg.action, exc)
            return
        log.warning("checklist %s from the page%s", msg.action,
                    f": {msg.item}, {msg.reason}" if msg.item else "")

    def on_action(self, action: Action) -> None:
        """Hold, resume; request, take or grant control."""
        if action is Action.REQUEST_CONTROL:
            log.warning("control requested from the page")
            self.node.request_control()
        elif action is Action.TAKE_CONTROL:
            log.warning("take control from the page")
            self.node.take_control()
        elif action is Action.GRANT_CONTROL:
            log.warning("grant control from the page (the oldest pending request)")
            self.node.grant_control()
        elif action is Action.ALLOW_REPLAY:
            log.warning("replay allowed from the page")
            self.node.allow_replay()
        elif action is Action.DISCARD_REPLAY:
            log.warning("replay withdrawn from the page")
            self.node.discard_replay()
        elif self.device is None:
            log.warning("%s from the page ignored: this console's arms follow the %s device, "
                        "not the page", action.value, self.node.config.device)
        elif action is Action.HOLD:
            self.device.hold()
            log.info("hold from the page: the instruments stay where they are")
        elif action is Action.RESUME:
            self.device.resume()
            log.info("resume from the page")

    def request_keyframe(self) -> None:
        """A page joined or lost its stream: ask the patient for an IDR."""
        if self.video is not None:
            self.video.request_keyframe()

    def hud(self) -> dict[str, Any]:
        """The HUD's numbers, JSON-ready (see the module docstring)."""
        node = self.node
        patient = node.patient_status
        safety = patient.get("safety", {})
        with self._lock:
            events = list(self._events)
            state = self._safety
            links = dict(self._links)
        now = now_ns()
        arms_state = safety.get("arms", {})
        forces, force_alarms = node.forces.hud(now)
        out: dict[str, Any] = {
            "t": "hud",
            "safety": {"state": state.name if state is not None else safety.get("state", "-"),
                       "holds": safety.get("holds"), "rejected": safety.get("rejected"),
                       "stale": safety.get("stale_dropped"),
                       "modes": {a: v.get("mode") for a, v in arms_state.items()}},
            "control": {"device": node.config.device, "rate_hz": self._control_rate(now),
                        "sent": node.sent,
                        "latency_ms": _p(safety.get("latency_ms")),
                        "scale": round(node.teleop.scale, 4),
                        "scale_base": node.teleop.base_scale,
                        "scale_rtt_ms": node.scaling.rtt_ms},
            "clutch": self._clutch(now),
            "hold": self.device.held if self.device is not None else None,
            "owner": self._owner(arms_state),
            "task": patient.get("task"),
            "links": {**patient.get("link", {}).get("paths", {}), **links},
            "video": self.video.status() if self.video is not None else None,
            "forces": forces,
            "twin": node.twin.status(now) if node.twin is not None else None,
            "replay": node.replay_status(),
            "alarms": force_alarms + self._alarms(events),
        }
        return out

    def ghost(self) -> dict[str, Any] | None:
        """The predictive display (``console.ghost``); None when it is off or the patient
        has not published its camera's intrinsics yet."""
        node = self.node
        if not node.config.predictive_display:
            return None
        video = node.patient_status.get("video")
        camera = Intrinsics.parse(video.get("intrinsics") if isinstance(video, dict) else None)
        if camera is None:
            return None
        return ghost_view(node.teleop, camera, node.scaling.rtt_ms)

    def _owner(self, arms_state: dict[str, Any]) -> dict[str, Any]:
        """Who holds control (``OwnerView.as_dict``: ``you`` when this console does),
        pending requests, handovers; this console's role and whether it streams commands;
        the console session each arm follows."""
        node = self.node
        sid = node.session_id
        control = node.control
        view = control.owner if control is not None else None
        out: dict[str, Any] = view.as_dict(sid) if view is not None else {
            "owner": "unknown", "you": False, "requests": [], "handovers": None}
        out |= {"this_console": f"{sid:016x}", "role": node.config.role,
                "driving": control.may_drive() if control is not None else False,
                "sent": dict(control.sent) if control is not None else {},
                "arms": {a: v.get("session") for a, v in arms_state.items()}}
        return out

    def _control_rate(self, now: int) -> float | None:
        with self._lock:
            self._sent.append((now, self.node.sent_servo_cp))
            (t0, n0), (t1, n1) = self._sent[0], self._sent[-1]
        arms = max(1, len(self.node.config.arms))
        return round((n1 - n0) / arms / ((t1 - t0) * 1e-9), 1) if t1 > t0 else None

    def _clutch(self, now: int) -> dict[str, str]:
        teleop = self.node.teleop
        hands = self.device.hands(now) if self.device is not None else {}
        out = {}
        for arm in teleop.arms:
            if teleop.held(arm):
                out[arm] = "held: press the clutch"
            elif teleop.engaged(arm):
                out[arm] = "engaged"
            elif arm in hands and not hands[arm]["present"]:
                out[arm] = "locked: no hand on it"
            else:
                out[arm] = "clutched"
        return out

    def _alarms(self, events: list[tuple[float, SafetyEvent]]) -> list[str]:
        alarms = []
        wall = time.time()
        for when, ev in events:
            if _is_alarm(ev) and wall - when < ALARM_MEMORY_S:
                alarms.append(f"{time.strftime('%H:%M:%S', time.localtime(when))} "
                              f"{ev.state.name}: {ev.text()}")
        if self._patient_seen and time.monotonic() - self._patient_seen > PATIENT_SILENT_S:
            alarms.append("patient node silent")
        if self.video is not None:
            v = self.video.status()
            # The teleoperation loop's own verdict: the alarm says what it does with the arms
            # (still clutched while a returned picture has not yet been fresh for a second).
            age = self.node.picture.verdict
            old_ms = (now_ns() - self.video.newest_capture_ns) * 1e-6
            if age is VideoAge.FROZEN:
                alarms.append(f"video frozen: newest frame {old_ms:.0f} ms old; instruments "
                              "clutched until it has been fresh for a second")
            elif age is VideoAge.LATE:
                alarms.append(f"video late: newest frame {old_ms:.0f} ms old")
            if v["decoder"]["waiting_for_keyframe"] and self.video.received:
                alarms.append("video: waiting for a keyframe")
        if self.web is not None and self.web.rejects.total:
            alarms.append(f"page messages refused: {self.web.rejects.total}")
        if self.web is not None and self.web.refused["token"]:
            alarms.append(f"page connections without the secret refused: "
                          f"{self.web.refused['token']}")
        return alarms

    # ---- figures --------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The console's ``video`` report: decoder and page latency books, page counters."""
        cfg = self.node.config.video
        out: dict[str, Any] = {"width": cfg.width, "height": cfg.height}
        if self.video is not None:
            out.update(self.video.report())
        if self.web is not None:
            out["web"] = self.web.status()
            out["page"] = self.web.page_report()
        return out


def _is_alarm(ev: SafetyEvent) -> bool:
    """An emergency stop, a hold beginning, or an arm held; arming and engaging are not
    alarms."""
    return (ev.state is SafetyState.ESTOP
            or (ev.state is SafetyState.HOLD and ev.previous is not SafetyState.HOLD)
            or ev.held)


def _p(d: dict[str, Any] | None) -> dict[str, Any]:
    return {k: d[k] for k in ("p50", "p99") if d and k in d}


def start_display(z: zenoh.Session, node: ConsoleNode) -> SurgeonDisplay | None:
    """Start the video and the page of ``node``; None when its config turns both off."""
    cfg = node.config
    if not (cfg.video.enabled or cfg.web.enabled):
        return None
    display = SurgeonDisplay(node)
    try:
        display.start(z)
    except Exception:
        display.close()
        raise
    return display


__all__ = ["SurgeonDisplay", "start_display"]
