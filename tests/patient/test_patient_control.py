"""Control ownership on the patient node against a real supervisor: a take-over holds the
previous owner's arms, and ownership never calls the supervisor from inside its lock."""

from __future__ import annotations

import threading

import zenoh

from telesurgery.console.control import ControlClient
from telesurgery.messages import SafetyCause
from telesurgery.patient.control import PatientControl
from telesurgery.safety import ArmMode
from telesurgery.safety.supervisor import Supervisor
from telesurgery.transport.keys import Keys

from ..safety.rig import Console, kinematic_rig
from ..waiting import wait_until

KEYS = Keys("pctl")
WAIT_S = 10.0
SURGEON, BACKUP = 0x5E55, 0xBAC


class Watched:
    """The supervisor as ownership sees it (``HoldsArms``), noting whether the
    supervisor's own lock was free at each call: it must be, or the call came from
    inside ``admits`` and a real supervisor would deadlock."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.locked_calls = 0
        self.holds: list[int | None] = []

    def _free(self) -> bool:
        # A plain Lock: acquiring without blocking fails only while someone holds it (in
        # this test nothing else does while ownership acts).
        lock: threading.Lock = self.sup._lock
        if lock.acquire(blocking=False):
            lock.release()
            return True
        self.locked_calls += 1
        return False

    def hold_others(self, session: int | None, reason: str) -> None:
        self.holds.append(session)
        if self._free():  # else forwarding would deadlock: let the assertions fail instead
            self.sup.hold_others(session, reason)

    def last_valid_ns(self, session: int) -> int | None:
        return self.sup.last_valid_ns(session) if self._free() else None


def test_a_take_over_holds_the_owners_arms_from_outside_the_supervisors_lock(
        zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    patient_z, console_z = zenoh_pair
    control = PatientControl(owner_lost_ms=60_000)
    r = kinematic_rig(admits=control.admits)
    watched = Watched(r.sup)
    control.start(patient_z, KEYS, 0x7A7, watched, None, None)
    backup = ControlClient(console_z, KEYS, BACKUP, "backup")
    try:
        r.engage(console=Console(SURGEON))  # the surgeon's first command claims the robot
        control.poll()
        assert control.ownership.owner is not None
        assert control.ownership.owner.session == SURGEON
        wait_until(lambda: backup.matched, "the patient listening for control actions",
                   WAIT_S)
        backup.take_over()
        wait_until(lambda: r.sup.mode("psm1") is ArmMode.HELD, "the surgeon's arm held",
                   WAIT_S)
    finally:
        backup.close()
        control.close()
    assert watched.holds == [BACKUP]
    assert watched.locked_calls == 0
    assert r.events[-1].cause is SafetyCause.HANDOVER
    assert r.events[-1].arm == "psm1"
