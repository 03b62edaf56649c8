"""The operation streamed to an audience: the observer gateway, its HLS tier, the watermark."""

from telesurgery.audience.gateway import Gateway, GatewayOptions
from telesurgery.audience.hls import HlsPackager
from telesurgery.audience.watermark import Watermark, read_watermarks, watermarked

__all__ = ["Gateway", "GatewayOptions", "HlsPackager", "Watermark", "read_watermarks",
           "watermarked"]
