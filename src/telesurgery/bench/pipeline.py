"""``telesurgery bench video``: render, convert, encode and decode times per frame size.

Each size runs the whole patient-to-console chain in one thread, paced at the
target rate as the camera would be: the arms move (every limited joint swings
through part of its range) so that frames differ, the endoscope renders,
the encoder converts and encodes, the decoder decodes. Transport is left out
(Zenoh on loopback adds well under a millisecond; ``bench control`` measures
it). The machine's load average is recorded beside the numbers because
software rendering shares the cores with everything else.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import mujoco
import numpy as np

from telesurgery.camera.camera import DEFAULT_CAMERA, EndoscopeCamera
from telesurgery.camera.renderer import gl_backend
from telesurgery.clock import Rate, now_ns
from telesurgery.errors import VideoError
from telesurgery.robots.sim.robot import SimRobot
from telesurgery.stats import summarize
from telesurgery.video.decoder import H264Decoder
from telesurgery.video.encoder import H264Encoder
from telesurgery.video.quality import psnr

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (960, 540), (1280, 720), (1920, 1080))
PSNR_EVERY = 10
"""PSNR costs about as much as a decode: sample one frame in this many."""

SceneFactory = Callable[[], tuple[Any, Any]]
"""Returns a fresh (MjModel, MjData) with the endoscope camera, in its start pose."""


class _Motion:
    """Swings every limited hinge and slide joint about its start position at 0.5 Hz, by 5 %
    of its range: the instruments move in view without leaving it."""

    def __init__(self, model: Any, data: Any) -> None:
        moving = {int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)}
        joints = [j for j in range(model.njnt)
                  if model.jnt_limited[j] and int(model.jnt_type[j]) in moving]
        self._adr = np.array([model.jnt_qposadr[j] for j in joints], dtype=int)
        lo, hi = model.jnt_range[joints, 0], model.jnt_range[joints, 1]
        self._lo, self._hi = lo, hi
        self._mid = data.qpos[self._adr].copy()
        self._amp = 0.05 * (hi - lo)
        self._phase = np.linspace(0.0, math.pi, len(joints))

    def apply(self, model: Any, data: Any, t_s: float) -> None:
        swing = self._amp * np.sin(2 * math.pi * 0.5 * t_s + self._phase)
        data.qpos[self._adr] = np.clip(self._mid + swing, self._lo, self._hi)
        mujoco.mj_forward(model, data)


def _ms(values: list[int]) -> dict[str, float]:
    return summarize(np.asarray(values, dtype=float), scale=1e-6)


def bench_size(scene: SceneFactory, width: int, height: int, seconds: float, *,
               fps: float = 30.0, camera: str = DEFAULT_CAMERA) -> dict[str, Any]:
    """Run the chain at ``width`` x ``height`` [px] for ``seconds`` [s] at ``fps`` [1/s]."""
    model, data = scene()
    motion = _Motion(model, data)
    cam = EndoscopeCamera(model, data, camera=camera, width=width, height=height, fps=fps)
    encoder = H264Encoder(width, height, fps=fps)
    decoder = H264Decoder()
    render, convert, encode, decode, chain, sizes = [], [], [], [], [], []
    quality: list[float] = []
    try:
        gl_renderer = cam.open().gl_renderer
        cpu0, start = time.process_time(), now_ns()
        rate = Rate(fps)
        while now_ns() - start < seconds * 1e9:
            motion.apply(model, data, (now_ns() - start) * 1e-9)
            frame = cam.capture()
            out = encoder.encode(frame.image)
            got = decoder.decode(out.data, out.index)
            if got is None:
                raise VideoError(f"frame {out.index} did not decode at {width}x{height}; "
                                 "the encoder and decoder disagree")
            chain.append(now_ns() - frame.capture_ns)
            render.append(frame.capture_ns - frame.snapshot_ns)
            convert.append(out.convert_ns)
            encode.append(out.encode_ns)
            decode.append(got.decode_ns)
            sizes.append(len(out.data))
            if out.index % PSNR_EVERY == 0:
                quality.append(psnr(frame.image, got.image))
            rate.sleep()
        wall_s = (now_ns() - start) * 1e-9
        cpu_s = time.process_time() - cpu0
    finally:
        cam.close()
    n = len(sizes)
    work_ms = np.add.reduce([render, convert, encode, decode], dtype=float) * 1e-6
    return {
        "frames": n,
        "achieved_fps": round(n / wall_s, 2),
        "max_fps": round(1e3 / float(np.median(work_ms)), 1),
        "missed_deadlines": rate.missed,
        "render_ms": _ms(render),
        "convert_ms": _ms(convert),
        "encode_ms": _ms(encode),
        "decode_ms": _ms(decode),
        "capture_to_decoded_ms": _ms(chain),
        "bytes_per_frame": {"p50": int(np.median(sizes)), "max": max(sizes),
                            "mean": round(float(np.mean(sizes)))},
        "bitrate_bps": {"target": encoder.bitrate_bps,
                        "measured": round(8 * sum(sizes) / wall_s)},
        "psnr_db": {"min": round(min(quality), 2), "mean": round(float(np.mean(quality)), 2)},
        "cpu_cores": round(cpu_s / wall_s, 3),
        "gl_renderer": gl_renderer,
    }


def bench_video(sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, seconds: float = 5.0, *,
                fps: float = 30.0, scene: SceneFactory | None = None,
                camera: str = DEFAULT_CAMERA) -> dict[str, Any]:
    """Per size: render, convert, encode, decode [ms] (p50, p99, p99.9, max), bytes per
    frame, achieved and attainable fps, PSNR [dB], CPU [cores]. ``scene`` defaults to the
    simulated peg-transfer scene."""
    if not seconds > 0.0:
        raise VideoError(f"bench duration must be positive, got {seconds} s")
    factory = scene if scene is not None else _sim_scene
    load_before = os.getloadavg()
    results = {f"{w}x{h}": bench_size(factory, w, h, seconds, fps=fps, camera=camera)
               for w, h in sizes}
    return {
        "fps_target": fps,
        "seconds_per_size": seconds,
        "gl_backend": gl_backend(),
        "llvmpipe_threads": os.environ.get("LP_NUM_THREADS", "all cores"),
        "load_avg_1m": {"before": round(load_before[0], 2),
                        "after": round(os.getloadavg()[0], 2)},
        "sizes": results,
    }


def _sim_scene() -> tuple[Any, Any]:
    robot = SimRobot()  # the arms at their home poses
    return robot.model, robot.data


__all__ = ["DEFAULT_SIZES", "SceneFactory", "bench_size", "bench_video"]
