"""A small mains-hum synthesiser for tests and benchmarks (numpy only).

Hum model: ``h(t) = sum_k a_k * m_k(t) * cos(k * phi(t) + psi_k)`` with
``phi(t) = 2 pi * integral of f(s) ds``, ``f(t) = f0 + d(t)`` where ``d`` is a smoothed random walk
bounded by ``drift_hz``, and ``m_k`` a slow amplitude modulation (0.05-0.5 Hz, up to +-40 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROFILES = ("fundamental", "rich", "buzz", "sparse")


@dataclass(frozen=True)
class HumInfo:
    mains_hz: int
    f0_hz: float  # mean instantaneous fundamental
    drift_pp_hz: float  # peak-to-peak of the instantaneous fundamental
    harmonics: tuple[int, ...]  # harmonic numbers with non-zero amplitude
    profile: str


def _smooth_walk(n_ctrl: int, rng: np.random.Generator, smooth: int) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(n_ctrl + 2 * smooth))
    kernel = np.hanning(2 * smooth + 1)
    kernel /= kernel.sum()
    walk = np.convolve(walk, kernel, mode="same")[smooth : smooth + n_ctrl]
    walk -= walk.mean()
    peak = np.max(np.abs(walk))
    return walk / peak if peak > 0 else walk


def harmonic_amplitudes(profile: str, n_harmonics: int, rng: np.random.Generator) -> np.ndarray:
    """Relative amplitudes ``[n_harmonics]`` (index 0 is the fundamental)."""
    k = np.arange(1, n_harmonics + 1, dtype=np.float64)
    if profile == "fundamental":
        amp = np.zeros(n_harmonics)
        amp[0] = 1.0
        if n_harmonics > 1:
            amp[1:4] = rng.uniform(0.02, 0.25, size=min(3, n_harmonics - 1))
    elif profile == "rich":
        amp = k ** -rng.uniform(0.5, 1.3) * 10 ** (rng.uniform(-6, 6, n_harmonics) / 20)
    elif profile == "buzz":
        amp = k ** -rng.uniform(0.3, 0.9) * np.where(k % 2 == 1, 1.0, rng.uniform(0.05, 0.3))
        amp *= 10 ** (rng.uniform(-4, 4, n_harmonics) / 20)
    elif profile == "sparse":
        amp = np.zeros(n_harmonics)
        chosen = rng.choice(n_harmonics, size=max(1, n_harmonics // 4), replace=False)
        amp[chosen] = k[chosen] ** -0.5 * rng.uniform(0.3, 1.0, chosen.size)
        amp[0] = max(amp[0], 0.3)
    else:
        raise ValueError(profile)
    return amp


def synth_hum(
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    mains_hz: int = 50,
    offset_hz: float | None = None,
    drift_hz: float = 0.1,
    n_harmonics: int | None = None,
    profile: str | None = None,
    am_depth: float | None = None,
) -> tuple[np.ndarray, HumInfo]:
    """Return ``([n] float64 hum with unit RMS, info)``."""
    if offset_hz is None:
        offset_hz = float(rng.uniform(-1.0, 1.0))
    if profile is None:
        profile = str(rng.choice(PROFILES))
    f0 = mains_hz + offset_hz
    k_max = int(min(40, np.floor((sample_rate / 2 - 20) / (f0 + 0.2))))
    if n_harmonics is None:
        n_harmonics = 1 if profile == "fundamental" and rng.random() < 0.3 else int(rng.integers(4, k_max + 1))
    n_harmonics = max(1, min(n_harmonics, k_max))
    amp = harmonic_amplitudes(profile, n_harmonics, rng)

    # Drift: smoothed random walk at a 20 Hz control rate, scaled to +-drift_hz.
    ctrl_rate = 20.0
    n_ctrl = int(np.ceil(n / sample_rate * ctrl_rate)) + 2
    walk = _smooth_walk(n_ctrl, rng, smooth=int(3 * ctrl_rate)) * drift_hz * rng.uniform(0.5, 1.0)
    t = np.arange(n) / sample_rate
    freq = f0 + np.interp(t, np.arange(n_ctrl) / ctrl_rate, walk)
    phi = 2 * np.pi * np.cumsum(freq) / sample_rate

    if am_depth is None:
        am_depth = float(rng.uniform(0.05, 0.4))
    rates = rng.uniform(0.05, 0.5, size=2)
    shared = np.sin(2 * np.pi * rates[0] * t + rng.uniform(0, 2 * np.pi))
    hum = np.zeros(n)
    for k in np.nonzero(amp)[0]:
        own = np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
        mod = 1.0 + am_depth * (0.7 * shared + 0.3 * own)
        hum += amp[k] * mod * np.cos((k + 1) * phi + rng.uniform(0, 2 * np.pi))
    hum /= np.sqrt(np.mean(hum**2)) + 1e-30
    info = HumInfo(
        mains_hz=mains_hz,
        f0_hz=float(freq.mean()),
        drift_pp_hz=float(freq.max() - freq.min()),
        harmonics=tuple(int(k) + 1 for k in np.nonzero(amp)[0]),
        profile=profile,
    )
    return hum, info


def add_hum(clean: np.ndarray, hum_unit: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale unit-RMS hum so that clean power / hum power == snr_db; return (noisy, hum)."""
    p = float(np.mean(clean**2))
    hum = hum_unit * np.sqrt(p / 10 ** (snr_db / 10))
    return clean + hum, hum


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (reference = the clean signal)."""
    s = reference.astype(np.float64)
    e = estimate.astype(np.float64)
    alpha = np.dot(e, s) / (np.dot(s, s) + 1e-30)
    target = alpha * s
    return float(10 * np.log10(np.sum(target**2) / (np.sum((target - e) ** 2) + 1e-30) + 1e-30))
