"""The tremor filter, measured by streaming sine waves through it one sample at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from telesurgery.config import TremorConfig
from telesurgery.console.tremor import TremorFilter, design, frequency_response
from telesurgery.errors import ConfigError

RATE_HZ = 1000.0
# What the default design promises (module docstring of console.tremor).
CENTRE_ATTENUATION_DB = 40.0
BAND_ATTENUATION_DB = 12.0  # over 8-10 Hz
PASSBAND_RIPPLE_DB = 0.1  # below 2 Hz
MAX_DELAY_MS = 21.0  # phase delay at 0.5-2 Hz


def stream_sine(filt: TremorFilter, f_hz: float, settle_s: float = 3.0,
                measure_s: float = 2.0) -> tuple[float, float]:
    """Gain [dB] and delay [ms] of ``filt`` for a unit sine of ``f_hz``, fitted after settling.

    The output is fitted by least squares to a sin + b cos of the same frequency,
    which gives its amplitude and phase; the delay is -phase / omega.
    """
    n_settle, n_measure = int(settle_s * RATE_HZ), int(measure_s * RATE_HZ)
    t = np.arange(n_settle + n_measure) / RATE_HZ
    x = np.sin(2.0 * math.pi * f_hz * t)
    y = np.array([filt.step([v])[0] for v in x])
    tm = t[n_settle:]
    basis = np.column_stack([np.sin(2.0 * math.pi * f_hz * tm), np.cos(2.0 * math.pi * f_hz * tm)])
    (a, b), *_ = np.linalg.lstsq(basis, y[n_settle:], rcond=None)
    gain_db = 20.0 * math.log10(math.hypot(a, b))
    delay_ms = -math.atan2(b, a) / (2.0 * math.pi * f_hz) * 1e3
    return gain_db, delay_ms


def fresh(config: TremorConfig | None = None) -> TremorFilter:
    return TremorFilter(config or TremorConfig(), RATE_HZ, channels=1)


def test_band_centre_is_removed() -> None:
    centre = math.sqrt(6.0 * 12.0)
    gain_db, _ = stream_sine(fresh(), centre)
    assert gain_db <= -CENTRE_ATTENUATION_DB


@pytest.mark.parametrize("f_hz", [8.0, 9.0, 10.0])
def test_tremor_band_is_attenuated(f_hz: float) -> None:
    gain_db, _ = stream_sine(fresh(), f_hz)
    assert gain_db <= -BAND_ATTENUATION_DB


@pytest.mark.parametrize("f_hz", [0.1, 0.5, 1.0, 2.0])
def test_surgical_motion_passes(f_hz: float) -> None:
    gain_db, _ = stream_sine(fresh(), f_hz)
    assert abs(gain_db) <= PASSBAND_RIPPLE_DB


@pytest.mark.parametrize("f_hz", [0.5, 1.0, 2.0])
def test_added_delay_is_bounded(f_hz: float) -> None:
    _, delay_ms = stream_sine(fresh(), f_hz)
    assert 0.0 < delay_ms <= MAX_DELAY_MS


@pytest.mark.parametrize("f_hz", [0.5, 2.0, 7.0, 10.0, 11.0, 20.0])
def test_streaming_matches_the_design(f_hz: float) -> None:
    gain_db, delay_ms = stream_sine(fresh(), f_hz)
    designed = frequency_response(TremorConfig(), RATE_HZ, [f_hz])
    assert gain_db == pytest.approx(designed.gain_db[0], abs=0.05)
    # The phase delay is defined modulo a period; compare within one.
    period_ms = 1e3 / f_hz
    diff = (delay_ms - designed.phase_delay_ms[0]) % period_ms
    assert min(diff, period_ms - diff) < 0.05


def test_group_delay_is_reported_in_ms() -> None:
    r = frequency_response(TremorConfig(), RATE_HZ, [0.5, 1.0, 2.0])
    assert np.all((r.group_delay_ms > 15.0) & (r.group_delay_ms < 25.0))
    assert not r.gain_db.flags.writeable


def test_a_higher_order_attenuates_more_and_delays_more() -> None:
    low = frequency_response(TremorConfig(order=1), RATE_HZ, [1.0, 10.0])
    high = frequency_response(TremorConfig(order=3), RATE_HZ, [1.0, 10.0])
    assert high.gain_db[1] < low.gain_db[1] - 6.0
    assert high.phase_delay_ms[0] > low.phase_delay_ms[0]


def test_channels_are_independent() -> None:
    filt = TremorFilter(TremorConfig(), RATE_HZ, channels=3)
    single = fresh()
    t = np.arange(2000) / RATE_HZ
    x = np.sin(2.0 * math.pi * 1.0 * t) + 0.1 * np.sin(2.0 * math.pi * 9.0 * t)
    for v in x:
        out = filt.step([v, 0.0, -2.0 * v])
        ref = single.step([v])[0]
        assert out[0] == pytest.approx(ref, abs=1e-12)
        assert out[1] == 0.0
        assert out[2] == pytest.approx(-2.0 * ref, abs=1e-12)


def test_reset_starts_from_rest_without_transient() -> None:
    filt = fresh()
    for v in np.sin(np.arange(500) / 30.0):
        filt.step([float(v)])
    filt.reset()
    assert filt.step([0.0]) == [0.0]
    # A step from rest: the output starts at the feed-through and ends at the input.
    ys = [filt.step([1.0])[0] for _ in range(3000)]
    assert ys[0] == pytest.approx(design(TremorConfig(), RATE_HZ)[0, 0])
    assert ys[-1] == pytest.approx(1.0, abs=1e-9)


def test_disabled_filter_passes_through() -> None:
    filt = TremorFilter(TremorConfig(enabled=False), RATE_HZ, channels=2)
    assert filt.step([0.3, -1.5]) == [0.3, -1.5]
    gain_db, delay_ms = stream_sine(TremorFilter(TremorConfig(enabled=False), RATE_HZ, 1), 9.0)
    assert gain_db == pytest.approx(0.0, abs=1e-9)
    assert delay_ms == pytest.approx(0.0, abs=1e-6)


def test_wrong_channel_count_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 1 channel"):
        fresh().step([1.0, 2.0])


@pytest.mark.parametrize(("low", "high", "rate"), [(6.0, 12.0, 20.0), (12.0, 6.0, 1000.0)])
def test_impossible_band_is_a_config_error(low: float, high: float, rate: float) -> None:
    with pytest.raises(ConfigError, match="tremor band"):
        TremorFilter(TremorConfig(low_hz=low, high_hz=high), rate)
