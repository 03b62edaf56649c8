"""``bench haptics``: a force loop over the Rome-Beijing 5G path, with and without passivity.

Simulated time, deterministic by seed; one degree of freedom, the wall's normal (the
device's x axis), with a 1:1 motion scale. Every 1 ms period:

- a hand (a spring ``HAND_N_M`` and damper ``HAND_N_S_M`` on the stylus: our choice, a
  relaxed grip) pulls the ``SimulatedTouch`` towards a target that moves at
  ``APPROACH_M_S`` to ``PRESS_M`` beyond the wall, stays there until ``PRESS_END_S``,
  then comes back to the start at ``RETREAT_M_S`` and stays in free space until ``END_S``;
- the master sends the device's position and its port's input energy through the forward
  direction of the channel; the displayed force is the returned contact force through the
  impedance-type passivity controller, times ``FORCE_SCALE``, within the device's limits;
- the slave's commanded position follows the last master position received, no faster
  than the safety supervisor's default speed limit, slowed by the admittance-type passivity
  controller; the tool tip is a mass under a critically damped PD servo at 150 rad/s, as
  the MuJoCo model's actuators (``robots/sim/model.py``: ``_ARM_OMEGA = 150`` rad/s,
  ``dampratio="1"``, ``kp = armature * omega^2`` with the insertion joint's armature 0.5
  kg), pressed on a wall of ``WALL_N_M``; its contact force and the slave port's input
  energy return through the reverse direction.

The force scale is a power scale the surgeon asks for, outside the network: the master
port's force and energies are counted in tip units (the force felt over ``FORCE_SCALE``),
so that the network compares like with like; counted in the hand's units, the slave could
spend only a tenth of the energy it takes to press, and the tool would barely touch.

The channel is the ``rome-beijing`` profile's ``5g`` path with its one-way delay replaced by
half the rung's round trip: its jitter (2 ms, correlated over 10 ms), loss (0.1 %) and
bandwidth cap stay. Each rung reports:

- ``passive``: the network (channel and controllers) never generated more than
  ``ENERGY_TOL_J`` of energy: at every sample, the energy out of both ports minus the
  energy into them (``energy_generated_j``, the maximum over the run);
- ``oscillation_pp_n``: the peak-to-peak contact force at the tip [N] over the last
  ``STEADY_S`` of the press, and never sooner than 1 s after the first contact (the
  press's rise is not an oscillation);
- ``transparency``: the force felt over ``FORCE_SCALE`` times the force at the tip, both
  averaged over the last second of the press (1 is perfect);
- ``drift_mm``: the distance [mm] between the master's and the slave's positions at the
  end, after 1.5 s at rest in free space;
- ``press_drift_mm``: the master's minus the slave's position [mm] at the end of the
  press, where the passivity controller may hold the slave back (its price);
- ``stable``: ``passive`` and ``oscillation_pp_n`` at most ``OSCILLATION_BOUND_N``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from telesurgery.bench.machine import machine_info
from telesurgery.config import SafetyConfig
from telesurgery.haptics import (
    MasterPacket,
    PassivityObserver,
    PortEnergy,
    SlavePacket,
    admittance_pc,
    impedance_pc,
)
from telesurgery.input.haptic import TOUCH_LIMITS, HapticState, SimulatedTouch, Vec3
from telesurgery.link.impairment import DelayLine, ImpairmentModel
from telesurgery.link.profiles import load_profile

RTTS_MS: Final = (0, 70, 135, 300, 700)
PROFILE: Final = "rome-beijing"
PATH: Final = "5g"
PERIOD_NS: Final = 1_000_000
DT_S: Final = 1e-3
PACKET_BYTES: Final = 48
"""Size [bytes] of one packet on the wire: a sequence number, a time, a value, an energy
and headers (our estimate; only the bandwidth cap reads it)."""

WALL_N_M: Final = 10_000.0
"""Stiffness [N/m] of the wall the tool presses on."""
WALL_AT_M: Final = 0.010
"""Where the wall is [m] along the device's x axis, from where both sides start."""
FORCE_SCALE: Final = 0.1
"""Force felt per force at the tip: the device's 3.3 N peak shows 33 N at the tip. With the
servo in series with the wall (5.3 kN/m) the hand feels 0.53 N/mm, within the Touch's
1.02-2.31 N/mm of renderable stiffness."""
SLAVE_KG: Final = 0.5
"""Mass [kg] of the tool along the wall's normal: the insertion joint's armature in the
MuJoCo model (``_OUTER_ARMATURE[2]``)."""
SERVO_RAD_S: Final = 150.0
"""Bandwidth [rad/s] of the slave's position servo (``_ARM_OMEGA`` of the MuJoCo model)."""
KP_N_M: Final = SLAVE_KG * SERVO_RAD_S**2
KD_N_S_M: Final = 2.0 * SLAVE_KG * SERVO_RAD_S  # critically damped, as dampratio="1"
HAND_N_M: Final = 50.0
"""Stiffness [N/m] of the hand holding the stylus (our choice: a relaxed grip)."""
HAND_N_S_M: Final = 2.0
"""Damping [N s/m] of the hand (our choice)."""
PRESS_M: Final = 0.020
"""How far beyond the wall [m] the hand's target goes: about 1 N of hand force, 0.7 N
felt in steady contact (the rest is the device's friction), within the Touch's 0.88 N
continuous force."""
APPROACH_M_S: Final = 0.01
"""Speed [m/s] of the hand's target towards the wall (our choice: a careful approach)."""
RETREAT_M_S: Final = 0.03
"""Speed [m/s] of the hand's target back into free space."""
PRESS_END_S: Final = 6.0
"""When the hand lets go [s]; its target has been still since 3 s."""
END_S: Final = 8.5
"""End of the run [s]: 1.5 s at rest in free space."""
STEADY_S: Final = 2.0
"""The last seconds of the press [s] that judge oscillation (the target still for 1 s
before them)."""
ENERGY_TOL_J: Final = 1e-3
"""Energy [J] the network may generate before a rung is not passive."""
OSCILLATION_BOUND_N: Final = 0.5
"""Peak-to-peak contact force [N] at the tip above which a press oscillates."""


