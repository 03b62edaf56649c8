"""Measured samples and their percentiles, the one way every latency is summarised."""

from __future__ import annotations

import array
import math
import threading
from typing import Final

import numpy as np
import numpy.typing as npt

from telesurgery.geometry import FloatArray

IntArray = npt.NDArray[np.int64]

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


KEEP_RAW: Final = 16_384
"""Newest samples a ``Samples`` always holds as they are (live views look this far back)."""
FOLD_AT: Final = 2 * KEEP_RAW
"""Raw samples at which the oldest ``KEEP_RAW`` are folded into the histogram."""
BINS_PER_OCTAVE: Final = 128
"""Histogram resolution: a folded sample is known to within 2 ** (1 / 128) - 1 = 0.54 %."""


class Samples:
    """A thread-safe record of samples (any unit), with percentile summaries, in bounded
    memory.

    The newest samples are kept as they are in an ``array`` of doubles: appending is one
    C call, atomic under the GIL, so no lock is taken (a lock and a NumPy element store cost
    about 7 % of the patient node's Python time at the ~9,000 samples a second its loops
    and command checks add). Once ``FOLD_AT`` are held, the oldest ``KEEP_RAW`` are folded
    into a log-scale histogram (one NumPy pass, about a millisecond, by the thread whose
    sample crossed the mark), so an hour holds megabytes, not the 250 MiB every sample of
    it would take. Summaries are exact until the first fold and within 0.54 % after it.
    """

    def __init__(self) -> None:
        self._buf = array.array("d")
        self._fold_lock = threading.Lock()
        self._bins: dict[int, int] = {}
        self._folded = 0
        self._folded_max = -math.inf

    def __len__(self) -> int:
        return self._folded + len(self._buf)

    def add(self, value: float) -> None:
        """Record one sample."""
        buf = self._buf
        buf.append(value)
        if len(buf) >= FOLD_AT:
            self._fold()

    def extend(self, values: FloatArray) -> None:
        """Record many samples at once (one C call, as ``add``)."""
        buf = self._buf
        buf.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        while len(buf) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._fold_lock:
            buf = self._buf
            if len(buf) < FOLD_AT:
                return  # another thread folded them meanwhile
            oldest = np.frombuffer(buf[:KEEP_RAW], dtype=np.float64)
            # Deleting from the front keeps the one array every thread appends to, so an
            # append racing the fold is never lost.
            del buf[:KEEP_RAW]
            for key, count in zip(*np.unique(_bin_keys(oldest), return_counts=True),
                                  strict=True):
                self._bins[int(key)] = self._bins.get(int(key), 0) + int(count)
            self._folded += oldest.size
            self._folded_max = max(self._folded_max, float(oldest.max()))

    def values(self, last: int | None = None) -> FloatArray:
        """A copy of the samples held as they are (all of them until the first fold, the
        newest ``KEEP_RAW`` at least after it), or of the ``last`` ones."""
        # Slicing copies under the GIL: a consistent snapshot while other threads append.
        buf = self._buf
        part = buf[:] if last is None else buf[max(0, len(buf) - last):]
        return np.frombuffer(part, dtype=np.float64)

    def summary(self, scale: float = 1.0, digits: int = 3,
                last: int | None = None) -> dict[str, float]:
        """p50, p99, p99.9, max and count, each sample multiplied by ``scale``, over all
        samples or the ``last`` ones (live views, at most ``KEEP_RAW``: a percentile over a
        whole run costs milliseconds, which a 1 kHz process cannot give twice a second).

        Empty records give an empty dict: no number is reported that was not measured.
        """
        with self._fold_lock:
            if last is not None or not self._folded:
                return summarize(self.values(last), scale, digits)
            if scale <= 0.0:
                raise ValueError(f"scale {scale}: a folded record is summarised with a "
                                 "positive scale only")
            bins = dict(self._bins)
            folded, folded_max = self._folded, self._folded_max
            raw = self.values()
        for key, count in zip(*np.unique(_bin_keys(raw), return_counts=True), strict=True):
            bins[int(key)] = bins.get(int(key), 0) + int(count)
        top = max(folded_max, float(raw.max())) if raw.size else folded_max
        return _binned_summary(bins, folded + raw.size, top, scale, digits)


def _bin_keys(values: FloatArray) -> IntArray:
    """Each value's histogram bin: 0 for zero, +-(1 + k) for |value| in the k-th
    ``1 / BINS_PER_OCTAVE`` octave above 2 ** -1074 (the smallest double), so that keys
    sort as the values do."""
    mantissa, exponent = np.frexp(np.abs(values))
    k = ((exponent.astype(np.int64) + 1074) * BINS_PER_OCTAVE
         + np.floor(np.log2(np.maximum(mantissa, 0.5) * 2.0) * BINS_PER_OCTAVE).astype(np.int64))
    return np.where(values == 0.0, 0, np.sign(values).astype(np.int64) * (1 + k))


def _bin_value(key: int) -> float:
    """The middle of bin ``key`` (geometric, in its octave)."""
    if key == 0:
        return 0.0
    k = abs(key) - 1
    octave, step = divmod(k, BINS_PER_OCTAVE)
    magnitude = math.ldexp(2.0 ** ((step + 0.5) / BINS_PER_OCTAVE) * 0.5, octave - 1074)
    return math.copysign(magnitude, key)


def _binned_summary(bins: dict[int, int], count: int, top: float, scale: float,
                    digits: int) -> dict[str, float]:
    """``summarize``'s figures from a histogram: each percentile is the middle of the bin
    holding its rank, never above the exact ``top``."""
    keys = sorted(bins)
    cumulative = np.cumsum([bins[k] for k in keys])
    out = {}
    for name, q in PERCENTILES.items():
        rank = math.floor(q / 100.0 * (count - 1))
        key = keys[int(np.searchsorted(cumulative, rank, side="right"))]
        out[name] = round(min(_bin_value(key), top) * scale, digits)
    out["max"] = round(top * scale, digits)
    out["count"] = count
    return out


def summarize(values: FloatArray, scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """p50, p99, p99.9, max and count of ``values`` times ``scale``; {} when empty.

    Percentiles interpolate linearly between the two nearest ranks, as ``np.percentile``
    does by default, from one sort: ``np.percentile`` costs about 0.7 ms a call on a busy
    2-core machine whatever the size (40 samples included), and the live path figures
    called it a dozen times a second per path, a sixth of the patient node's Python time.
    """
    if values.size == 0:
        return {}
    ranked = np.sort(values * scale)
    out = {name: round(_ranked_percentile(ranked, q), digits)
           for name, q in PERCENTILES.items()}
    out["max"] = round(float(ranked[-1]), digits)
    out["count"] = int(ranked.size)
    return out


def _ranked_percentile(ranked: FloatArray, q: float) -> float:
    """The ``q``-th percentile [0, 100] of sorted ``ranked``, linearly interpolated."""
    at = q / 100.0 * (ranked.size - 1)
    lo = math.floor(at)
    hi = min(lo + 1, ranked.size - 1)
    low = float(ranked[lo])
    return low + (float(ranked[hi]) - low) * (at - lo)
