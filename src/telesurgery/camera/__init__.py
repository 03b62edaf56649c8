"""The endoscope camera: headless offscreen rendering of the MuJoCo scene, paced capture."""

from telesurgery.camera.camera import (
    DEFAULT_CAMERA,
    DEFAULT_FPS,
    AppliedCommand,
    CapturedFrame,
    EndoscopeCamera,
)
from telesurgery.camera.renderer import BACKENDS, CameraRenderer, RGBImage, camera_names, gl_backend

__all__ = [
    "BACKENDS",
    "DEFAULT_CAMERA",
    "DEFAULT_FPS",
    "AppliedCommand",
    "CameraRenderer",
    "CapturedFrame",
    "EndoscopeCamera",
    "RGBImage",
    "camera_names",
    "gl_backend",
]
