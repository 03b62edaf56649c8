"""The per-tick Teleop pipeline: holding until ready, feedback to the device, arm routing,
the software clutch while another console is in control.

Driven as the console node drives it (``console/node.py``, ``ConsoleNode._loop``): one
``Teleop.step_arm`` per arm and tick, in the pipeline's arm order, the bodies of all arms
sent together (one bundle); not in control, each sample clutched in software and nothing
sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pytest

from telesurgery.console.teleop import Teleop
from telesurgery.geometry import rotvec_to_quat
from telesurgery.input.base import HandSample
from telesurgery.input.scripted import COLUMNS, ScriptedDevice
from telesurgery.messages import Command, JawServoJP, ServoCP
from telesurgery.types import ArmMode, Pose

REGISTRATION = Pose((0.02, -0.01, 0.18), rotvec_to_quat((2.5, 0.4, -0.3)))
TOOL = Pose((0.01, -0.02, -0.12), rotvec_to_quat((0.1, 0.2, 0.3)))


class RecordingDevice(ScriptedDevice):
    """A scripted hand that also keeps what the console fed back to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[tuple[str, Pose, float]] = []

    def feedback(self, arm: str, tip_in_view: Pose, jaw: float) -> None:
        self.seen.append((arm, tip_in_view, jaw))


@pytest.fixture
def device(tmp_path: Path) -> RecordingDevice:
    path = tmp_path / "still.csv"
    path.write_text(",".join(COLUMNS) + "\n"
                    "0.0,psm1,-0.05,0,0.3,1,0,0,0,0.5,0\n"
                    "0.0,psm2,0.05,0,0.3,1,0,0,0,0.5,0\n"
                    "1.0,psm1,-0.04,0,0.3,1,0,0,0,0.5,0\n"
                    "1.0,psm2,0.06,0,0.3,1,0,0,0,0.5,0\n", encoding="utf-8")
    return RecordingDevice(path)


def tick(teleop: Teleop, samples: Mapping[str, HandSample],
         drive: bool = True) -> list[Command]:
    """One tick of the console node's loop: what it sends as one bundle."""
    return teleop.tick(samples, drive)


def by_arm(bodies: list[Command]) -> dict[str, list[Command]]:
    out: dict[str, list[Command]] = {}
    for b in bodies:
        out.setdefault(b.arm, []).append(b)
    return out


def test_holds_with_clutched_heartbeats_until_registration_and_pose_are_known(
        device: RecordingDevice) -> None:
    teleop = Teleop(device)
    assert teleop.arms == ("psm1", "psm2")
    for k, prepare in enumerate(("nothing", "registration", "both")):
        if prepare == "registration":
            teleop.register("psm1", REGISTRATION)
        elif prepare == "both":
            teleop.observe("psm1", TOOL, 0.4)
        bodies = by_arm(tick(teleop, device.read(k * 1_000_000)))
        # psm2 never got its registration or pose: heartbeats only, nothing moves.
        assert len(bodies["psm2"]) == 1
        beat = bodies["psm2"][0]
        assert isinstance(beat, ServoCP)
        assert beat.clutch
        assert not teleop.engaged("psm2")
        if prepare == "both":
            servo, jaw = bodies["psm1"]
            assert isinstance(servo, ServoCP)
            assert isinstance(jaw, JawServoJP)
            assert not servo.clutch
            assert servo.pose.distance(TOOL) < 1e-12
            assert teleop.engaged("psm1")
        else:
            assert [type(b) for b in bodies["psm1"]] == [ServoCP]
            assert isinstance(bodies["psm1"][0], ServoCP)
            assert bodies["psm1"][0].clutch


def test_feedback_is_the_measured_tool_in_the_view_frame(device: RecordingDevice) -> None:
    teleop = Teleop(device)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", TOOL, 0.4)
    tick(teleop, device.read(0))
    assert len(device.seen) == 1
    arm, tip, jaw = device.seen[0]
    assert arm == "psm1"
    assert jaw == 0.4
    expected = REGISTRATION.compose(TOOL)
    assert tip.distance(expected) < 1e-12