@dataclass(frozen=True, slots=True)
class _Rung:
    rtt_ms: int
    passivity: bool


def _target_m(t_s: float) -> float:
    """The hand's target [m] at ``t_s``: out to the press, then back to the start."""
    far = WALL_AT_M + PRESS_M
    if t_s < PRESS_END_S:
        return min(far, APPROACH_M_S * t_s)
    return max(0.0, far - RETREAT_M_S * (t_s - PRESS_END_S))


def _hand_n(tip: HapticState, target_x_m: float) -> Vec3:
    """The hand's force [N] on the stylus: towards ``target_x_m`` on x, holding y and z."""
    (x, y, z), (vx, vy, vz) = tip.position_m, tip.velocity_m_s
    return (HAND_N_M * (target_x_m - x) - HAND_N_S_M * vx,
            -HAND_N_M * y - HAND_N_S_M * vy, -HAND_N_M * z - HAND_N_S_M * vz)


def _run(rung: _Rung, seed: int, duration_s: float) -> dict[str, Any]:
    path = load_profile(PROFILE).path(PATH)[1].with_delay(rung.rtt_ms / 2.0)
    fwd = DelayLine[MasterPacket](ImpairmentModel(path.forward, seed=seed))
    rev = DelayLine[SlavePacket](ImpairmentModel(path.reverse, seed=seed + 1))
    v_max = SafetyConfig().max_linear_speed_m_s
    device = SimulatedTouch()
    obs_m, obs_s = PassivityObserver(DT_S), PassivityObserver(DT_S)
    # What each side last heard from the other (cumulative energy: the newest packet wins).
    # Power out of the network, +x into the wall: at the master the felt force in tip units
    # times the device's velocity (negative while the hand pushes into the felt force); at
    # the slave the contact force times the commanded velocity (positive while pressing).
    f_heard, es_heard, seq_s = 0.0, 0.0, -1
    xm_heard, em_heard, seq_m = 0.0, 0.0, -1
    x_sd = x_s = v_s = contact = 0.0
    generated = 0.0
    press_drift = 0.0
    contact_n: list[float] = []
    felt_n: list[float] = []
    first_contact: int | None = None
    ticks = round(duration_s / DT_S)
    for n in range(ticks):
        now = n * PERIOD_NS
        t_s = n * DT_S
        # Master: display the returned force, damped by its controller, within the device.
        state = device.read()
        xm, vm = state.position_m[0], state.velocity_m_s[0]
        for sp in rev.arrived(now):
            if sp.seq > seq_s:
                seq_s, f_heard, es_heard = sp.seq, sp.force_n, sp.energy_in_j
        force = -f_heard
        if rung.passivity:
            c = impedance_pc(force, vm, obs_m.energy, es_heard, DT_S)
            force = c.value
        felt = device.command_force((FORCE_SCALE * force, 0.0, 0.0))[0]
        e_m = obs_m.observe(felt / FORCE_SCALE * vm)
        fwd.send(now, PACKET_BYTES, MasterPacket(n, now, xm, e_m.e_in_j))
        device.step(_hand_n(device.exact(), _target_m(t_s)))
        # Slave: follow the master, slowed by its controller; the servo pushes the tool.
        for mp in fwd.arrived(now):
            if mp.seq > seq_m:
                seq_m, xm_heard, em_heard = mp.seq, mp.position_m, mp.energy_in_j
        v_sd = max(-v_max, min(v_max, (xm_heard - x_sd) / DT_S))
        if rung.passivity:
            c = admittance_pc(v_sd, contact, obs_s.energy, em_heard, DT_S)
            v_sd = c.value
        e_s = obs_s.observe(contact * v_sd)
        x_sd += v_sd * DT_S
        servo = KP_N_M * (x_sd - x_s) + KD_N_S_M * (v_sd - v_s)
        v_s += (servo - contact) / SLAVE_KG * DT_S
        x_s += v_s * DT_S
        contact = WALL_N_M * max(0.0, x_s - WALL_AT_M)
        rev.send(now, PACKET_BYTES, SlavePacket(n, now, contact, e_s.e_in_j))
        generated = max(generated, e_m.e_out_j + e_s.e_out_j - e_m.e_in_j - e_s.e_in_j)
        if n == round(PRESS_END_S / DT_S) - 1:
            press_drift = device.exact().position_m[0] - x_s
        if first_contact is None and contact > 0.0:
            first_contact = n
        contact_n.append(contact)
        felt_n.append(-felt)
    return _metrics(rung, contact_n, felt_n, first_contact, generated,
                    drift_m=(press_drift, device.exact().position_m[0] - x_s),
                    energy=(obs_m.energy, obs_s.energy), lost=(fwd.lost, rev.lost),
                    sent=fwd.sent)


