"""Time-domain passivity for position-force teleoperation over a delayed, lossy channel.

The Time Delay Power Network approach (J.-H. Ryu, J. Artigas, C. Preusche, "A passive
bilateral control scheme for a teleoperator with time-varying communication delay",
Mechatronics 20(7), 2010), as Coelho, Ott et al. use it up to 700 ms of round trip
(arXiv:1909.01603). The channel with its controllers is a two-port network:

- the master (haptic device) port: the device's velocity goes in, the force to display
  comes out (impedance causality);
- the slave (robot) port: the tool's contact force goes in, the commanded velocity comes
  out (admittance causality).

Each side observes, per degree of freedom, the energy that enters the network at its port
and the energy that leaves it (``PassivityObserver``), and sends its cumulative input energy
with every packet: a lost packet loses nothing, the next one carries the total. A side may
let out only what the other side has put in: the master's impedance-type controller
(``impedance_pc``) adds damping to the displayed force, the slave's admittance-type
controller (``admittance_pc``) slows the commanded motion, each by exactly the excess, so
that at every sample ``E_out(here, now) <= E_in(there, now - delay)``. The network then
never generates energy, whatever the delay, its variation, its jitter or the loss.

Pure functions and small frozen values; the caller owns the loop (1 kHz) and the channel.
Powers are [W], energies [J], forces [N], velocities [m/s], times [s].
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PortEnergy:
    """Cumulative energy [J] at one port since the start: ``e_in_j`` entered the network
    there, ``e_out_j`` left it. Both only grow."""

    e_in_j: float = 0.0
    e_out_j: float = 0.0


@dataclass(frozen=True, slots=True)
class MasterPacket:
    """Master to slave, once a period: sequence number, send time [ns, master clock], the
    device's position [m] along this degree of freedom, and the master port's cumulative
    input energy [J]."""

    seq: int
    t_ns: int
    position_m: float
    energy_in_j: float


@dataclass(frozen=True, slots=True)
class SlavePacket:
    """Slave to master, once a period: sequence number, send time [ns, slave clock], the
    contact force [N] at the tool tip along this degree of freedom, and the slave port's
    cumulative input energy [J]."""

    seq: int
    t_ns: int
    force_n: float
    energy_in_j: float


@dataclass(frozen=True, slots=True)
class Correction:
    """A controller's output: the corrected ``value`` (force [N] or velocity [m/s]) and the
    energy [J] it dissipated this sample."""

    value: float
    dissipated_j: float


class PassivityObserver:
    """The energy flow through one port of the network, sampled every ``dt_s`` [s]."""

    def __init__(self, dt_s: float) -> None:
        self._dt = dt_s
        self._energy = PortEnergy()

    @property
    def energy(self) -> PortEnergy:
        """Cumulative input and output energy [J] so far."""
        return self._energy

    def observe(self, power_out_w: float) -> PortEnergy:
        """Add one sample of the power [W] flowing out of the network through this port
        (negative when it flows in); returns the new totals."""
        return self.add(power_out_w * self._dt)

    def add(self, work_out_j: float) -> PortEnergy:
        """Add the energy [J] that left the network through this port over a step of any
        length (negative when it came in); returns the new totals."""
        e = self._energy
        if work_out_j >= 0.0:
            self._energy = PortEnergy(e.e_in_j, e.e_out_j + work_out_j)
        else:
            self._energy = PortEnergy(e.e_in_j - work_out_j, e.e_out_j)
        return self._energy


def _dissipate(effort: float, flow: float, port: PortEnergy, received_in_j: float,
               dt_s: float, correct_effort: bool) -> Correction:
    # Output this sample would bring the port's output energy to e_out + effort*flow*dt; any
    # excess over what the other side put in is removed by a damping (on the effort) or an
    # admittance (on the flow) just large enough, so the budget is met with equality.
    excess = port.e_out_j + max(effort * flow, 0.0) * dt_s - received_in_j
    if excess <= 0.0:
        return Correction(effort if correct_effort else flow, 0.0)
    other = flow if correct_effort else effort
    if other == 0.0:  # no motion (or no force): this sample outputs nothing anyway
        return Correction(effort if correct_effort else flow, 0.0)
    gain = excess / (other * other * dt_s)
    own = effort if correct_effort else flow
    return Correction(own - gain * other, excess)


def impedance_pc(force_n: float, velocity_m_s: float, port: PortEnergy,
                 received_in_j: float, dt_s: float) -> Correction:
    """The master side's controller: the force [N] to display on a device moving at
    ``velocity_m_s`` [m/s], damped so that the master port's output energy, this sample
    included, stays within ``received_in_j`` [J] (the slave port's input energy, as last
    received). ``port`` is the master port's observed energy before this sample."""
    return _dissipate(force_n, velocity_m_s, port, received_in_j, dt_s, correct_effort=True)


def admittance_pc(velocity_m_s: float, force_n: float, port: PortEnergy,
                  received_in_j: float, dt_s: float) -> Correction:
    """The slave side's controller: the velocity [m/s] to command against the force
    ``force_n`` [N] the robot exerts at the port, slowed so that the slave port's output
    energy, this sample included, stays within ``received_in_j`` [J] (the master port's
    input energy, as last received). ``port`` is the slave port's observed energy before
    this sample."""
    return _dissipate(force_n, velocity_m_s, port, received_in_j, dt_s, correct_effort=False)
