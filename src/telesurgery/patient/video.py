"""The patient node's endoscope: camera thread -> H.264 -> ``<session>/ecm/video`` on Zenoh.

One thread below the servo loop's priority (``clock.set_bulk_thread``: still
real-time, so that no other process can preempt it while it holds the GIL the
loop needs) renders the scene, encodes and publishes each frame, stamped with
the newest command the safety supervisor applied across the arms when the
scene was copied. The heavy work happens in the worker threads of Mesa,
libx264 and swscale, outside the GIL; they are made at normal priority
(``clock.normal_priority_workers``), so they neither spend the loops'
real-time bandwidth nor starve the rest of the machine. A
keyframe request on ``<video key>/keyframe`` (a console joins, or lost a
frame) makes the next frame an IDR. A camera that fails (no OpenGL, say) is
logged and reported; the robot goes on without video.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import zenoh

from telesurgery.camera.camera import CapturedFrame, EndoscopeCamera
from telesurgery.clock import normal_priority_workers, set_bulk_thread
from telesurgery.config import VideoConfig
from telesurgery.messages import Message
from telesurgery.stats import Samples
from telesurgery.transport.keys import Keys
from telesurgery.transport.qos import Stream
from telesurgery.transport.session import Publisher, RejectCounter, subscribe
from telesurgery.video.encoder import H264Encoder
from telesurgery.video.latency import CommandWait
from telesurgery.video.pipeline import KEYFRAME_REQUEST_SUFFIX, VideoSender

if TYPE_CHECKING:
    from telesurgery.patient.node import PatientNode

log = logging.getLogger(__name__)

RENDER_THREADS_ENV = "LP_NUM_THREADS"
"""Mesa llvmpipe's thread count, read when the first OpenGL context is made."""


@runtime_checkable
class RenderedScene(Protocol):
    """A robot whose scene the endoscope can render: MuJoCo ``model`` and ``data``, and the
    ``lock`` its physics step holds (``SimRobot``)."""

    model: Any
    data: Any
    lock: contextlib.AbstractContextManager[Any]