def _metrics(rung: _Rung, contact_n: list[float], felt_n: list[float],
             first_contact: int | None, generated: float, *,
             drift_m: tuple[float, float], energy: tuple[PortEnergy, PortEnergy],
             lost: tuple[int, int], sent: int
             ) -> dict[str, Any]:
    press_end = round(PRESS_END_S / DT_S)
    start = press_end - round(STEADY_S / DT_S)
    window = ([] if first_contact is None else
              contact_n[max(start, first_contact + round(1.0 / DT_S)):press_end])
    oscillation = max(window) - min(window) if window else 0.0
    last = slice(press_end - round(1.0 / DT_S), press_end)
    tip = sum(contact_n[last]) / (last.stop - last.start)
    felt = sum(felt_n[last]) / (last.stop - last.start)
    transparency = felt / (FORCE_SCALE * tip) if tip > 0.0 else 0.0
    passive = generated <= ENERGY_TOL_J
    master, slave = energy
    return {
        "rtt_ms": rung.rtt_ms,
        "passivity": rung.passivity,
        "passive": passive,
        "oscillation_pp_n": round(oscillation, 4),
        "transparency": round(transparency, 3),
        "drift_mm": round(abs(drift_m[1]) * 1e3, 3),
        "stable": passive and bool(window) and oscillation <= OSCILLATION_BOUND_N,
        "energy_generated_j": round(generated, 6),
        "press_drift_mm": round(drift_m[0] * 1e3, 3) + 0.0,  # no "-0.0"
        "master_energy_j": {"in": round(master.e_in_j, 6), "out": round(master.e_out_j, 6)},
        "slave_energy_j": {"in": round(slave.e_in_j, 6), "out": round(slave.e_out_j, 6)},
        "contact_at_s": None if first_contact is None else round(first_contact * DT_S, 3),
        "max_contact_n": round(max(contact_n), 3),
        "max_felt_n": round(max(abs(f) for f in felt_n), 3),
        "mean_contact_n": round(tip, 3),
        "mean_felt_n": round(felt, 3),
        "packets_lost": {"forward": lost[0], "reverse": lost[1], "sent_each_way": sent},
    }


def bench_haptics(seed: int = 0, rtts_ms: Iterable[int] = RTTS_MS,
                  duration_s: float = END_S) -> dict[str, Any]:
    """Every rung (each round trip [ms], passivity on then off) and the settings."""
    rungs = [_run(_Rung(rtt, on), seed, duration_s) for rtt in rtts_ms for on in (True, False)]
    return {
        "rungs": rungs,
        "settings": {
            "profile": PROFILE, "path": PATH, "seed": seed, "period_ms": DT_S * 1e3,
            "duration_s": duration_s, "wall_n_m": WALL_N_M, "force_scale": FORCE_SCALE,
            "slave_kg": SLAVE_KG, "servo_rad_s": SERVO_RAD_S, "hand_n_m": HAND_N_M,
            "hand_n_s_m": HAND_N_S_M, "press_mm": PRESS_M * 1e3,
            "device_peak_n": TOUCH_LIMITS.peak_force_n,
            "device_continuous_n": TOUCH_LIMITS.continuous_force_n,
            "energy_tol_j": ENERGY_TOL_J, "oscillation_bound_n": OSCILLATION_BOUND_N,
        },
        "machine": machine_info(),
    }


def haptics_table(result: dict[str, Any]) -> str:
    """The rungs as a short text table."""
    lines = ["rtt_ms passivity passive osc_pp_N transparency drift_mm generated_mJ stable"]
    for r in result["rungs"]:
        lines.append(f"{r['rtt_ms']:>6} {'on' if r['passivity'] else 'off':>9} "
                     f"{'yes' if r['passive'] else 'NO':>7} {r['oscillation_pp_n']:>8.3f} "
                     f"{r['transparency']:>12.3f} {r['drift_mm']:>8.3f} "
                     f"{r['energy_generated_j'] * 1e3:>12.3f} "
                     f"{'yes' if r['stable'] else 'NO':>6}")
    return "\n".join(lines)
