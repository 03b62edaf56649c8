"""Offscreen rendering of a named MuJoCo camera into RGB arrays, headless (EGL or OSMesa).

The OpenGL context comes from MuJoCo's own EGL or OSMesa wrapper, chosen here
rather than by ``mujoco.Renderer``: that class takes its backend from
``MUJOCO_GL`` when ``mujoco`` is first imported, which in a node happens long
before the camera exists, and it cannot fall back. The choice:

1. ``MUJOCO_GL=egl`` or ``osmesa`` in the environment is obeyed;
2. otherwise EGL, then OSMesa, each tried once in a child process (PyOpenGL
   binds one platform per process, so a failed EGL could not be undone here).

EGL takes a GPU where the driver exposes one and Mesa's llvmpipe otherwise;
llvmpipe's thread count is Mesa's ``LP_NUM_THREADS`` (all cores by default).
Shadows and reflections are off: on llvmpipe they cost 2-3x the frame time.
Multisampling is off by default too: on llvmpipe MuJoCo's default 4x cost
3x the frame time at 640x480 (24.6 against 7.5 ms on one thread) for 40.8 dB
of difference, visible only as stair-stepped edges; a GPU can afford it.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import threading
from types import TracebackType
from typing import Any, Final, Self

import mujoco
import numpy as np
import numpy.typing as npt

from telesurgery.errors import VideoError

RGBImage = npt.NDArray[np.uint8]
"""An image [px] of shape (height, width, 3), RGB, row 0 at the top."""

BACKENDS: Final = ("egl", "osmesa")
_PACKAGES: Final = {"egl": "libegl1 libgl1-mesa-dri", "osmesa": "libosmesa6"}
_PROBE_TIMEOUT_S: Final = 60.0
_PROBE = (
    "import importlib, sys\n"
    "ctx = importlib.import_module('mujoco.' + sys.argv[1]).GLContext(16, 16)\n"
    "ctx.make_current()\n"
    "ctx.free()\n"
)


def _probe(backend: str) -> str | None:
    """None where ``backend`` makes a context in a fresh process, else the reason it did not."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, backend], env=env,
                              capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


@functools.cache
def gl_backend() -> str:
    """The OpenGL backend this process renders with: ``egl`` or ``osmesa``.

    Raises ``VideoError`` naming the Debian packages to install when neither works.
    """
    forced = os.environ.get("MUJOCO_GL", "").strip().lower()
    if forced in BACKENDS:
        return forced
    pinned = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if "OpenGL" in sys.modules and pinned in BACKENDS:
        # PyOpenGL is already bound to this platform in this process: no other can work.
        return pinned
    reasons = {}
    for backend in BACKENDS:
        reason = _probe(backend)
        if reason is None:
            return backend
        reasons[backend] = reason
    tried = "; ".join(f"{b}: {r}" for b, r in reasons.items())
    packages = " ".join(_PACKAGES.values())
    raise VideoError(f"no headless OpenGL for the endoscope camera ({tried}); install Mesa "
                     f"with 'apt-get install {packages}' or set MUJOCO_GL")


def _gl_context_class(backend: str) -> Any:
    try:
        return importlib.import_module(f"mujoco.{backend}").GLContext
    except (ImportError, OSError, AttributeError) as exc:
        raise VideoError(f"cannot load MuJoCo's {backend} OpenGL backend ({exc}); install "
                         f"'{_PACKAGES[backend]}' or choose another with MUJOCO_GL") from exc


def camera_names(model: Any) -> list[str]:
    """The named cameras of ``model``, in model order."""
    return [model.camera(i).name for i in range(model.ncam) if model.camera(i).name]


class CameraRenderer:
    """Renders one fixed camera of ``model`` at ``width`` x ``height`` [px] with ``samples``
    multisample anti-aliasing samples (0: none; it sets the model's ``offsamples``).

    ``update_scene(data)`` copies what is visible from ``data`` (tens of
    microseconds: do it under the lock that guards the physics step);
    ``render()`` draws that copy (milliseconds: no lock needed). The OpenGL
    context is current in one thread at a time: create, use and close the
    renderer in one thread.
    """

    def __init__(self, model: Any, camera: str, width: int = 640, height: int = 480, *,
                 samples: int = 0) -> None:
        if not 0 <= samples <= 16:
            raise VideoError(f"{samples} anti-aliasing samples is out of range; use 0 to 16 "
                             "(0 on software OpenGL, 4 on a GPU)")
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise VideoError(f"frame size {width}x{height} is out of range; use 16 to 8192 px "
                             "a side, e.g. 640x480")
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            raise VideoError(f"the model has no camera {camera!r}; cameras: "
                             f"{', '.join(camera_names(model)) or 'none'}")
        self.camera = camera
        self.width = width
        self.height = height
        self.backend = gl_backend()
        self._model = model
        self._thread = threading.get_ident()
        # The offscreen buffer must hold the frame; it is a visual setting only.
        vis = model.vis.global_
        model.vis.quality.offsamples = samples
        vis.offwidth = max(vis.offwidth, width)
        vis.offheight = max(vis.offheight, height)
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = cam_id
        self._option = mujoco.MjvOption()
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._raw: RGBImage = np.empty((height, width, 3), np.uint8)
        gl_context = _gl_context_class(self.backend)
        self._gl: Any = None
        self._mjr: Any = None
        try:
            self._gl = gl_context(vis.offwidth, vis.offheight)
            self._gl.make_current()
            self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        except Exception as exc:
            self.close()
            raise VideoError(f"cannot create the {self.backend} OpenGL context ({exc}); check "
                             f"the Mesa install ('{_PACKAGES[self.backend]}') or set "
                             "MUJOCO_GL to the other backend") from exc
        self.gl_renderer = self._query_renderer()

    def _query_renderer(self) -> str:
        # Imported late: PyOpenGL binds its platform at import, after the backend chose it.
        gl = importlib.import_module("OpenGL.GL")
        name = gl.glGetString(gl.GL_RENDERER)
        return name.decode() if isinstance(name, bytes) else "unknown"

    def update_scene(self, data: Any) -> None:
        """Copy the visible state of ``data`` into the scene (call under the physics lock)."""
        mujoco.mjv_updateScene(self._model, data, self._option, None, self._cam,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)

    def render(self) -> RGBImage:
        """Draw the last scene copy; a new (height, width, 3) RGB array, top row first."""
        if self._mjr is None:
            raise VideoError("the camera renderer is closed; create a new one")
        if threading.get_ident() != self._thread:
            raise VideoError("render() called from another thread than the one that created "
                             "the renderer; an OpenGL context belongs to one thread")
        self._gl.make_current()
        mujoco.mjr_render(self._rect, self._scene, self._mjr)
        mujoco.mjr_readPixels(self._raw, None, self._rect, self._mjr)
        # OpenGL reads bottom row first.
        return np.flipud(self._raw).copy()

    def close(self) -> None:
        """Free the OpenGL context (idempotent)."""
        if self._mjr is not None:
            self._gl.make_current()
            self._mjr.free()
            self._mjr = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["BACKENDS", "CameraRenderer", "RGBImage", "camera_names", "gl_backend"]
