"""The endoscope's pinhole intrinsics: where a point of the camera frame lands in the image.

MuJoCo renders a pinhole camera with square pixels, the principal point at the image's
centre and no lens distortion, set by its vertical field of view; the camera frame here
has OpenCV's axes (x right, y down, z forward), as the arms' registrations do. The
patient node publishes these with its video (``PatientVideo.status``), so a console can
draw on the picture what it knows in the camera frame: the predictive display's ghost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from telesurgery.errors import ConfigError
from telesurgery.geometry import Vec3

_FIELDS = ("width", "height", "fx", "fy", "cx", "cy")


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Image size [px], focal lengths and principal point [px]."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> Intrinsics:
        """A MuJoCo camera's: vertical field of view ``fovy_deg`` [deg] over ``height``."""
        if width <= 0 or height <= 0 or not 0.0 < fovy_deg < 180.0:
            raise ConfigError(f"camera of {width}x{height} px and {fovy_deg} deg field of view: "
                              "give a positive size and a field of view in (0, 180) degrees")
        f = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
        return cls(width, height, f, f, width / 2.0, height / 2.0)

    @classmethod
    def parse(cls, value: object) -> Intrinsics | None:
        """From ``as_dict``'s form (a peer's status); None if it is not that."""
        if not isinstance(value, dict) or any(k not in value for k in _FIELDS):
            return None
        try:
            out = cls(int(value["width"]), int(value["height"]), float(value["fx"]),
                      float(value["fy"]), float(value["cx"]), float(value["cy"]))
        except (TypeError, ValueError):
            return None
        numbers = (out.fx, out.fy, out.cx, out.cy)
        if out.width <= 0 or out.height <= 0 or not all(map(math.isfinite, numbers)):
            return None
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def project(self, p: Vec3) -> tuple[float, float] | None:
        """The pixel (u right, v down) [px] of ``p`` [m, camera frame]; None behind the camera."""
        x, y, z = p
        if not z > 1e-6:
            return None
        return (self.fx * x / z + self.cx, self.fy * y / z + self.cy)


__all__ = ["Intrinsics"]