def test_unknown_arms_and_missing_samples_are_skipped(device: RecordingDevice) -> None:
    teleop = Teleop(device)
    teleop.register("ecm", REGISTRATION)
    teleop.observe("ecm", TOOL, 0.0)
    samples = device.read(0)
    bodies = tick(teleop, {"psm2": samples["psm2"]})
    assert {b.arm for b in bodies} == {"psm2"}


def test_non_finite_measurement_holds_counts_and_gives_no_feedback(
        device: RecordingDevice) -> None:
    teleop = Teleop(device)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", Pose((math.nan, 0.0, 0.0)), 0.4)
    bodies = by_arm(tick(teleop, device.read(0)))
    servo = bodies["psm1"][0]
    assert isinstance(servo, ServoCP)
    assert servo.clutch
    assert teleop.rejected == 1
    assert device.seen == []


def _servo(bodies: list[Command], arm: str) -> ServoCP:
    return next(b for b in bodies if isinstance(b, ServoCP) and b.arm == arm)


def test_a_machine_device_re_clutches_after_a_hold_and_resumes_where_the_tool_stopped(
        device: RecordingDevice) -> None:
    teleop = Teleop(device, tremor=None)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", TOOL, 0.4, ArmMode.FOLLOWING)
    t = 0
    for _ in range(300):  # engaged and moving with the scripted hand
        t += 1_000_000
        moving = _servo(tick(teleop, device.read(t)), "psm1")
    assert not moving.clutch
    stopped = Pose((0.0, 0.0, -0.1), TOOL.orientation)  # where the supervisor held the tool
    teleop.observe("psm1", stopped, 0.4, ArmMode.HELD)
    for _ in range(5):  # clutch stays pressed while the arm is still reported held
        t += 1_000_000
        assert _servo(tick(teleop, device.read(t)), "psm1").clutch
    teleop.observe("psm1", stopped, 0.4, ArmMode.ARMED)
    t += 1_000_000
    resumed = _servo(tick(teleop, device.read(t)), "psm1")
    assert not resumed.clutch
    # Re-anchored on the tool where it stopped: the first target is the tool, no jump.
    assert resumed.pose.distance(stopped) < 1e-4


def test_a_person_is_not_re_clutched_behind_their_back(device: RecordingDevice) -> None:
    device.auto_reclutch = False
    teleop = Teleop(device, tremor=None)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", TOOL, 0.4, ArmMode.FOLLOWING)
    tick(teleop, device.read(1_000_000))
    teleop.observe("psm1", TOOL, 0.4, ArmMode.HELD)
    for k in range(2, 10):
        assert not _servo(tick(teleop, device.read(k * 1_000_000)), "psm1").clutch
    assert teleop.held("psm1")


def test_not_in_control_sends_nothing_and_resumes_where_the_tool_is(
        device: RecordingDevice) -> None:
    teleop = Teleop(device, tremor=None)
    teleop.register("psm1", REGISTRATION)
    teleop.observe("psm1", TOOL, 0.4, ArmMode.FOLLOWING)
    driven = _servo(tick(teleop, device.read(0)), "psm1")
    assert not driven.clutch
    assert teleop.engaged("psm1")
    # Another console takes control: the hand goes on moving (5 mm along x in half a
    # second of the script), and nothing leaves this console.
    t = 0
    for _ in range(500):
        t += 1_000_000
        assert tick(teleop, device.read(t), drive=False) == []
    # Control comes back: the hand re-anchored while clutched in software, so the first
    # target is the tool where it is, not 5 mm x scale away from it.
    t += 1_000_000
    resumed = _servo(tick(teleop, device.read(t)), "psm1")
    assert not resumed.clutch
    assert resumed.pose.distance(TOOL) < 1e-4
    # And it follows the hand from there on.
    for _ in range(200):
        t += 1_000_000
        moved = _servo(tick(teleop, device.read(t)), "psm1")
    assert moved.pose.distance(TOOL) > 1e-4
