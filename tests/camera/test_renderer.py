"""Headless rendering of a named camera: the right picture, the right way up, clear errors."""

from __future__ import annotations

import threading
from typing import Any

import mujoco
import numpy as np
import pytest

from telesurgery.camera import BACKENDS, CameraRenderer, RGBImage, gl_backend, renderer
from telesurgery.errors import VideoError


def _mean(image: RGBImage, rows: slice, cols: slice) -> Any:
    return image[rows, cols].reshape(-1, 3).mean(axis=0)


def test_picks_a_headless_backend() -> None:
    assert gl_backend() in BACKENDS


def test_renders_what_the_camera_sees_top_row_first(scene: tuple[Any, Any]) -> None:
    model, data = scene
    with CameraRenderer(model, "front", 320, 240) as r:
        r.update_scene(data)
        image = r.render()
        assert r.gl_renderer  # e.g. "llvmpipe (...)" without a GPU
    assert image.shape == (240, 320, 3)
    assert image.dtype == np.uint8
    red = _mean(image, slice(100, 140), slice(40, 120))
    green = _mean(image, slice(100, 140), slice(200, 280))
    floor = _mean(image, slice(225, 240), slice(0, 320))
    assert red[0] > 2 * max(red[1], red[2]), red
    assert green[1] > 2 * max(green[0], green[2]), green
    assert floor[2] > 2 * floor[0], floor  # the floor is at the bottom: not upside down


def test_render_shows_the_scene_as_of_update_scene(scene: tuple[Any, Any]) -> None:
    model, data = scene
    with CameraRenderer(model, "front", 160, 120) as r:
        r.update_scene(data)
        before = r.render()
        data.qpos[0] = 0.25  # the green box rises
        mujoco.mj_forward(model, data)
        assert np.array_equal(r.render(), before)  # nothing copied yet
        r.update_scene(data)
        after = r.render()
    assert not np.array_equal(after, before)
    assert _green_rows(after).mean() < _green_rows(before).mean()  # higher in the picture


def _green_rows(image: RGBImage) -> Any:
    px = image.astype(int)
    green = (px[..., 1] > 2 * px[..., 0]) & (px[..., 1] > 2 * px[..., 2])
    rows = np.nonzero(green.any(axis=1))[0]
    assert rows.size, "the green box is not in the picture"
    return rows


def test_sizes_beyond_the_model_offscreen_buffer(scene: tuple[Any, Any]) -> None:
    model, data = scene
    assert model.vis.global_.offwidth < 1280
    with CameraRenderer(model, "side", 1280, 720) as r:
        r.update_scene(data)
        assert r.render().shape == (720, 1280, 3)


def test_shadows_and_reflections_are_off(scene: tuple[Any, Any]) -> None:
    with CameraRenderer(scene[0], "front", 64, 48) as r:
        flags = r._scene.flags
        assert not flags[mujoco.mjtRndFlag.mjRND_SHADOW]
        assert not flags[mujoco.mjtRndFlag.mjRND_REFLECTION]


def test_unknown_camera_lists_the_cameras(scene: tuple[Any, Any]) -> None:
    with pytest.raises(VideoError, match="no camera 'endoscope'; cameras: front, side"):
        CameraRenderer(scene[0], "endoscope")


def test_bad_size_is_refused(scene: tuple[Any, Any]) -> None:
    with pytest.raises(VideoError, match="frame size 0x480 is out of range"):
        CameraRenderer(scene[0], "front", 0, 480)


def test_one_thread_owns_the_context(scene: tuple[Any, Any]) -> None:
    model, data = scene
    with CameraRenderer(model, "front", 64, 48) as r:
        r.update_scene(data)
        errors: list[BaseException] = []

        def other() -> None:
            try:
                r.render()
            except VideoError as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(30.0)
        assert not t.is_alive(), "the other thread's render did not return within 30 s"
        assert len(errors) == 1
        assert "another thread" in str(errors[0])
    with pytest.raises(VideoError, match="closed"):
        r.render()


def test_no_backend_is_one_line_naming_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(renderer, "BACKENDS", ("nogl",))
    monkeypatch.setitem(renderer._PACKAGES, "nogl", "libnogl0")
    gl_backend.cache_clear()
    try:
        with pytest.raises(VideoError) as err:
            gl_backend()
    finally:
        gl_backend.cache_clear()
    message = str(err.value)
    assert "\n" not in message
    assert "nogl: " in message  # the reason the probe failed
    assert "apt-get install" in message
    assert "libnogl0" in message
