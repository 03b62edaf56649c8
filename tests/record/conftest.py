"""Fixtures of the recording tests: free loopback ports and Zenoh sessions on them."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from telesurgery.config import ZenohConfig
from telesurgery.messages import (
    JawServoJP,
    MeasuredCF,
    MeasuredCP,
    MeasuredJS,
    Message,
    SafetyCause,
    SafetyEvent,
    ServoCP,
    Status,
    VideoFrame,
)
from telesurgery.transport.session import open_session
from telesurgery.types import ArmMode, OperatingState, Pose, SafetyState, Wrench


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def zenoh_sessions() -> Iterator[Callable[[ZenohConfig], Any]]:
    """Opens real Zenoh sessions (scouting off) and closes them after the test."""
    opened: list[Any] = []

    def open_(cfg: ZenohConfig) -> Any:
        z = open_session(cfg)
        opened.append(z)
        return z

    yield open_
    for z in reversed(opened):
        z.close()


H264_SIZE = (64, 48)


@pytest.fixture(scope="session")
def h264_size() -> tuple[int, int]:
    """Width and height [px] of the ``h264_frames``."""
    return H264_SIZE


@pytest.fixture(scope="session")
def h264_frames() -> list[tuple[bytes, bool]]:
    """Twelve real H.264 Annex-B frames (libx264 ultrafast, zerolatency, IDR every 5),
    each with whether it is a keyframe."""
    width, height = H264_SIZE
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=5"}
    out: list[tuple[bytes, bool]] = []
    for i in range(12):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, (4 * i) % width:(4 * i) % width + 8] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    return out


@pytest.fixture
def sample_messages(h264_frames: list[tuple[bytes, bool]]) -> list[tuple[str, Message]]:
    """One message of every type on its key in session ``or1``, with realistic values."""
    t = 1_700_000_000_123
    q = (0.9238795325112867, 0.0, 0.3826834323650898, 0.0)
    pose = Pose((0.0123456789, -0.0234567891, -0.1345678912), q)
    frame, key = h264_frames[0]
    w, h = H264_SIZE
    return [
        ("telesurgery/or1/psm1/servo_cp", Message(0xDEADBEEF12345678, 1, t,
                                                  ServoCP("psm1", pose, t - 500, True))),
        ("telesurgery/or1/psm1/jaw/servo_jp", Message(2, 1, t + 1, JawServoJP("psm1", 0.3, t))),
        ("telesurgery/or1/psm1/measured_cp", Message(3, 7, t + 2, MeasuredCP(
            "psm1", pose, pose, 0.25, 6, t - 900, OperatingState.ENABLED, ArmMode.FOLLOWING))),
        ("telesurgery/or1/psm2/measured_js", Message(3, 8, t + 3, MeasuredJS(
            "psm2", (0.1, -0.2, 0.13, 1.0, 0.01, -0.02, 0.3), (0.0,) * 7))),
        ("telesurgery/or1/psm2/measured_cf", Message(3, 9, t + 4, MeasuredCF(
            "psm2", Wrench((0.5, -0.25, 1.5), (0.0, 0.01, -0.02))))),
        ("telesurgery/or1/safety/state", Message(3, 2, t + 5, SafetyEvent(
            SafetyState.HOLD, SafetyState.ENGAGED, OperatingState.ENABLED, SafetyCause.WATCHDOG,
            "watchdog 50 ms", "psm1", ArmMode.FOLLOWING, ArmMode.HELD))),
        ("telesurgery/or1/patient/status", Message(3, 3, t + 6, Status(
            {"servo": {"rate_hz": 999.8, "late_p99_us": 41}, "owner": "surgeon"}))),
        ("telesurgery/or1/ecm/video", Message(4, 1, t + 7, VideoFrame(
            "ecm", w, h, key, 0, t + 6, 5, t - 100, frame))),
    ]


class SmallDisk:
    """A tmpfs of its own (``path``) that a filler file fills to the last byte and frees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        """Write the filler until the file system refuses (ENOSPC), page by page, then byte
        by byte, so that nothing is left for anyone."""
        with open(self._filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 1):
                block = bytes(size)
                try:
                    while True:
                        f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def free(self) -> None:
        """Remove the filler: the file system has room again."""
        self._filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 1 MiB tmpfs at ``tmp_path/disk``, unmounted afterwards: a real full disk (ENOSPC)
    needs a file system of its own, and mounting one needs root."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root, to mount a small tmpfs")
    path = tmp_path / "disk"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a full disk: {done.stderr.strip()[:200]}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
