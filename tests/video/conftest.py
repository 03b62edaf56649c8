"""Fixtures of the video tests: the scene of ``scene.py`` and a small renderer of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mujoco
import pytest

from telesurgery.camera import CameraRenderer

from .scene import SCENE


@pytest.fixture
def scene() -> tuple[Any, Any]:
    """(model, data) of the scene, forward kinematics done."""
    model = mujoco.MjModel.from_xml_string(SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


@pytest.fixture
def renderer(scene: tuple[Any, Any]) -> Iterator[CameraRenderer]:
    """A 320x240 renderer of the endoscope camera (small: fast on a loaded machine)."""
    with CameraRenderer(scene[0], "ecm", 320, 240) as r:
        yield r
