"""The operation streamed to an audience: the observer gateway, its HLS tier, the watermark."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telesurgery.audience.gateway import Gateway, GatewayOptions
    from telesurgery.audience.hls import HlsPackager
    from telesurgery.audience.watermark import Watermark, read_watermarks, watermarked

# Loaded on first use: the bench's crowd imports only ``audience.client``, and pulling in
# the gateway (Zenoh, FFmpeg, the page server) cost its process seconds of start-up on a
# loaded machine, during which 200 viewers were not yet watching.
_WHERE = {"Gateway": "gateway", "GatewayOptions": "gateway", "HlsPackager": "hls",
          "Watermark": "watermark", "read_watermarks": "watermark",
          "watermarked": "watermark"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["Gateway", "GatewayOptions", "HlsPackager", "Watermark", "read_watermarks",
           "watermarked"]
