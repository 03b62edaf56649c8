"""Glass-to-glass and motion-to-photon bookkeeping, and the summary's ``video`` section.

Definitions (all times [ns] on one monotonic clock; the console maps the
patient's and the page's clocks onto its own before anything lands here):

- glass-to-glass: frame rendered (``capture_ns``) -> frame painted by the page,
  or decoded by the console where no page is open;
- motion-to-photon: a command's input sample (``sample_ns``) -> the first
  painted frame that shows it. A frame carries the input-sample time of the
  newest command applied to the robot when its scene was copied; it is the
  first to show every command applied since the previous painted frame's
  newest one. Applied targets change at most once per control period, so
  those commands are taken one period apart (``commands_first_shown``), and
  each counts: a command applied just after a snapshot waits most of a frame
  period, one just before it hardly at all. A gap longer than ``max_span_ns``
  (a hold, a restart) is not filled in: only the newest command counts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from telesurgery.geometry import FloatArray
from telesurgery.stats import Samples

MAX_SPAN_NS: Final = 100_000_000
"""Longest stretch between two shown frames' newest commands filled in with commands [ns]."""


def commands_first_shown(previous_ns: int, newest_ns: int, period_ns: int,
                         max_span_ns: int = MAX_SPAN_NS) -> FloatArray:
    """Input-sample times [ns] of the commands a frame shows first: those in
    (``previous_ns``, ``newest_ns``] one ``period_ns`` apart, newest first.

    Empty when nothing new was applied (``newest_ns`` 0 or not after ``previous_ns``);
    only ``newest_ns`` when there is no previous frame or the gap exceeds ``max_span_ns``.
    """
    if newest_ns <= 0 or newest_ns <= previous_ns:
        return np.empty(0)
    if previous_ns <= 0 or newest_ns - previous_ns > max_span_ns:
        return np.array([float(newest_ns)])
    return np.arange(newest_ns, previous_ns, -max(1, period_ns), dtype=float)


class CommandWait:
    """Patient side: input sample -> scene snapshot of every command a frame shows first.

    That is the control path (sample -> accepted -> applied by a servo tick) plus the
    wait for the next frame; ``bench control`` measures the first part alone.
    """

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self._last = 0
        self._waits = Samples()

    def frame(self, snapshot_ns: int, applied_sample_ns: int) -> None:
        """One captured frame: its snapshot time and the newest applied command's sample."""
        times = commands_first_shown(self._last, applied_sample_ns, self.period_ns)
        if times.size:
            self._waits.extend(snapshot_ns - times)
            self._last = applied_sample_ns

    def summary(self) -> dict[str, float]:
        """p50/p99/p99.9/max [ms] and count."""
        return self._waits.summary(1e-6)


