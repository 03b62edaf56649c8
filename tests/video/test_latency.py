"""Glass-to-glass and motion-to-photon bookkeeping, and the summary's video section."""

from __future__ import annotations

import numpy as np
import pytest

from telesurgery.video.latency import (
    CommandWait,
    LatencyBook,
    commands_first_shown,
    video_summary,
)

MS = 1_000_000


def test_a_frame_first_shows_the_commands_applied_since_the_previous_one() -> None:
    times = commands_first_shown(100 * MS, 104 * MS, MS)
    assert times.tolist() == [104 * MS, 103 * MS, 102 * MS, 101 * MS]
    assert commands_first_shown(0, 104 * MS, MS).tolist() == [104 * MS]  # no previous frame
    assert commands_first_shown(100 * MS, 100 * MS, MS).size == 0  # nothing new applied
    assert commands_first_shown(0, 0, MS).size == 0  # nothing applied yet
    # A gap longer than the span (a hold, a restart) is not filled with commands never sent.
    assert commands_first_shown(100 * MS, 300 * MS, MS, max_span_ns=100 * MS).tolist() == \
        [300 * MS]


def test_the_book_measures_every_command_to_the_frame_that_first_shows_it() -> None:
    book = LatencyBook(MS)
    # Frame 1 shows the command of t=10 ms, frame 2 (painted at 60 ms) those of 11..40 ms.
    book.shown(capture_ns=20 * MS, applied_sample_ns=10 * MS, shown_ns=25 * MS,
               stages={"decode": 2 * MS})
    book.shown(capture_ns=50 * MS, applied_sample_ns=40 * MS, shown_ns=60 * MS,
               stages={"decode": 4 * MS})
    # A frame with nothing new applied adds glass-to-glass only.
    book.shown(capture_ns=80 * MS, applied_sample_ns=40 * MS, shown_ns=83 * MS)
    s = book.summary()
    assert s["frames"] == 3
    # Two frame intervals between the first paint (25 ms) and the last (83 ms).
    assert s["fps"] == pytest.approx(2 / 0.058, abs=0.01)
    assert LatencyBook(MS).fps() == 0.0
    assert s["glass_to_glass_ms"]["count"] == 3
    assert s["glass_to_glass_ms"]["max"] == pytest.approx(10.0)
    m2p = s["motion_to_photon_ms"]
    assert m2p["count"] == 1 + 30
    assert m2p["max"] == pytest.approx(60 - 11)
    expected = np.percentile([15.0, *(60.0 - t for t in range(11, 41))], 50)
    assert m2p["p50"] == pytest.approx(expected)
    assert s["motion_to_photon_newest_ms"]["max"] == pytest.approx(20.0)
    assert s["stages_ms"]["decode"]["p50"] == pytest.approx(3.0)
    assert book.recent_ms(last=1)["p50"] == pytest.approx(3.0)


def test_command_wait_is_snapshot_minus_each_new_command() -> None:
    wait = CommandWait(MS)
    wait.frame(snapshot_ns=12 * MS, applied_sample_ns=10 * MS)
    wait.frame(snapshot_ns=45 * MS, applied_sample_ns=43 * MS)
    s = wait.summary()
    assert s["count"] == 1 + 33
    assert s["max"] == pytest.approx(45 - 11)
    assert CommandWait(MS).summary() == {}


def test_the_summary_says_where_glass_to_glass_ended() -> None:
    patient = {"width": 640, "height": 480, "fps_target": 30.0, "frames": 300, "keyframes": 2,
               "stages_ms": {"render": {"p50": 9.0, "p99": 15.0},
                             "encode": {"p50": 1.0, "p99": 2.0},
                             "command_to_snapshot": {}}}
    decoder = {"frames": 290, "glass_to_glass_ms": {"p50": 2.0, "p99": 4.0},
               "motion_to_photon_ms": {"p50": 30.0, "p99": 50.0},
               "stages_ms": {"decode": {"p50": 0.6, "p99": 1.0, "p999": 2.0}}}
    console = {"fps": 29.9, "decoder": {"lost": 1}, "console_decoder": decoder, "page": None}
    headless = video_summary(patient, console)
    assert headless is not None
    assert headless["measured_at"] == "console-decoder"
    assert headless["glass_to_glass_ms"] == {"p50": 2.0, "p99": 4.0}
    assert list(headless["stages_ms"]) == ["render", "encode", "decode"]
    assert headless["stages_ms"]["decode"] == {"p50": 0.6, "p99": 1.0}
    assert (headless["width"], headless["height"], headless["fps"]) == (640, 480, 29.9)
    assert headless["frames"] == {"rendered": 300, "shown": 290, "lost": 1, "keyframes": 2}
    page = {"frames": 100, "glass_to_glass_ms": {"p50": 7.0, "p99": 12.0},
            "stages_ms": {"paint": {"p50": 1.0, "p99": 2.0}}}
    with_page = video_summary(patient, {**console, "page": page})
    assert with_page is not None
    assert with_page["measured_at"] == "page"
    assert with_page["glass_to_glass_ms"] == {"p50": 7.0, "p99": 12.0}
    assert "paint" in with_page["stages_ms"]
    # Both displays side by side, whichever ended the headline figures.
    assert with_page["displays"]["console_decoder"]["glass_to_glass_ms"] == {"p50": 2.0,
                                                                             "p99": 4.0}
    assert with_page["displays"]["page"]["frames"] == 100
    assert headless["displays"]["page"] is None
    assert video_summary(None, console) is None
    assert video_summary(patient, {}) is None
