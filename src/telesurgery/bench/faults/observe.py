"""What an observer on the site router sees during a fault: tool tips, arm modes, owners,
link alarms, the patient's lost commands and the console's video freezes, each with its
sender's send time [ns]."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import zenoh

from telesurgery.bench.faults.judge import Hold, TipSample
from telesurgery.demo.monitor import Monitor
from telesurgery.messages import MeasuredCP, Message, SafetyEvent, Status
from telesurgery.transport.session import RejectCounter, subscribe


@dataclass
class Observation:
    """Everything seen, appended from Zenoh's threads under ``lock``."""

    tips: dict[str, list[TipSample]] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    owners: list[tuple[int, str | None]] = field(default_factory=list)
    """(sent_ns, owner) at each change of owner announced."""
    link_alarms: Counter[str] = field(default_factory=Counter)
    """``path state`` (e.g. ``fibre DOWN``) counts."""
    link_alarm_times: list[tuple[int, str]] = field(default_factory=list)
    """(sent_ns, ``path state``) of each link alarm, in arrival order (the drills time
    them)."""
    commands_lost: list[tuple[int, int]] = field(default_factory=list)
    """(sent_ns, count) from each patient status: command numbers no path brought so far."""
    video_freezes: list[tuple[int, int]] = field(default_factory=list)
    """(sent_ns, count) from each surgeon console status: its picture froze so often."""
    injected: dict[str, Any] = field(default_factory=dict)
    """What the injection itself measured (a burst's messages and bytes)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot_tips(self, arm: str) -> list[TipSample]:
        """A copy of ``arm``'s samples so far."""
        with self.lock:
            return list(self.tips.get(arm, []))

    def owner(self) -> str | None:
        """The owner announced last (None before any, or nobody)."""
        with self.lock:
            return self.owners[-1][1] if self.owners else None

    def seen(self, origin_ns: int) -> dict[str, Any]:
        """What the surgeon's and the bedside's screens showed: holds by cause and when
        [s from ``origin_ns``], owner changes and link alarms (both consoles show the same
        session state)."""
        with self.lock:
            owners = [o for _, o in self.owners]
            return {"holds_by_cause": dict(Counter(h.cause for h in self.holds)),
                    "holds": [{"arm": h.arm, "cause": h.cause,
                               "at_s": round((h.sent_ns - origin_ns) * 1e-9, 3)}
                              for h in self.holds],
                    "owner_changes": max(0, len(owners) - 1), "owners": owners,
                    "link_alarms": dict(self.link_alarms)}


class Observer:
    """Subscribes ``monitor``'s session to ``arms``' measured poses, the safety events, the
    owner announcements and the link alarms; ``close`` unsubscribes."""

    def __init__(self, monitor: Monitor, arms: tuple[str, ...]) -> None:
        self.seen = Observation()
        keys = monitor.keys
        rejects = RejectCounter()
        z = monitor.session
        self._subs: list[zenoh.Subscriber[None]] = [
            *(subscribe(z, keys.measured_cp(arm), self._on_tip, rejects) for arm in arms),
            subscribe(z, keys.safety_state, self._on_event, rejects),
            subscribe(z, keys.control_owner, self._on_owner, rejects),
            subscribe(z, keys.link_alarm("*"), self._on_alarm, rejects),
            subscribe(z, keys.status("patient"), self._on_patient, rejects),
            subscribe(z, keys.status("console"), self._on_console, rejects),
        ]

    def _on_tip(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, MeasuredCP):
            with self.seen.lock:
                self.seen.tips.setdefault(msg.body.arm, []).append(
                    TipSample(msg.session, msg.seq, msg.sent_ns, msg.body.measured,
                              msg.body.mode, msg.body.applied_seq))

    def _on_event(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, SafetyEvent) and \
                (hold := Hold.of(msg.sent_ns, msg.body)) is not None:
            with self.seen.lock:
                self.seen.holds.append(hold)

    def _on_owner(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            owner = msg.body.data.get("owner")
            with self.seen.lock:
                if not self.seen.owners or self.seen.owners[-1][1] != owner:
                    self.seen.owners.append((msg.sent_ns, None if owner is None else str(owner)))

    def _on_alarm(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            what = f"{msg.body.data.get('path', '?')} {msg.body.data.get('state', '?')}"
            with self.seen.lock:
                self.seen.link_alarms[what] += 1
                self.seen.link_alarm_times.append((msg.sent_ns, what))

    def _on_patient(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status):
            link = msg.body.data.get("link")
            commands = link.get("commands") if isinstance(link, dict) else None
            lost = commands.get("lost") if isinstance(commands, dict) else None
            if isinstance(lost, int):
                with self.seen.lock:
                    self.seen.commands_lost.append((msg.sent_ns, lost))

    def _on_console(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, Status) and \
                isinstance(freezes := msg.body.data.get("video_freezes"), int):
            with self.seen.lock:
                self.seen.video_freezes.append((msg.sent_ns, freezes))

    def close(self) -> None:
        """Stop listening."""
        for s in self._subs:
            s.undeclare()
