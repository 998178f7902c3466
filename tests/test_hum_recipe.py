"""The hum recipe: seeded, within its documented ranges, mixed at the requested SNR."""

from __future__ import annotations

import numpy as np
import pytest
from humclean.training.hum import RECIPE_VERSION, RECIPES, HumParams, mix, render, sample_params


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


def test_hum_v1_draws_what_it_drew_before_hum_v2_existed() -> None:
    """The evaluation's hum must not change: hum-v1 takes exactly the random numbers it always took (the next
    number from the generator is the one recorded with the code before the recipe option)."""
    rng = np.random.default_rng(8)
    p = sample_params(rng, 16000)
    assert (p.harmonics, p.am_depth, p.recipe, p.extra) == (14, 0.03844337341125881, "hum-v1", {})
    assert rng.random() == 0.46017930748995783


def test_hum_v2_gives_half_the_hums_swells_of_their_own() -> None:
    draws = [sample_params(np.random.default_rng(seed), 16000, recipe="hum-v2") for seed in range(400)]
    own = [p for p in draws if p.extra]
    assert all(p.recipe == "hum-v2" for p in draws)
    assert 160 <= len(own) <= 240  # a half, give or take 4 standard deviations
    assert 0.3 * len(own) <= sum(p.am_depth == 0.0 for p in own) <= 0.7 * len(own)  # half without a shared swell
    for p in own:
        assert len(p.extra["line_am_depth"]) == p.harmonics
        assert all(0.0 <= d <= 0.4 for d in p.extra["line_am_depth"])
        assert all(0.05 <= f <= 0.5 for f in p.extra["line_am_hz"])
    with pytest.raises(ValueError, match="hum-v1, hum-v2, hum-v3, hum-v4"):
        sample_params(np.random.default_rng(0), 16000, recipe="hum-v9")
    assert RECIPES == ("hum-v1", "hum-v2", "hum-v3", "hum-v4")


def test_hum_v3_band_limits_a_third_of_the_hums_on_hum_v1s_draws() -> None:
    """hum-v3 is hum-v1 (same draws) with a high-pass on about a third of the hums and a low-pass on about a
    sixth: every line's amplitude is hum-v1's times the filters' gain at its frequency."""
    highs = lows = 0
    for seed in range(300):
        v1 = sample_params(np.random.default_rng(seed), 16000)
        v3 = sample_params(np.random.default_rng(seed), 16000, recipe="hum-v3")
        assert v3.recipe == "hum-v3"
        assert (v3.phases, v3.drift_seed, v3.am_hz, v3.mains_hz) == (v1.phases, v1.drift_seed, v1.am_hz, v1.mains_hz)
        f = np.arange(1, v1.harmonics + 1) * v1.f0_hz
        expect = np.ones_like(f)
        if "highpass_hz" in v3.extra:
            highs += 1
            assert 60 <= v3.extra["highpass_hz"] <= 400 and v3.extra["highpass_order"] in (1, 2, 3, 4)
            expect /= np.sqrt(1 + (v3.extra["highpass_hz"] / f) ** (2 * v3.extra["highpass_order"]))
        if "lowpass_hz" in v3.extra:
            lows += 1
            assert 800 <= v3.extra["lowpass_hz"] <= 3400
            expect /= np.sqrt(1 + (f / v3.extra["lowpass_hz"]) ** (2 * v3.extra["lowpass_order"]))
        np.testing.assert_allclose(v3.amplitudes, np.array(v1.amplitudes) * expect, rtol=1e-12)
    assert 60 <= highs <= 140 and 20 <= lows <= 80


def test_hum_v4_runs_half_the_long_series_past_the_40th_line() -> None:
    """hum-v4 keeps hum-v1's first 40 lines (then hum-v3's band limits) and continues half of the series of 20
    lines or more to 41-120 lines below Nyquist, following the series' own fall."""
    wide = long = 0
    for seed in range(300):
        v1 = sample_params(np.random.default_rng(seed), 16000)
        v4 = sample_params(np.random.default_rng(seed), 16000, recipe="hum-v4")
        assert v4.recipe == "hum-v4" and v4.phases[: v1.harmonics] == v1.phases
        long += v1.harmonics >= 20
        assert v4.harmonics == v1.harmonics or v1.harmonics >= 20
        if v4.harmonics == v1.harmonics:
            continue
        wide += 1
        assert 41 <= v4.harmonics <= 120 and v4.harmonics * v4.f0_hz < 8000
        head, tail = np.array(v4.amplitudes[:40]), np.array(v4.amplitudes[40:])
        if not v4.extra:  # no band limit: the new lines carry on below the old ones' strongest
            assert tail.max() <= head.max() and tail.max() > 0
        # the rendered hum holds the strongest new line, far above the gap after it (0.5 Hz bins, +-3 Hz of drift)
        signal = render(v4, 16000 * 2, 16000)
        spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
        line = int(round((41 + int(np.argmax(tail))) * v4.f0_hz * 2))
        assert spectrum[line - 6 : line + 7].max() > 100 * np.median(spectrum[line + 20 : line + 60])
    assert 0.3 * long <= wide <= 0.7 * long


def test_hum_v2_lines_follow_their_own_swells() -> None:
    """Each line's envelope is its own swell (times the shared one, here off): measured by demodulating each
    line (no drift, exact phase), within 2 % of the intended envelope, and the two lines' ratio moves."""
    rate, n = 8000, 8000 * 10
    t = np.arange(n) / rate
    own = {"line_am_hz": [0.2, 0.45], "line_am_depth": [0.3, 0.4], "line_am_phase": [0.0, 1.0]}
    p = HumParams(50, 0.0, 0.0, "falling", [1.0, 0.5], [0.3, 1.1], 0.1, 0.0, 0.0, 7, "hum-v2", own)
    y = render(p, n, rate)
    box = np.ones(rate // 10) / (rate // 10)  # 0.1 s: 5 periods of 50 Hz, passes the swells
    envelopes = []
    for k, (amp, phase) in enumerate(zip(p.amplitudes, p.phases, strict=True), start=1):
        base = 2 * np.pi * 50 * k * t + phase
        env = np.hypot(np.convolve(2 * y * np.cos(base), box, "same"), np.convolve(2 * y * np.sin(base), box, "same"))
        want = amp * (
            1
            + own["line_am_depth"][k - 1]
            * np.sin(2 * np.pi * own["line_am_hz"][k - 1] * t + own["line_am_phase"][k - 1])
        )
        mid = slice(rate, n - rate)
        assert np.max(np.abs(env[mid] - want[mid])) < 0.02 * amp
        envelopes.append(env[mid])
    ratio = envelopes[1] / envelopes[0]
    assert ratio.max() > 1.5 * ratio.min()
