"""The scripted input device: file format, interpolation, errors, and the replay through Teleop."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from telesurgery.console.teleop import Teleop
from telesurgery.errors import ConfigError
from telesurgery.geometry import quat_angle, rotvec_to_quat
from telesurgery.input.scripted import COLUMNS, ScriptedDevice, load_trajectory
from telesurgery.messages import JawServoJP, ServoCP
from telesurgery.types import Pose

HEADER = ",".join(COLUMNS)
EXAMPLE = Path(__file__).parents[2] / "configs" / "trajectories" / "circle_reindex.csv"
REGISTRATION = Pose((0.02, -0.01, 0.18), rotvec_to_quat((2.5, 0.4, -0.3)))
TOOL0 = Pose((0.01, -0.02, -0.12), rotvec_to_quat((0.1, 0.2, 0.3)))


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "trajectory.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(t: float, arm: str, pos: Sequence[float], rotz: float = 0.0, *,
        grip: float = 0.5, clutch: int = 0) -> str:
    q = (math.cos(rotz / 2), 0.0, 0.0, math.sin(rotz / 2))
    return f"{t},{arm},{pos[0]},{pos[1]},{pos[2]},{q[0]},{q[1]},{q[2]},{q[3]},{grip},{clutch}"


# ---- interpolation ---------------------------------------------------------------------------

def test_waypoints_are_reproduced_and_interpolated(tmp_path: Path) -> None:
    dev = ScriptedDevice(write(tmp_path, "# two samples", HEADER,
                               row(0.0, "psm1", (0.0, 0.0, 0.3), 0.0, grip=0.0, clutch=0),
                               row(2.0, "psm1", (0.02, -0.04, 0.3), 1.0, grip=1.0, clutch=1)))
    start = dev.sample_at("psm1", 0.0)
    assert start.pose.position == (0.0, 0.0, 0.3)
    assert not start.clutch
    mid = dev.sample_at("psm1", 0.5)
    assert mid.pose.position == pytest.approx((0.005, -0.01, 0.3))
    assert quat_angle(mid.pose.orientation, rotvec_to_quat((0.0, 0.0, 0.25))) < 1e-12
    assert mid.grip == pytest.approx(0.25)
    assert not mid.clutch  # the clutch keeps the earlier sample's state
    end = dev.sample_at("psm1", 2.0)
    assert end.pose.position == pytest.approx((0.02, -0.04, 0.3))
    assert end.clutch


def test_slerp_takes_the_shorter_way(tmp_path: Path) -> None:
    # 4 rad about z is the same as -2.28 rad: halfway is -1.14 rad, not +2 rad.
    dev = ScriptedDevice(write(tmp_path, HEADER, row(0.0, "psm1", (0.0, 0.0, 0.3), 0.0),
                               row(1.0, "psm1", (0.0, 0.0, 0.3), 4.0)))
    mid = dev.sample_at("psm1", 0.5)
    half = (4.0 - 2.0 * math.pi) / 2.0
    assert quat_angle(mid.pose.orientation, rotvec_to_quat((0.0, 0.0, half))) < 1e-12


def test_read_starts_at_the_first_call_and_holds_clutched_at_the_end(tmp_path: Path) -> None:
    dev = ScriptedDevice(write(tmp_path, HEADER, row(0.0, "psm1", (0.0, 0.0, 0.3)),
                               row(1.0, "psm1", (0.01, 0.0, 0.3))))
    t0 = 5_000_000_000
    first = dev.read(t0)["psm1"]
    assert first.t_ns == t0
    assert first.pose.position == (0.0, 0.0, 0.3)
    assert dev.read(t0 + 500_000_000)["psm1"].pose.position == pytest.approx((0.005, 0.0, 0.3))
    assert not dev.read(t0 + 1_000_000_000)["psm1"].clutch
    late = dev.read(t0 + 3_000_000_000)["psm1"]
    assert late.clutch
    assert late.pose.position == pytest.approx((0.01, 0.0, 0.3))


def test_loop_starts_over(tmp_path: Path) -> None:
    dev = ScriptedDevice(write(tmp_path, HEADER, row(0.0, "psm1", (0.0, 0.0, 0.3)),
                               row(1.0, "psm1", (0.01, 0.0, 0.3))), loop=True)
    dev.read(0)
    again = dev.read(1_250_000_000)["psm1"]
    assert not again.clutch
    assert again.pose.position == pytest.approx((0.0025, 0.0, 0.3))


def test_arms_interleave_and_keep_their_order(tmp_path: Path) -> None:
    dev = ScriptedDevice(write(tmp_path, HEADER, row(0.0, "psm2", (0.1, 0.0, 0.3)),
                               row(0.0, "psm1", (-0.1, 0.0, 0.3)),
                               row(1.0, "psm2", (0.2, 0.0, 0.3)),
                               row(2.0, "psm1", (-0.3, 0.0, 0.3))))
    assert dev.arms == ("psm2", "psm1")
    assert dev.duration_s == 2.0
    samples = dev.read(0)
    samples = dev.read(1_500_000_000)
    assert samples["psm2"].pose.position[0] == pytest.approx(0.2)  # held after its last sample
    assert samples["psm1"].pose.position[0] == pytest.approx(-0.25)


def test_the_example_trajectory_loads() -> None:
    tracks = load_trajectory(EXAMPLE)
    assert set(tracks) == {"psm1", "psm2"}
    for points in tracks.values():
        assert any(p.clutch for p in points)
        assert not points[0].clutch
        assert points[0].pose.position == pytest.approx(points[-1].pose.position)


# ---- malformed files: one case per kind of error --------------------------------------------

GOOD = row(0.0, "psm1", (0.0, 0.0, 0.3))


@pytest.mark.parametrize(("lines", "message"), [
    ((), "no samples"),
    (("# only a comment", HEADER), "no samples"),
    (("t,arm,x,y,z,qw,qx,qy,qz,grip,clutch", GOOD), ":1: the first line must be the header"),
    ((HEADER, GOOD, "0.1,psm1,0,0,0.3,1,0,0,0,0.5"), ":3: 10 fields, expected 11"),
    ((HEADER, "0.0,psm1,zero,0,0.3,1,0,0,0,0.5,0"), ":2: x = 'zero' is not a number"),
    ((HEADER, "0.0,psm1,0,nan,0.3,1,0,0,0,0.5,0"), ":2: y = 'nan' is not finite"),
    ((HEADER, "-0.5,psm1,0,0,0.3,1,0,0,0,0.5,0"), ":2: t_s = -0.5 is negative"),
    ((HEADER, GOOD, row(1.0, "psm1", (0.0, 0.0, 0.3)), row(1.0, "psm1", (0.0, 0.0, 0.3))),
     ":4: t_s = 1.0 for psm1 does not increase"),
    ((HEADER, "0.0,psm 1,0,0,0.3,1,0,0,0,0.5,0"), ":2: arm 'psm 1' must be"),
    ((HEADER, "0.0,psm1,0,0,0.3,1,1,0,0,0.5,0"), ":2: quaternion (qw, qx, qy, qz) has norm"),
    ((HEADER, "0.0,psm1,0,0,0.3,1,0,0,0,1.5,0"), ":2: grip = 1.5 is outside [0, 1]"),
    ((HEADER, "0.0,psm1,0,0,0.3,1,0,0,0,0.5,yes"), ":2: clutch = 'yes' must be 0"),
], ids=["empty", "comments-only", "header", "field-count", "not-a-number", "not-finite",
        "negative-time", "time-not-increasing", "arm-name", "quaternion", "grip", "clutch"])
def test_malformed_file_names_the_line_and_the_problem(tmp_path: Path, lines: tuple[str, ...],
                                                       message: str) -> None:
    path = write(tmp_path, *lines)
    with pytest.raises(ConfigError) as info:
        ScriptedDevice(path)
    text = str(info.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such trajectory file"):
        ScriptedDevice(tmp_path / "absent.csv")


def test_undecodable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read it"):
        ScriptedDevice(path)


# ---- replay through the teleoperation pipeline ----------------------------------------------

def replay(dev: ScriptedDevice, seconds: float) -> dict[str, list[tuple[bool, ServoCP, float]]]:
    """Run Teleop at 1 kHz on a simulated clock with an arm that reaches every target at
    once; returns, per arm and tick, (hand clutch pressed, ServoCP sent, jaw sent)."""
    teleop = Teleop(dev)
    for arm in dev.arms:
        teleop.register(arm, REGISTRATION)
        teleop.observe(arm, TOOL0, 0.0)
    out: dict[str, list[tuple[bool, ServoCP, float]]] = {arm: [] for arm in dev.arms}
    for k in range(int(seconds * 1000)):
        samples = dev.read(k * 1_000_000)
        # As the console node steps them (always in control here).
        bodies = teleop.tick(samples, drive=True)
        servos = {b.arm: b for b in bodies if isinstance(b, ServoCP)}
        jaws = {b.arm: b.angle for b in bodies if isinstance(b, JawServoJP)}
        assert set(servos) == set(jaws) == set(dev.arms)
        for arm, servo in servos.items():
            out[arm].append((samples[arm].clutch, servo, jaws[arm]))
            teleop.observe(arm, servo.pose, jaws[arm])
    return out


def test_example_replay_holds_while_clutched_and_never_jumps() -> None:
    dev = ScriptedDevice(EXAMPLE)
    ticks = replay(dev, dev.duration_s + 0.5)
    for arm, series in ticks.items():
        poses = [REGISTRATION.compose(s.pose) for _, s, _ in series]
        for k in range(1, len(series)):
            pressed, servo, _ = series[k]
            assert servo.clutch == pressed
            if pressed:
                assert servo.pose == series[k - 1][1].pose, f"{arm} moved while clutched"
        # A 47 mm/s hand scaled by 0.2 moves the tool ~9.4 µm a tick; a jump would be mm.
        steps = [a.distance(b) for a, b in itertools.pairwise(poses)]
        assert max(steps) < 15e-6
        # The first circle (0.5-4.5 s) is 60 mm across for the hand: 12 mm for the tool.
        reach = max(poses[k].distance(poses[0]) for k in range(500, 4500))
        assert reach == pytest.approx(0.2 * 0.06, abs=0.1e-3)
        assert all(-0.2 <= jaw <= 1.0 for _, _, jaw in series)
        assert series[-1][1].clutch  # the replay ended: held with the clutch pressed


def test_tool_displacement_is_scaled_hand_displacement_across_a_reindex(
        tmp_path: Path) -> None:
    p0, d1, d2 = (0.0, 0.0, 0.3), (0.04, -0.03, 0.02), (-0.02, 0.05, 0.01)
    p1 = tuple(a + b for a, b in zip(p0, d1, strict=True))
    p2 = tuple(a + b for a, b in zip(p0, d2, strict=True))
    path = write(tmp_path, HEADER,
                 row(0.0, "psm1", p0), row(1.0, "psm1", p1),        # reach
                 row(3.0, "psm1", p1),                              # hold: the filter settles
                 row(3.5, "psm1", p1, clutch=1), row(4.0, "psm1", p0, clutch=1),  # re-index
                 row(4.5, "psm1", p0), row(5.5, "psm1", p2), row(7.5, "psm1", p2))
    series = replay(ScriptedDevice(path), 7.5)["psm1"]

    def view(k: int) -> Pose:
        return REGISTRATION.compose(series[k][1].pose)

    first = [a - b for a, b in zip(view(2999).position, view(0).position, strict=True)]
    assert first == pytest.approx([0.2 * v for v in d1], abs=1e-7)
    # While the hand went back under the clutch, the tool stayed; then it moved from there.
    assert view(4499) == view(3500)
    second = [a - b for a, b in zip(view(7499).position, view(4500).position, strict=True)]
    assert second == pytest.approx([0.2 * v for v in d2], abs=1e-7)
    assert quat_angle(view(7499).orientation, REGISTRATION.compose(TOOL0).orientation) < 1e-9
