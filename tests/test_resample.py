"""Resampled lengths are exact for every pair of common rates; identity when rates match."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from humclean.resample import rate_period, resample, resampled_length

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000]


@settings(max_examples=300, deadline=None)
@given(rate_in=st.sampled_from(RATES), rate_out=st.sampled_from(RATES), n=st.integers(0, 5000))
def test_lengths_are_exact(rate_in: int, rate_out: int, n: int) -> None:
    x = np.zeros(n)
    y = resample(x, rate_in, rate_out)
    assert y.shape[0] == resampled_length(n, rate_in, rate_out) == -(-n * rate_out // rate_in)


@settings(max_examples=100, deadline=None)
@given(rate_in=st.sampled_from(RATES), rate_out=st.sampled_from(RATES), k=st.integers(1, 20))
def test_whole_periods_map_exactly(rate_in: int, rate_out: int, k: int) -> None:
    p_in, p_out = rate_period(rate_in, rate_out)
    assert p_in * rate_out == p_out * rate_in
    y = resample(np.zeros((k * p_in, 2)), rate_in, rate_out)
    assert y.shape == (k * p_out, 2)


def test_identity_when_rates_match() -> None:
    x = np.random.default_rng(1).standard_normal(1234)
    assert resample(x, 44100, 44100) is x


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (44100, 16000), (16000, 44100), (8000, 16000)])
def test_band_limited_tone_survives_round_trip(rate_in: int, rate_out: int) -> None:
    t = np.arange(rate_in) / rate_in
    x = np.sin(2 * np.pi * 311.0 * t)
    y = resample(resample(x, rate_in, rate_out), rate_out, rate_in)
    edge = rate_in // 20
    np.testing.assert_allclose(y[edge:-edge], x[edge:-edge], atol=1e-5)


def test_hq_runs_in_single_precision_so_float32_input_gives_the_same_values() -> None:
    """The pipeline upsamples its hum estimate as float32 (faster, less memory) on this premise."""
    rng = np.random.default_rng(4)
    h = 0.01 * rng.standard_normal(40_000)
    for rate_in, rate_out in ((8000, 48000), (8000, 44100), (48000, 8000)):
        np.testing.assert_array_equal(
            resample(h.astype(np.float32), rate_in, rate_out).astype(np.float64), resample(h, rate_in, rate_out)
        )
