"""The endoscope camera loop: renders the scene at a fixed rate or as fast as it can.

At a fixed rate the loop sleeps to absolute deadlines (``clock.Rate``), so the
frame period does not drift with render time and a stall skips frames rather
than bursting. ``fps=None`` renders back to back: a frame then waits for the
next capture only as long as one render lasts, not half a period on average,
which shortens motion-to-photon at the price of a busy core.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telesurgery.camera.intrinsics import Intrinsics
from telesurgery.camera.renderer import CameraRenderer, RGBImage
from telesurgery.clock import Rate, name_os_thread, now_ns
from telesurgery.errors import VideoError

log = logging.getLogger(__name__)

DEFAULT_CAMERA = "ecm"
DEFAULT_FPS = 30.0

AppliedCommand = Callable[[], tuple[int, int]]
"""Returns (sequence, input-sample time [ns]) of the last command applied to the robot."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One rendered frame.

    ``index`` counts from 0; ``snapshot_ns``: when the scene state was copied
    [ns]; ``capture_ns``: when rendering finished [ns]; ``applied_seq`` and
    ``applied_sample_ns`` [ns]: the last command applied at the snapshot (0, 0
    before any). ``image`` is read-only.
    """

    index: int
    image: RGBImage
    snapshot_ns: int
    capture_ns: int
    applied_seq: int
    applied_sample_ns: int


def _no_command() -> tuple[int, int]:
    return (0, 0)


class EndoscopeCamera:
    """Captures frames of ``camera`` in ``model``/``data`` at ``fps`` (None: back to back),
    with ``samples`` anti-aliasing samples (``CameraRenderer``).

    ``lock`` is held while the scene is copied from ``data`` (a few tens of
    microseconds), never while rendering: pass the lock that guards the
    physics step. The renderer lives in the thread that first captures, so
    ``capture()`` and ``run()`` belong to one thread (``start()`` makes one).
    """

    def __init__(self, model: Any, data: Any, *, camera: str = DEFAULT_CAMERA,
                 width: int = 640, height: int = 480, fps: float | None = DEFAULT_FPS,
                 lock: contextlib.AbstractContextManager[Any] | None = None,
                 applied: AppliedCommand = _no_command, samples: int = 0) -> None:
        if fps is not None and not fps > 0.0:
            raise VideoError(f"camera rate must be positive, got {fps} fps; use e.g. 30, or "
                             "None to render as fast as possible")
        self.camera = camera
        self.width = width
        self.height = height
        self.fps = fps
        self.frames = 0
        self.missed = 0
        self.error: BaseException | None = None
        self._model = model
        self._data = data
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._applied = applied
        self._samples = samples
        self._renderer: CameraRenderer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def intrinsics(self) -> Intrinsics:
        """The camera's pinhole intrinsics at this image size, from the model's field of view."""
        return Intrinsics.from_fovy(self.width, self.height,
                                    float(self._model.cam(self.camera).fovy[0]))

    def open(self) -> CameraRenderer:
        """The renderer, created on first use in the calling thread."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self._model, self.camera, self.width, self.height,
                                            samples=self._samples)
        return self._renderer

    def capture(self) -> CapturedFrame:
        """Copy the scene under the lock, render it, and stamp the frame."""
        renderer = self.open()
        with self._lock:
            renderer.update_scene(self._data)
            seq, sample_ns = self._applied()
            snapshot = now_ns()
        image = renderer.render()
        image.flags.writeable = False
        frame = CapturedFrame(self.frames, image, snapshot, now_ns(), seq, sample_ns)
        self.frames += 1
        return frame

    def run(self, on_frame: Callable[[CapturedFrame], None], stop: threading.Event) -> None:
        """Capture and hand each frame to ``on_frame`` until ``stop`` is set, then close."""
        try:
            self.open()  # before the clock starts: making the context takes a few periods
            rate = Rate(self.fps) if self.fps is not None else None
            while not stop.is_set():
                on_frame(self.capture())
                if rate is not None:
                    rate.sleep()
                    self.missed = rate.missed
        finally:
            self.close()

    def start(self, on_frame: Callable[[CapturedFrame], None]) -> None:
        """Run the loop in a daemon thread; an exception stops it and lands in ``error``."""
        if self._thread is not None:
            raise VideoError("the endoscope camera is already running; stop() it first")
        self._stop.clear()

        def loop() -> None:
            name_os_thread()
            try:
                self.run(on_frame, self._stop)
            except BaseException as exc:
                self.error = exc
                log.error("endoscope camera stopped: %s", exc)

        self._thread = threading.Thread(target=loop, name=f"camera-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread started by ``start()`` and wait for it up to ``timeout_s`` [s]."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise VideoError(f"the camera thread did not stop within {timeout_s} s; "
                                 "is on_frame blocked?")
            self._thread = None

    def close(self) -> None:
        """Free the renderer (from the thread that used it)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


__all__ = ["DEFAULT_CAMERA", "DEFAULT_FPS", "AppliedCommand", "CapturedFrame", "EndoscopeCamera"]
