"""Force feedback over a delayed channel: time-domain passivity (no I/O, no clocks)."""

from telesurgery.haptics.passivity import (
    Correction,
    MasterPacket,
    PassivityObserver,
    PortEnergy,
    SlavePacket,
    admittance_pc,
    impedance_pc,
)

__all__ = [
    "Correction",
    "MasterPacket",
    "PassivityObserver",
    "PortEnergy",
    "SlavePacket",
    "admittance_pc",
    "impedance_pc",
]
