"""The camera loop: stamps, the physics lock, pacing to the target rate, stopping on errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from telesurgery.camera import CapturedFrame, EndoscopeCamera
from telesurgery.errors import VideoError

WAIT_S = 60.0  # generous: the machine is shared and renders in software


def test_capture_stamps_the_frame_under_the_lock(scene: tuple[Any, Any]) -> None:
    model, data = scene
    lock = threading.Lock()
    held: list[bool] = []
    applied = iter([(7, 1_000), (9, 2_000)])

    def last_applied() -> tuple[int, int]:
        held.append(lock.locked())
        return next(applied)

    cam = EndoscopeCamera(model, data, camera="front", width=160, height=120, lock=lock,
                          applied=last_applied)
    try:
        a, b = cam.capture(), cam.capture()
    finally:
        cam.close()
    assert held == [True, True]
    assert not lock.locked()
    assert (a.index, a.applied_seq, a.applied_sample_ns) == (0, 7, 1_000)
    assert (b.index, b.applied_seq, b.applied_sample_ns) == (1, 9, 2_000)
    assert a.snapshot_ns <= a.capture_ns <= b.snapshot_ns <= b.capture_ns
    assert a.image.shape == (120, 160, 3)
    assert not a.image.flags.writeable


def _collect(cam: EndoscopeCamera, n: int) -> list[CapturedFrame]:
    got: list[CapturedFrame] = []
    done = threading.Event()

    def on_frame(frame: CapturedFrame) -> None:
        got.append(frame)
        if len(got) >= n:
            done.set()

    cam.start(on_frame)
    try:
        assert done.wait(WAIT_S), f"only {len(got)} of {n} frames in {WAIT_S} s"
    finally:
        cam.stop()
    assert cam.error is None
    return got


def test_paced_loop_never_runs_faster_than_its_rate(scene: tuple[Any, Any]) -> None:
    cam = EndoscopeCamera(*scene, camera="front", width=160, height=120, fps=20.0)
    frames = _collect(cam, 9)
    assert [f.index for f in frames[:9]] == list(range(9))
    # Frame i is captured after i sleeps to absolute deadlines i periods of 50 ms past the
    # start, which comes just before frame 0's snapshot (half a period allowed for a
    # preemption in between); load can only make it later.
    assert frames[8].snapshot_ns - frames[0].snapshot_ns >= 8 * 50e6 - 25e6


def test_as_fast_as_possible_loop_delivers_frames(scene: tuple[Any, Any]) -> None:
    cam = EndoscopeCamera(*scene, camera="front", width=160, height=120, fps=None)
    frames = _collect(cam, 5)
    assert [f.index for f in frames[:5]] == list(range(5))


def test_an_error_in_on_frame_stops_the_loop(scene: tuple[Any, Any]) -> None:
    cam = EndoscopeCamera(*scene, camera="front", width=160, height=120, fps=None)
    stopped = threading.Event()

    def broken(frame: CapturedFrame) -> None:
        stopped.set()
        raise RuntimeError("encoder gone")

    cam.start(broken)
    assert stopped.wait(WAIT_S)
    cam.stop()
    assert isinstance(cam.error, RuntimeError)
    assert cam.frames == 1


def test_rate_must_be_positive(scene: tuple[Any, Any]) -> None:
    with pytest.raises(VideoError, match=r"camera rate must be positive, got 0\.0 fps"):
        EndoscopeCamera(*scene, camera="front", fps=0.0)
