"""Sustained bass and organ pedal notes at and near the mains frequencies (do-no-harm material).

A hum remover that subtracts every steady line at k * 50 or k * 60 Hz would eat these notes. Each
clip is a sequence of held notes (one to six seconds, with attack and release) whose fundamentals
sit near 50, 60, 100 and 120 Hz: the equal-tempered notes closest to them (G1, G#1, A#1, B1, G2,
G#2, A#2, B2) and, as the hardest case, synthesiser notes tuned exactly to 50, 60, 100 or 120 Hz.
Timbres: organ pedal (flue pipe: strong low partials), bass guitar (plucked, decaying) and a sine
sub-bass. A quiet noise floor keeps the clips from being digital silence between notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

NEAR_MAINS_HZ = (49.0, 51.91, 58.27, 61.74, 98.0, 103.83, 116.54, 123.47)
AT_MAINS_HZ = (50.0, 60.0, 100.0, 120.0)
TIMBRES = ("organ", "bass", "sine")
BENCHMARK_FIRST_SEED = 1000  # humclean evaluate's clips; training material must not reuse them


def _note(freq: float, n: int, rate: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    vib = 1 + 0.002 * np.sin(2 * np.pi * rng.uniform(4, 6) * t) if timbre == "bass" else 1.0
    phase = 2 * np.pi * np.cumsum(freq * np.ones(n) * vib) / rate
    if timbre == "organ":
        partials = [1.0, 0.6, 0.35, 0.25, 0.15, 0.1, 0.06, 0.04]
    elif timbre == "bass":
        partials = [1.0, 0.5, 0.3, 0.2, 0.12, 0.08]
    else:
        partials = [1.0]
    y = np.zeros(n)
    for k, a in enumerate(partials, start=1):
        if k * freq < rate / 2 - 200:
            y += a * np.cos(k * phase + rng.uniform(0, 2 * np.pi))
    attack = int(rate * (0.08 if timbre == "organ" else 0.01))
    release = int(rate * 0.15)
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    env[n - release :] *= np.linspace(1, 0, release)
    if timbre == "bass":
        env *= np.exp(-t / rng.uniform(1.5, 3.0))
    return y * env


def bass_clip(
    seed: int, seconds: float = 20.0, rate: int = 16000, exact: bool = False, timbre: str = "organ"
) -> np.ndarray:
    """One clip of held notes; ``exact`` uses notes tuned to the mains frequencies themselves."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    y = np.zeros(n)
    pos = int(rng.uniform(0.1, 0.5) * rate)
    pitches = AT_MAINS_HZ if exact else NEAR_MAINS_HZ
    while pos < n - rate:
        length = min(int(rng.uniform(1.0, 6.0) * rate), n - pos)
        y[pos : pos + length] += _note(float(rng.choice(pitches)), length, rate, timbre, rng)
        pos += length + int(rng.uniform(0.0, 0.6) * rate)
    y += 10 ** (-60 / 20) * rng.standard_normal(n)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float64)


def write_bass_clips(
    out_dir: Path, count: int = 12, seconds: float = 20.0, rate: int = 16000, first_seed: int = BENCHMARK_FIRST_SEED
) -> list[Path]:
    """Write ``count`` clips (every third tuned exactly to the mains) as float WAVs under ``out_dir/bass``.

    The benchmark uses seeds from ``BENCHMARK_FIRST_SEED``; training material must start elsewhere
    (``first_seed``, see :func:`overlaps_benchmark`).
    """
    paths = []
    for i in range(count):
        exact = i % 3 == 2
        path = out_dir / "bass" / f"bass-{i:02d}{'-at-mains' if exact else ''}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            clip = bass_clip(first_seed + i, seconds, rate, exact, TIMBRES[(i // 3) % len(TIMBRES)])
            sf.write(str(path), clip, rate, subtype="FLOAT")
        paths.append(path)
    return paths


def overlaps_benchmark(first_seed: int, count: int) -> bool:
    """Whether clips ``first_seed .. first_seed + count - 1`` may repeat the benchmark's clips (the first
    64 seeds from ``BENCHMARK_FIRST_SEED``; the benchmark writes 12 by default)."""
    return first_seed < BENCHMARK_FIRST_SEED + 64 and first_seed + count > BENCHMARK_FIRST_SEED