class LatencyBook:
    """Latencies of the frames one display (a page, or the console's decoder) showed.

    ``shown`` takes each frame once, in display order, with the stage durations
    [ns] measured for it (any names: render, transport, decode, paint, ...).
    """

    def __init__(self, command_period_ns: int, max_span_ns: int = MAX_SPAN_NS) -> None:
        self.period_ns = command_period_ns
        self.max_span_ns = max_span_ns
        self.glass_to_glass = Samples()
        self.newest_command = Samples()
        """Motion-to-photon of each frame's newest command only (the shortest case)."""
        self._motion_to_photon = Samples()
        self._stages: dict[str, Samples] = {}
        self._last_applied = 0
        self._first_shown_ns = 0
        self._last_shown_ns = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.glass_to_glass)

    def shown(self, capture_ns: int, applied_sample_ns: int, shown_ns: int,
              stages: Mapping[str, int] | None = None) -> None:
        """A frame captured at ``capture_ns`` was shown at ``shown_ns`` [ns]."""
        self.glass_to_glass.add(shown_ns - capture_ns)
        with self._lock:
            times = commands_first_shown(self._last_applied, applied_sample_ns,
                                         self.period_ns, self.max_span_ns)
            if times.size:
                self._last_applied = applied_sample_ns
            self._first_shown_ns = self._first_shown_ns or shown_ns
            self._last_shown_ns = shown_ns
            for name, value in (stages or {}).items():
                self._stages.setdefault(name, Samples()).add(value)
        if times.size:
            self._motion_to_photon.extend(shown_ns - times)
            self.newest_command.add(shown_ns - applied_sample_ns)

    def recent_ms(self, last: int = 90) -> dict[str, float]:
        """Glass-to-glass [ms] over the ``last`` frames (live views)."""
        return self.glass_to_glass.summary(1e-6, last=last)

    def fps(self) -> float:
        """Frames shown per second [1/s] between the first and the last shown (0.0 before
        two were): a display that falls behind shows fewer than were sent."""
        with self._lock:
            span_ns = self._last_shown_ns - self._first_shown_ns
        return round((len(self) - 1) / (span_ns * 1e-9), 2) if span_ns > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Every figure [ms]: p50, p99, p99.9, max, count; frames shown and their rate."""
        with self._lock:
            stages = {name: s.summary(1e-6) for name, s in self._stages.items()}
        return {
            "frames": len(self),
            "fps": self.fps(),
            "glass_to_glass_ms": self.glass_to_glass.summary(1e-6),
            "motion_to_photon_ms": self._motion_to_photon.summary(1e-6),
            "motion_to_photon_newest_ms": self.newest_command.summary(1e-6),
            "stages_ms": stages,
        }


def _p(d: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: d[k] for k in ("p50", "p99") if d and k in d}


def video_summary(patient: Mapping[str, Any] | None,
                  console: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The summary's ``video`` section from the nodes' ``video`` reports; None without video.

    ``measured_at`` says whose paint ended glass-to-glass: ``page`` when a page
    reported painted frames, else ``console-decoder``. Stages run in data-path
    order; ``command_to_snapshot`` is the control path plus the wait for the next
    frame, ``display_wait`` (page paint -> next display refresh) is reported beside
    glass-to-glass, not in it. ``displays`` has both displays' own figures side by side
    (``page``, ``console_decoder``; None where one showed nothing), as the headline
    figures are one or the other. ``page_fallbacks_to_jpeg`` counts pages switched from
    H.264 to JPEG because they kept falling behind, ``frames.sent_to_page`` the frames the
    page server sent (both with a page server only).
    """
    if not console or not patient:
        return None
    page = console.get("page") or {}
    measured_at = "page" if page.get("frames") else "console-decoder"
    book = page if measured_at == "page" else console.get("console_decoder") or {}
    sender_stages = patient.get("stages_ms", {})
    stages: dict[str, Any] = {
        "command_to_snapshot": sender_stages.get("command_to_snapshot", {}),
        "render": sender_stages.get("render", {}),
        "convert": sender_stages.get("convert", {}),
        "encode": sender_stages.get("encode", {}),
    }
    stages.update(book.get("stages_ms", {}))
    out: dict[str, Any] = {
        "width": patient.get("width"),
        "height": patient.get("height"),
        "fps": console.get("fps"),
        "fps_target": patient.get("fps_target"),
        "render_threads": patient.get("render_threads"),
        "measured_at": measured_at,
        "glass_to_glass_ms": book.get("glass_to_glass_ms", {}),
        "motion_to_photon_ms": book.get("motion_to_photon_ms", {}),
        "motion_to_photon_newest_ms": book.get("motion_to_photon_newest_ms", {}),
        "stages_ms": {name: _p(v) for name, v in stages.items() if v},
        "frames": {"rendered": patient.get("frames", 0), "shown": book.get("frames", 0),
                   "lost": console.get("decoder", {}).get("lost", 0),
                   "keyframes": patient.get("keyframes", 0)},
    }
    out["displays"] = {"page": _display(page), "console_decoder":
                       _display(console.get("console_decoder"))}
    web = console.get("web")
    if isinstance(web, Mapping):
        out["page_fallbacks_to_jpeg"] = web.get("fallbacks_to_jpeg", 0)
        out["frames"]["sent_to_page"] = sum(web.get("frames_sent", {}).values())
    return out


def _display(book: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """One display's frames shown, their rate [1/s], glass-to-glass and motion-to-photon
    p50/p99 [ms]; None where it showed nothing (no page open, video off)."""
    if not book or not book.get("frames"):
        return None
    return {"frames": book["frames"], "fps": book.get("fps"),
            "glass_to_glass_ms": _p(book.get("glass_to_glass_ms")),
            "motion_to_photon_ms": _p(book.get("motion_to_photon_ms"))}


__all__ = ["MAX_SPAN_NS", "CommandWait", "LatencyBook", "commands_first_shown",
           "video_summary"]
