"""Picture quality: PSNR of a decoded frame against the frame that was rendered."""

from __future__ import annotations

import math

import numpy as np

from telesurgery.camera.renderer import RGBImage
from telesurgery.errors import VideoError


def psnr(reference: RGBImage, decoded: RGBImage) -> float:
    """Peak signal-to-noise ratio [dB] over all channels of two uint8 images (inf if equal)."""
    if reference.shape != decoded.shape:
        raise VideoError(f"cannot compare images of shapes {reference.shape} and "
                         f"{decoded.shape}; decode at the rendered size")
    mse = float(np.mean((reference.astype(np.float32) - decoded.astype(np.float32)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


__all__ = ["psnr"]
