"""The hum recipe: seeded, versioned synthesis of realistic mains hum.

Recipe ``hum-v1``: fundamental 50 or 60 Hz with a slow random-walk drift (about +-0.1 Hz) and, on
a fifth of recordings, a constant offset of up to 1 Hz (as on tape transfers at the wrong speed);
1 to 40 harmonics below Nyquist with one of three amplitude shapes (falling, odd-heavy buzz,
sparse); random phases; a slowly varying amplitude (0.05 to 0.5 Hz, up to +-40 %). Every random
choice is drawn from the generator handed in, so a seed reproduces the hum exactly.

Recipe ``hum-v2`` (for training only; evaluation stays on hum-v1): hum-v1, and on half of the hums every line
also swells on its own, with or without the shared swell, so a model cannot take for granted that all lines
rise and fall together.

Recipe ``hum-v3`` (for training only): hum-v1, and on a third of the hums the recording chain's band limits
on the lines: a high-pass (a field recorder's low-cut, a small loudspeaker or microphone, a telephone line:
corner 60-400 Hz, 1st to 4th order) and on a sixth a low-pass (corner 0.8-3.4 kHz, 1st to 4th order), so the
fundamental is not always the strongest line and the lines above a corner fall away.

Recipe ``hum-v4`` (for training only; for models that see more than 40 lines): hum-v1, and on half of the hums
with 20 lines or more the series runs on past the 40th line (a buzz from a dimmer or a rectifier reaches several
kHz) up to 41-120 lines below Nyquist, each new line continuing the hum's own amplitude law (fitted to its first
40 lines) with the shape's character (buzz: weak even lines; sparse: gaps); then hum-v3's band limits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

RECIPE_VERSION = "hum-v1"
# hum-v2 (see the module docstring) draws its extra numbers after all of hum-v1's: hum-v1 draws stay as they were
RECIPES = (RECIPE_VERSION, "hum-v2", "hum-v3", "hum-v4")
WIDE_HARMONICS = 120  # hum-v4's most lines
SHAPES = ("falling", "buzz", "sparse")
# Evaluation-only shape, drawn only when pinned (so hum-v1's random draws stay as they were): a strong
# fundamental with harmonics 30 to 50 dB below it, as on many real transfers.
PINNED_SHAPES = SHAPES + ("fundamental",)


@dataclass(frozen=True)
class HumParams:
    """Everything needed to render one hum (plain types: goes into metadata.csv)."""

    mains_hz: int
    offset_hz: float
    drift_hz: float  # standard deviation scale of the random walk
    shape: str
    amplitudes: list[float]
    phases: list[float]
    am_hz: float
    am_depth: float
    am_phase: float
    drift_seed: int
    recipe: str = RECIPE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def harmonics(self) -> int:
        return len(self.amplitudes)

    @property
    def f0_hz(self) -> float:
        return self.mains_hz + self.offset_hz

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_params(
    rng: np.random.Generator,
    sample_rate: int,
    mains_hz: int | None = None,
    harmonics: int | None = None,
    shape: str | None = None,
    recipe: str = RECIPE_VERSION,
) -> HumParams:
    """Draw a hum of ``recipe``; ``mains_hz``, ``harmonics`` and ``shape`` may be pinned (benchmark conditions)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown hum recipe {recipe!r} (known: {', '.join(RECIPES)})")
    mains = int(mains_hz or rng.choice([50, 60]))
    offset = float(rng.uniform(-1.0, 1.0)) if rng.random() < 0.2 else 0.0
    f0 = mains + offset
    max_k = max(1, int((sample_rate / 2 - 100) // f0))
    k = int(harmonics or rng.integers(1, 41))
    k = min(k, 40, max_k)
    shape = shape or str(rng.choice(SHAPES))
    if shape not in PINNED_SHAPES:
        raise ValueError(f"unknown hum shape {shape!r} (known: {', '.join(PINNED_SHAPES)})")
    idx = np.arange(1, k + 1)
    if shape == "fundamental":
        amps = np.where(idx == 1, 1.0, 10 ** (-rng.uniform(30.0, 50.0, k) / 20))
    elif shape == "falling":
        amps = idx ** -rng.uniform(0.5, 2.0)
    elif shape == "buzz":
        amps = idx ** -rng.uniform(0.3, 1.2)
        amps = np.where(idx % 2 == 0, amps * rng.uniform(0.05, 0.4), amps)
    else:
        amps = idx ** -rng.uniform(0.3, 1.5) * (rng.random(k) < 0.4)
        amps[0] = max(amps[0], rng.uniform(0.3, 1.0))
    amps = amps * rng.uniform(0.5, 1.5, k) * (idx * f0 < sample_rate / 2 - 100)
    params = HumParams(
        mains_hz=mains,
        offset_hz=offset,
        drift_hz=float(rng.uniform(0.02, 0.1)),
        shape=shape,
        amplitudes=[float(a) for a in amps],
        phases=[float(p) for p in rng.uniform(0, 2 * np.pi, k)],
        am_hz=float(rng.uniform(0.05, 0.5)),
        am_depth=float(rng.uniform(0.0, 0.4)),
        am_phase=float(rng.uniform(0, 2 * np.pi)),
        drift_seed=int(rng.integers(0, 2**31)),
    )
    if recipe == "hum-v3":
        return band_limited(rng, params)
    if recipe == "hum-v4":
        return replace(band_limited(rng, wide_series(rng, params, max_k)), recipe="hum-v4")
    if recipe == RECIPE_VERSION or rng.random() < 0.5:
        return replace(params, recipe=recipe)
    own = own_swells(rng, k, 0.4)
    shared = params.am_depth if rng.random() < 0.5 else 0.0
    return replace(params, recipe=recipe, am_depth=shared, extra=own)


def band_limited(rng: np.random.Generator, params: HumParams) -> HumParams:
    """``params`` (drawn by hum-v1) with the recipe hum-v3 band limits drawn from ``rng`` and applied to
    the line amplitudes (Butterworth magnitudes at each line's frequency); the corners go into ``extra``."""
    extra: dict[str, Any] = {}
    f = np.arange(1, params.harmonics + 1) * params.f0_hz
    gain = np.ones_like(f)
    if rng.random() < 1 / 3:
        corner, order = float(np.exp(rng.uniform(math.log(60.0), math.log(400.0)))), int(rng.integers(1, 5))
        gain /= np.sqrt(1 + (corner / f) ** (2 * order))
        extra["highpass_hz"], extra["highpass_order"] = corner, order
    if rng.random() < 1 / 6:
        corner, order = float(np.exp(rng.uniform(math.log(800.0), math.log(3400.0)))), int(rng.integers(1, 5))
        gain /= np.sqrt(1 + (f / corner) ** (2 * order))
        extra["lowpass_hz"], extra["lowpass_order"] = corner, order
    amps = [float(a * g) for a, g in zip(params.amplitudes, gain, strict=True)]
    return replace(params, recipe="hum-v3", amplitudes=amps, extra=extra)


def wide_series(rng: np.random.Generator, params: HumParams, max_k: int) -> HumParams:
    """``params`` (drawn by hum-v1) with, on half of the hums of 20 lines or more, the series continued to
    41-``WIDE_HARMONICS`` lines (at most ``max_k``) by :func:`extend_series`."""
    if params.harmonics < 20 or rng.random() < 0.5:
        return params
    return extend_series(rng, params, min(int(rng.integers(41, WIDE_HARMONICS + 1)), max_k))


def extend_series(rng: np.random.Generator, params: HumParams, lines: int) -> HumParams:
    """``params`` with its series continued to ``lines`` lines (the caller keeps them below Nyquist): a power
    law fitted to the lines it has, times the shape's character (buzz: even lines 0.05-0.4; sparse: 40 % of
    the lines) and a random 0.5-1.5; new lines get random phases."""
    k = params.harmonics
    if lines <= k:
        return params
    amps = np.asarray(params.amplitudes)
    idx = np.arange(1, k + 1)
    odd = idx % 2 == 1 if params.shape == "buzz" else np.ones(k, dtype=bool)
    keep = (amps > 0) & odd
    slope, level = np.polyfit(np.log(idx[keep]), np.log(amps[keep]), 1) if keep.sum() >= 2 else (-1.0, 0.0)
    new = np.arange(k + 1, lines + 1)
    extra = np.exp(level) * new ** min(float(slope), 0.0) * rng.uniform(0.5, 1.5, new.size)
    if params.shape == "buzz":
        extra = np.where(new % 2 == 0, extra * rng.uniform(0.05, 0.4, new.size), extra)
    elif params.shape == "sparse":
        extra = extra * (rng.random(new.size) < 0.4)
    phases = rng.uniform(0, 2 * np.pi, new.size)
    return replace(
        params,
        amplitudes=[*params.amplitudes, *(float(a) for a in extra)],
        phases=[*params.phases, *(float(p) for p in phases)],
    )


def own_swells(rng: np.random.Generator, harmonics: int, depth: float) -> dict[str, Any]:
    """A swell of its own for each of ``harmonics`` lines (0.05 to 0.5 Hz, up to ``depth``), as
    :attr:`HumParams.extra` entries that :func:`render` applies (recipe hum-v2)."""
    return {
        "line_am_hz": [float(v) for v in rng.uniform(0.05, 0.5, harmonics)],
        "line_am_depth": [float(v) for v in rng.uniform(0.0, depth, harmonics)],
        "line_am_phase": [float(v) for v in rng.uniform(0, 2 * np.pi, harmonics)],
    }


def _drift(n: int, sample_rate: int, scale_hz: float, seed: int) -> np.ndarray:
    """A smooth random walk bounded to about +-scale: knots every 0.5 s, cubic-ish interpolation."""
    rng = np.random.default_rng(seed)
    n_knots = int(math.ceil(n / sample_rate / 0.5)) + 2
    walk = np.cumsum(rng.standard_normal(n_knots)) * 0.3
    walk = scale_hz * np.tanh(walk)  # bounded, keeps wandering
    t_knots = np.arange(n_knots) * 0.5
    t = np.arange(n) / sample_rate
    return np.interp(t, t_knots, walk)


def render(params: HumParams, n: int, sample_rate: int) -> np.ndarray:
    """The hum ``[n]`` float64 at ``sample_rate`` with peak amplitude normalised to about 1."""
    inst_f0 = params.f0_hz + _drift(n, sample_rate, params.drift_hz, params.drift_seed)
    phase = 2 * np.pi * np.cumsum(inst_f0) / sample_rate
    t = np.arange(n) / sample_rate
    y = np.zeros(n)
    own = params.extra.get("line_am_depth")
    for k, (a, p) in enumerate(zip(params.amplitudes, params.phases, strict=True), start=1):
        if a:
            line = a * np.cos(k * phase + p)
            if own is not None:  # hum-v2: this line's own swell
                hz, ph = params.extra["line_am_hz"][k - 1], params.extra["line_am_phase"][k - 1]
                line *= 1 + own[k - 1] * np.sin(2 * np.pi * hz * t + ph)
            y += line
    y *= 1 + params.am_depth * np.sin(2 * np.pi * params.am_hz * t + params.am_phase)
    return y


def mix(clean: np.ndarray, hum: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``hum`` so that clean power / hum power is ``snr_db``; returns (noisy, scaled hum)."""
    p_clean = float(np.mean(clean**2))
    p_hum = float(np.mean(hum**2))
    if p_hum <= 0:
        return clean.copy(), np.zeros_like(clean)
    if p_clean <= 0:
        p_clean = 1e-6  # silence: hum at a fixed low level instead of infinitely quiet
    g = math.sqrt(p_clean / (p_hum * 10 ** (snr_db / 10)))
    return clean + g * hum, g * hum
