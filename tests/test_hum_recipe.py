"""The hum recipe: seeded, within its documented ranges, mixed at the requested SNR."""

from __future__ import annotations

import numpy as np
import pytest
from humclean.training.hum import RECIPE_VERSION, mix, render, sample_params


def test_seed_reproduces_the_hum() -> None:
    a = sample_params(np.random.default_rng(3), 16000)
    b = sample_params(np.random.default_rng(3), 16000)
    assert a == b and a.recipe == RECIPE_VERSION
    np.testing.assert_array_equal(render(a, 16000, 16000), render(b, 16000, 16000))


@pytest.mark.parametrize("seed", range(40))
def test_parameters_stay_in_range(seed: int) -> None:
    p = sample_params(np.random.default_rng(seed), 16000)
    assert p.mains_hz in (50, 60)
    assert abs(p.offset_hz) <= 1.0
    assert 1 <= p.harmonics <= 40
    assert p.harmonics * p.f0_hz < 8000
    assert 0.05 <= p.am_hz <= 0.5 and 0 <= p.am_depth <= 0.4
    assert any(a > 0 for a in p.amplitudes)


def test_pinned_conditions() -> None:
    p = sample_params(np.random.default_rng(0), 16000, mains_hz=60, harmonics=40, shape="buzz")
    assert (p.mains_hz, p.harmonics, p.shape) == (60, 40, "buzz")
    amps = np.array(p.amplitudes)
    assert amps[0::2].sum() > 2 * amps[1::2].sum(), "buzz is odd-heavy"


def test_drift_is_slow_and_small() -> None:
    p = sample_params(np.random.default_rng(5), 16000, mains_hz=50, harmonics=1)
    y = render(p, 16000 * 20, 16000)
    # instantaneous frequency from zero crossings
    sign = np.signbit(y)
    crossings = np.flatnonzero(sign[1:] & ~sign[:-1])
    f_inst = 16000 / np.diff(crossings)
    assert np.all(np.abs(f_inst - p.f0_hz) < 0.3)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 15.0])
def test_mix_hits_the_snr(snr: float) -> None:
    rng = np.random.default_rng(1)
    clean = 0.1 * rng.standard_normal(32000)
    hum = render(sample_params(rng, 16000), 32000, 16000)
    noisy, scaled = mix(clean, hum, snr)
    np.testing.assert_allclose(noisy - clean, scaled)
    assert 10 * np.log10(np.mean(clean**2) / np.mean(scaled**2)) == pytest.approx(snr, abs=1e-9)
