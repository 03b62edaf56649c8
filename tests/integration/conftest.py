"""Real processes on loopback: a Zenoh router, the patient node, consoles, and a watcher."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from telesurgery.demo.monitor import Monitor
from telesurgery.demo.processes import NodeProcess, free_port
from telesurgery.demo.run import DEMO_BACKUP, DEMO_MEMBERS_WITH_BACKUP, connect_monitor
from telesurgery.messages import MeasuredCP, Message, SafetyEvent
from telesurgery.security.node import DEMO_SURGEON, Site, throwaway_site
from telesurgery.security.pki import Role
from telesurgery.transport.session import RejectCounter, subscribe
from telesurgery.types import SafetyState

STARTUP_S = 60.0


@dataclass
class Trace:
    """Everything the watcher received: safety events stamped with their receive time [ns],
    measured tool tips with the time the patient sent them [ns] (one machine, one clock: on
    a loaded machine samples queue on the way, and a pose sent before a hold would count as
    motion after it if stamped on receipt)."""

    events: list[tuple[int, Message]] = field(default_factory=list)
    measured: dict[str, list[tuple[int, MeasuredCP]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards everything above; hold it (or either condition) to read."""
    changed: threading.Condition = field(init=False)
    """Notified on every safety event."""
    sampled: threading.Condition = field(init=False)
    """Notified on every measured sample (a thousand a second: apart from ``changed``, so
    that a wait for an event is not woken by each of them)."""

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)
        self.sampled = threading.Condition(self.lock)

    def on_event(self, msg: Message, received_ns: int) -> None:
        with self.changed:
            self.events.append((received_ns, msg))
            self.changed.notify_all()

    def on_measured(self, msg: Message, _received_ns: int) -> None:
        if isinstance(msg.body, MeasuredCP):
            with self.sampled:
                self.measured.setdefault(msg.body.arm, []).append((msg.sent_ns, msg.body))
                self.sampled.notify_all()

    def wait_measured(self, check: Callable[[Trace], bool], what: str,
                      timeout_s: float) -> None:
        """Block until ``check(self)`` holds, checked (under the lock) on every measured
        sample received; fail naming ``what`` after ``timeout_s`` [s]."""
        with self.sampled:
            assert self.sampled.wait_for(lambda: check(self), timeout=timeout_s), (
                f"timed out after {timeout_s} s waiting for {what}")

    def wait_state(self, state: SafetyState, after: int, timeout_s: float) -> Message:
        """The first safety event entering ``state`` published at or after ``after`` [ns]."""

        def find() -> Message | None:
            for _, m in self.events:
                if (isinstance(m.body, SafetyEvent) and m.body.state is state
                        and m.sent_ns >= after):
                    return m
            return None

        with self.changed:
            assert self.changed.wait_for(lambda: find() is not None, timeout=timeout_s), (
                f"no transition to {state.name} within {timeout_s} s; events: "
                f"{[(m.body.state.name, m.body.reason) for _, m in self.events if isinstance(m.body, SafetyEvent)]}"  # noqa: E501
            )
            found = find()
            assert found is not None
            return found


@dataclass
class Cluster:
    """Router + patient node started; consoles started on demand (all on mutual TLS)."""

    workdir: Path
    router_ep: str
    patient: NodeProcess
    monitor: Monitor
    trace: Trace
    site: Site
    consoles: list[NodeProcess] = field(default_factory=list)

    def start_console(self, *extra: str, role: Role = Role.SURGEON) -> NodeProcess:
        """A surgeon console (``console``), or the bedside's (``backup``)."""
        name = f"console{len(self.consoles)}"
        verb, person = (("backup", DEMO_BACKUP) if role is Role.BACKUP
                        else ("console", DEMO_SURGEON))
        node = NodeProcess(name, [verb, "--session", "it", "--mode", "peer",
                                  "--connect", self.router_ep,
                                  *self.site.args(role, person), *extra],
                           self.workdir)
        node.start()
        self.consoles.append(node)
        return node


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A router and a patient node (session ``it``), and a watcher subscribed to them, on a
    throwaway site PKI (mutual TLS, access control, tagged commands)."""
    site = throwaway_site(tmp_path / "security", "it",
                          DEMO_MEMBERS_WITH_BACKUP)
    router_ep = f"tcp/127.0.0.1:{free_port()}"
    patient_ep = f"tcp/127.0.0.1:{free_port()}"
    router = NodeProcess("router", ["router", "--listen", router_ep,
                                    *site.args(Role.ROUTER, "site")], tmp_path)
    router.start(with_report=False)
    patient = NodeProcess("patient", ["patient", "--session", "it", "--mode", "peer",
                                      "--listen", patient_ep, "--connect", router_ep,
                                      *site.args(Role.ROBOT, "patient")], tmp_path)
    monitor: Monitor | None = None
    try:
        monitor = connect_monitor("it", router_ep, router,
                                  site.security(Role.OBSERVER, "monitor").zenoh_settings())
        trace = Trace()
        rejects = RejectCounter()
        z = monitor.session
        subscribe(z, monitor.keys.safety_state, trace.on_event, rejects)
        for arm in ("psm1", "psm2"):
            subscribe(z, monitor.keys.measured_cp(arm), trace.on_measured, rejects)
        patient.start()
        assert monitor.wait_present({"patient"}, STARTUP_S), patient.last_log_line()
        c = Cluster(tmp_path, router_ep, patient, monitor, trace, site)
        yield c
        for node in c.consoles:
            node.interrupt()
            node.wait(15.0)
    finally:
        patient.interrupt()
        patient.wait(15.0)
        if monitor is not None:
            monitor.close()
        router.interrupt()
        router.wait(15.0)