class PatientVideo:
    """Renders, encodes and publishes the endoscope view of ``scene`` per ``config``.

    ``applied()`` returns (seq, input-sample time [ns]) of the newest command applied;
    ``command_period_ns`` is the servo period [ns] (applied targets change at most once
    per tick).
    """

    def __init__(self, config: VideoConfig, scene: RenderedScene,
                 applied: Callable[[], tuple[int, int]], command_period_ns: int) -> None:
        self.config = config
        self._scene = scene
        self._applied = applied
        self.render_ns = Samples()
        self.convert_ns = Samples()
        self.encode_ns = Samples()
        self.bytes = Samples()
        self.command_wait = CommandWait(command_period_ns)
        self.camera: EndoscopeCamera | None = None
        self.sender: VideoSender | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subs: list[zenoh.Subscriber[None]] = []
        self._pub: Publisher | None = None

    def start(self, z: zenoh.Session, keys: Keys, session_id: int,
              rejects: RejectCounter) -> None:
        """Declare the video publisher and the keyframe-request subscriber; start the camera."""
        cfg = self.config
        # Mesa reads it when the process makes its first context (the camera thread's).
        if cfg.render_threads is not None:
            os.environ[RENDER_THREADS_ENV] = str(cfg.render_threads)
        else:
            os.environ.setdefault(RENDER_THREADS_ENV, str(max(1, (os.cpu_count() or 2) // 2)))
        self._pub = Publisher(z, keys.video, Stream.VIDEO, session_id)
        self._subs.append(subscribe(z, f"{keys.video}/{KEYFRAME_REQUEST_SUFFIX}",
                                    self._on_keyframe_request, rejects))
        self.camera = EndoscopeCamera(self._scene.model, self._scene.data, camera=cfg.camera,
                                      width=cfg.width, height=cfg.height,
                                      fps=None if cfg.asap else cfg.fps,
                                      lock=self._scene.lock, applied=self._applied,
                                      samples=cfg.samples)
        self._thread = threading.Thread(target=self._run, name="patient-video", daemon=True)
        self._thread.start()

    def _on_keyframe_request(self, msg: Message, _received_ns: int) -> None:
        # Before the encoder exists a request needs no answer: its first frame is an IDR.
        if self.sender is not None:
            self.sender.on_keyframe_request(msg.body)

    def _run(self) -> None:
        # Before the GL context and the codecs start their workers, which inherit the
        # name: ``bench system`` tells the camera's CPU from the patient's by it.
        set_bulk_thread()
        cfg, camera, pub = self.config, self.camera, self._pub
        assert camera is not None
        assert pub is not None
        try:
            with normal_priority_workers():
                camera.open()
                encoder = H264Encoder(cfg.width, cfg.height, fps=cfg.fps,
                                      bitrate_bps=cfg.bitrate_bps, threads=cfg.threads)
                # Colour conversion makes its threads on first use.
                encoder.convert(np.zeros((cfg.height, cfg.width, 3), np.uint8))
            self.sender = VideoSender(encoder, cfg.camera, pub.put)
            camera.run(self._on_frame, self._stop)
        except Exception as exc:
            # Video is lost, the robot is not: the servo loop goes on without it.
            self.error = str(exc)
            log.error("endoscope video stopped: %s", exc)

    def _on_frame(self, frame: CapturedFrame) -> None:
        sender = self.sender
        assert sender is not None
        sender(frame)
        encoded = sender.last
        assert encoded is not None
        self.render_ns.add(frame.capture_ns - frame.snapshot_ns)
        self.convert_ns.add(encoded.convert_ns)
        self.encode_ns.add(encoded.encode_ns)
        self.bytes.add(len(encoded.data))
        self.command_wait.frame(frame.snapshot_ns, frame.applied_sample_ns)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the camera thread and undeclare (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the camera thread did not stop within %.1f s", timeout_s)
            self._thread = None
        for s in self._subs:
            s.undeclare()
        self._subs.clear()
        if self._pub is not None:
            self._pub.close()
            self._pub = None

    def status(self) -> dict[str, Any]:
        """Live figures: frames, keyframes, missed deadlines, recent render time [ms]."""
        cam, sender = self.camera, self.sender
        out: dict[str, Any] = {
            "width": self.config.width, "height": self.config.height,
            "fps_target": None if self.config.asap else self.config.fps,
            "frames": cam.frames if cam else 0,
            "missed": cam.missed if cam else 0,
            "keyframes": sender.encoder.keyframes if sender else 0,
            "render_ms": self.render_ns.summary(1e-6, last=90),
        }
        if cam is not None:
            out["intrinsics"] = cam.intrinsics.as_dict()
        if self.error is not None:
            out["error"] = self.error
        return out

    def report(self) -> dict[str, Any]:
        """Final figures: stage durations [ms] over the whole run, bytes per frame."""
        out = self.status()
        out.pop("render_ms")
        out["render_threads"] = os.environ.get(RENDER_THREADS_ENV, "all cores")
        out["stages_ms"] = {
            "command_to_snapshot": self.command_wait.summary(),
            "render": self.render_ns.summary(1e-6),
            "convert": self.convert_ns.summary(1e-6),
            "encode": self.encode_ns.summary(1e-6),
        }
        out["bytes_per_frame"] = self.bytes.summary(1.0, digits=0)
        return out


def newest_applied(applied: Callable[[str], tuple[int, int]],
                   arms: list[str]) -> Callable[[], tuple[int, int]]:
    """(seq, sample time [ns]) of the most recent command applied across ``arms``."""

    def newest() -> tuple[int, int]:
        return max((applied(arm) for arm in arms), key=lambda a: a[1])

    return newest


def start_video(z: zenoh.Session, node: PatientNode) -> PatientVideo | None:
    """Start the endoscope of ``node`` on ``z``; None when its config turns video off or
    its robot has no scene to render (a real robot brings its own camera)."""
    cfg = node.config
    if not cfg.video.enabled:
        return None
    if not isinstance(node.robot, RenderedScene):
        log.info("robot %s has no rendered scene: no endoscope video from this node",
                 type(node.robot).__name__)
        return None
    video = PatientVideo(cfg.video, node.robot,
                         newest_applied(node.supervisor.applied, cfg.arms),
                         round(1e9 / cfg.servo_rate_hz))
    video.start(z, node.keys, node.session_id, node.rejects)
    return video


__all__ = ["RENDER_THREADS_ENV", "PatientVideo", "RenderedScene", "newest_applied",
           "start_video"]
