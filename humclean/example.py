"""A small synthetic example archive for the README's first command (no corpus needed).

Speech-like and music-like signals with mains hum of known parameters, in a few formats, plus one
recording without hum that humclean must pass through untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def _speechlike(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Glottal pulses (100-180 Hz, gliding) shaped by three formants and a syllable envelope."""
    t = np.arange(n) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t) + 10 * rng.standard_normal() * np.sin(2 * np.pi * 1.7 * t)
    phase = np.cumsum(f0) / rate
    pulses = np.diff(np.floor(phase), prepend=0.0)
    spec = np.fft.rfft(pulses)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    env = np.zeros_like(freqs)
    for fc, bw, g in ((650, 120, 1.0), (1200, 150, 0.6), (2600, 250, 0.3)):
        env += g / (1 + ((freqs - fc) / bw) ** 2)
    voiced = np.fft.irfft(spec * env, n)
    syll = np.clip(np.sin(2 * np.pi * 3.1 * t) + 0.3, 0, None) * (np.sin(2 * np.pi * 0.21 * t) > -0.6)
    y = voiced * syll + 0.003 * rng.standard_normal(n) * syll
    return 0.3 * y / (np.max(np.abs(y)) + 1e-12)


def _musiclike(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A slow chord progression of harmonic tones with vibrato and plucked envelopes."""
    t = np.arange(n) / rate
    y = np.zeros(n)
    roots = [220.0, 174.6, 196.0, 261.6]
    note_len = 2.0
    for i, root in enumerate(roots * int(np.ceil(t[-1] / (note_len * len(roots)) + 1))):
        start = i * note_len
        if start >= t[-1]:
            break
        seg = (t >= start) & (t < start + note_len * 1.5)
        tt = t[seg] - start
        for ratio in (1.0, 1.25, 1.5):
            f = root * ratio * (1 + 0.003 * np.sin(2 * np.pi * 5 * tt))
            ph = 2 * np.pi * np.cumsum(f) / rate
            for h in range(1, 6):
                y[seg] += np.exp(-1.5 * tt) * np.sin(h * ph + rng.uniform(0, 2 * np.pi)) / h**1.5
    return 0.25 * y / (np.max(np.abs(y)) + 1e-12)


def _hum(n: int, rate: int, f0: float, amps: list[float], rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    drift = 0.05 * np.sin(2 * np.pi * 0.07 * t)
    phase = 2 * np.pi * np.cumsum(f0 + drift) / rate
    am = 1 + 0.2 * np.sin(2 * np.pi * 0.13 * t)
    return am * sum(a * np.cos(k * phase + rng.uniform(0, 2 * np.pi)) for k, a in enumerate(amps, 1))


def write_example_archive(directory: Path, seconds: float = 20.0, seed: int = 7) -> list[Path]:
    """Write the example archive; returns the files written."""
    rng = np.random.default_rng(seed)
    written = []

    def put(rel: str, data: np.ndarray, rate: int, subtype: str, fmt: str | None = None) -> None:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, rate, subtype=subtype, format=fmt)
        written.append(path)

    rate = 48000
    n = int(seconds * rate)
    left, right = _speechlike(n, rate, rng), _speechlike(n, rate, rng)
    hum = _hum(n, rate, 50.0, [0.02, 0.006, 0.008, 0.002, 0.003], rng)
    put("interviews/tape01.wav", np.stack([left + hum, right + 0.8 * hum], axis=1), rate, "PCM_24")

    rate = 44100
    n = int(seconds * rate)
    music = _musiclike(n, rate, rng)
    buzz = _hum(n, rate, 60.0, [0.01 / k for k in range(1, 16)], rng)
    put("music/session.flac", np.stack([music + buzz, 0.9 * music + buzz], axis=1), rate, "PCM_16")

    rate = 16000
    n = int(seconds * rate)
    put("interviews/phone.wav", _speechlike(n, rate, rng) + _hum(n, rate, 60.3, [0.03, 0.01], rng), rate, "PCM_16")
    put("clean/no-hum.flac", _musiclike(n, rate, rng), rate, "PCM_16")
    return written
