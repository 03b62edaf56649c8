"""``bench_video`` on the real simulated scene: every stage measured, the picture intact."""

from __future__ import annotations

import pytest

from telesurgery.bench.pipeline import bench_video
from telesurgery.errors import VideoError

STAGES = ("render_ms", "convert_ms", "encode_ms", "decode_ms", "capture_to_decoded_ms")


def test_reports_every_stage_per_size() -> None:
    result = bench_video(sizes=[(320, 240), (480, 270)], seconds=1.0)
    assert result["gl_backend"] in ("egl", "osmesa")
    assert set(result["sizes"]) == {"320x240", "480x270"}
    for size in result["sizes"].values():
        assert size["frames"] >= 3
        for stage in STAGES:
            stats = size[stage]
            assert stats["count"] == size["frames"]
            assert 0.0 < stats["p50"] <= stats["p99"] <= stats["max"]
        # End to end covers the stages after rendering.
        assert size["capture_to_decoded_ms"]["p50"] >= size["encode_ms"]["p50"]
        assert 0 < size["bytes_per_frame"]["p50"] <= size["bytes_per_frame"]["max"]
        assert size["psnr_db"]["min"] >= 30.0  # as in test_encoder
        assert 0.0 < size["achieved_fps"] <= 30.0 * 1.1
        assert size["cpu_cores"] > 0.0


def test_duration_must_be_positive() -> None:
    with pytest.raises(VideoError, match="bench duration must be positive"):
        bench_video(seconds=0.0)
