"""Settings of the endoscope video stream, as a pydantic model for the node configs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator


class VideoConfig(BaseModel):
    """Endoscope camera and encoder settings.

    ``width`` x ``height`` [px] defaults to 640x480, the largest size measured to
    hold 30 fps beside the 1 kHz servo loop on a 2-core machine with software
    OpenGL (see ``telesurgery bench video``); 1280x720 and 1920x1080 are for
    machines with a GPU. ``fps`` [1/s]; ``asap`` renders back to back instead of
    at ``fps`` (shorter motion-to-photon, a busy core). ``bitrate_bps`` [bit/s]:
    None scales 2 Mbit/s at 640x480@30 by pixel rate. ``threads``: slices and
    colour conversion. ``render_threads``: Mesa llvmpipe's threads (``LP_NUM_THREADS``)
    when rendering in software, set before the patient's first OpenGL context; None
    takes the environment's ``LP_NUM_THREADS``, else half the cores (at least one):
    on the 2-core reference machine one thread rendered 640x480 in ~24 ms at 0.83
    cores for the whole patient node, two in ~18 ms at 1.06 cores, and the cores
    left over serve the servo loop, Zenoh and the encoder. ``samples``: multisample
    anti-aliasing of the render; 0 (none) because on software OpenGL MuJoCo's 4x
    tripled the frame time; 4 looks smoother on a GPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    camera: str = "ecm"
    width: Annotated[int, Field(ge=16, le=8192)] = 640
    height: Annotated[int, Field(ge=16, le=8192)] = 480
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 30.0
    asap: bool = False
    bitrate_bps: Annotated[int, Field(ge=50_000)] | None = None
    threads: Annotated[int, Field(ge=1, le=16)] = 2
    samples: Annotated[int, Field(ge=0, le=16)] = 0
    render_threads: Annotated[int, Field(ge=1, le=64)] | None = None

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"{v} px is odd; YUV 4:2:0 needs even sizes, e.g. 640x480")
        return v


__all__ = ["VideoConfig"]
